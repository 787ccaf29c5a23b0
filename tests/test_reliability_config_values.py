"""Config VALUES are checked before any work starts (issue 16, item 6): a wrong type or range is
a ConfigError naming the key, and the command line exits with code 2."""
import re
from pathlib import Path

import pytest

import crslab_mscrs  # noqa: F401  (registers the MSCRS / UniCRS keys)
from crslab_mscrs.cli import main
from crslab_mscrs.config import ConfigError, load_config, parse_override

REPO = Path(__file__).resolve().parents[1]
MSCRS, KBRD, KGSF = (str(REPO / "config" / name / "sample.yaml") for name in ("mscrs", "kbrd", "kgsf"))
SHIPPED = sorted(p for p in (REPO / "config").glob("*/*.yaml")  # runnable ones: not bases, not _layers
                 if p.parent.name != "features" and p.stem != "base" and not p.stem.startswith("_"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_config_passes(path):
    load_config(path)


def test_every_key_the_name_check_knows_has_a_type_and_range():
    from crslab_mscrs import config, config_schema as schema

    for model, table in (("KBRD", schema.TRANSFORMER), ("KGSF", schema.TRANSFORMER), ("MSCRS", schema.MSCRS),
                         ("UniCRS", schema.MSCRS)):
        unchecked = config.MODEL_KEYS[model] - set(table) - set(schema.COMMON) - set(schema.STAGE_SECTIONS)
        assert not unchecked, f"{model}: no value spec for {sorted(unchecked)} in crslab_mscrs/config_schema.py"
    assert config.STAGE_KEYS <= set(schema.STAGE)
    assert set(config.COMMON_KEYS) - {"tokenize"} <= set(schema.COMMON)


@pytest.mark.parametrize("config", [MSCRS, KBRD, KGSF])
@pytest.mark.parametrize("override, key, reason", [
    ("rec.epoch=five", "rec.epoch", "must be an integer, got str 'five'"),
    ("rec.epoch=0", "rec.epoch", "must be >= 1, got 0"),  # would train nothing and report metrics
    ("rec.epoch=-1", "rec.epoch", "must be >= 1, got -1"),
    ("rec.epoch=true", "rec.epoch", "must be an integer"),
    ("rec.batch_size=0", "rec.batch_size", "must be >= 1, got 0"),
    ("conv.optimizer.lr=-0.001", "conv.optimizer.lr", "must be > 0, got -0.001"),
    ("rec.optimizer.lerning_rate=0.01", "rec.optimizer.lerning_rate", "is not an argument of Adam.* \\(did you mean 'lr'\\?\\)"),
    ("rec.optimizer.name=Adamm", "rec.optimizer.name", "names an unknown optimizer 'Adamm'"),
    ("rec=3", "rec", "must be a mapping of stage settings"),
    ("seed=-1", "seed", "must be >= 0"),
])
def test_bad_values_name_the_key(config, override, key, reason):
    with pytest.raises(ConfigError, match=rf"config key '{key}' {reason}"):
        load_config(config, [override])


@pytest.mark.parametrize("override, key, reason", [
    ("ranking_depth=-5", "ranking_depth", "must be >= 1, got -5"),
    ("fusion=product", "fusion", "must be one of sum, mean"),
    ("top_p=1.5", "top_p", "must be <= 1"),
    ("use_text_graph=yes please", "use_text_graph", "must be true or false"),
    ("rec_select_metric=recall@30", "rec_select_metric", "must have the form .*, got 'recall@30'"),
    ("stages=[pretrain, recommend]", "stages", "unknown stage\\(s\\) \\['recommend'\\]"),
    ("rec.time_limit_min=0", "rec.time_limit_min", "must be > 0"),
    ("rec.max_batches_per_epoch=0", "rec.max_batches_per_epoch", "must be >= 1"),
    ("rec.optimizer.name=Adam", "rec.optimizer.name", "names an unknown optimizer 'Adam' for MSCRS; choose from AdamW"),
])
def test_mscrs_keys(override, key, reason):
    with pytest.raises(ConfigError, match=rf"config key '{key}' {reason}"):
        load_config(MSCRS, [override])


def test_kbrd_kgsf_keys_and_schedulers():
    with pytest.raises(ConfigError, match=r"config key 'dropout' must be <= 1, got 1.5"):
        load_config(KGSF, ["dropout=1.5"])
    with pytest.raises(ConfigError, match=r"config key 'n_heads' must be >= 1, got 0"):
        load_config(KBRD, ["n_heads=0"])
    with pytest.raises(ConfigError, match=r"'conv.lr_scheduler' lacks step_size, which StepLR requires"):
        load_config(KBRD, ["conv.lr_scheduler.name=StepLR"])
    with pytest.raises(ConfigError, match=r"'conv.lr_scheduler.patiense' is not an argument of ReduceLROnPlateau"):
        load_config(KBRD, ["conv.lr_scheduler.name=ReduceLROnPlateau", "conv.lr_scheduler.patiense=2"])
    opt = load_config(KBRD, ["conv.lr_scheduler.name=StepLR", "conv.lr_scheduler.step_size=2",
                             "conv.optimizer.name=SGD", "conv.optimizer.momentum=0.9"])
    assert opt["conv"]["optimizer"] == {"name": "SGD", "lr": 1e-3, "momentum": 0.9}


def test_both_spellings_of_the_batch_cap_are_accepted():
    assert load_config(MSCRS, ["rec.max_steps=3"])["rec"]["max_batches_per_epoch"] == 3  # read as the new name
    assert load_config(MSCRS, ["rec.max_batches_per_epoch=3"])["rec"]["max_batches_per_epoch"] == 3


def test_a_number_written_as_a_yaml_string_is_explained(tmp_path):
    text = (REPO / "config" / "kbrd" / "base.yaml").read_text().replace("lr: !!float 3e-3", "lr: 3e-3")
    text = text.replace("dataset: null", "dataset: ReDial")  # PyYAML reads lr as the string "3e-3"
    config = tmp_path / "kbrd.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=r"'rec.optimizer.lr' must be a number, got str '3e-3' \(YAML reads"):
        load_config(config)


@pytest.mark.parametrize("text", ["rec.epoch=[1,", "rec.epoch={", "rec..epoch=1", "=3"])
def test_set_syntax_errors_are_config_errors(text):
    with pytest.raises(ConfigError, match=re.escape(f"override '{text}'")):
        parse_override(text)


def test_cli_exits_2_naming_the_key_before_any_work(capsys):
    assert main(["-c", KBRD, "--set", "rec.epoch=five"]) == 2
    assert "config key 'rec.epoch' must be an integer" in capsys.readouterr().err
    assert main(["-c", MSCRS, "--set", "rec.epoch=[1,"]) == 2
    assert "override 'rec.epoch=[1,': the value is not valid YAML" in capsys.readouterr().err


@pytest.mark.parametrize("value,ok", [("recall@50", True), ("recall@10_mention", True), ("hit@50", True),
                                      ("crslab_ndcg@10", True), ("hit@50_mention", False), ("recall@5", False)])
def test_rec_select_metric_names_one_vocabulary(value, ok):
    """Per-turn recall@K, per-mention recall@K_mention, CRSLab's hit@K (docs/evaluation.md)."""
    from crslab_mscrs.config_schema import value_problems

    problems = dict(value_problems({"model": "MSCRS", "rec_select_metric": value}))
    assert ("rec_select_metric" not in problems) is ok
