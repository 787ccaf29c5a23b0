"""Config files: validation errors name the file and key; overrides work like the CLI's --set."""
import textwrap

import pytest

from crslab_mscrs.config import (ConfigError, apply_overrides, compose, effective_overrides, find_config,
                                 list_configs, load_config, resolve)


def write(tmp_path, text, name="run.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_shipped_kbrd_and_kgsf_configs_are_valid():
    for path in ("config/kbrd/redial.yaml", "config/kbrd/inspired.yaml", "config/kbrd/sample.yaml",
                 "config/kgsf/redial.yaml", "config/kgsf/inspired.yaml", "config/kgsf/sample.yaml"):
        opt = load_config(path)
        assert opt["model"] in ("KBRD", "KGSF")


def test_every_packaged_config_composes_and_validates():
    names = list_configs()
    assert {"mscrs/redial", "unicrs/sample", "kbrd/inspired", "kgsf/sample", "features/redial_offline"} <= set(names)
    assert not any(name.endswith("/base") or "/_" in name for name in names)  # layers are not listed
    for name in names:
        assert compose(name)["dataset"]


def test_a_config_is_found_by_name_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    packaged = find_config("mscrs/redial")
    assert packaged == find_config("mscrs/redial.yaml") == find_config("config/mscrs/redial.yaml")
    assert packaged.is_file() and packaged.parts[-3:] == ("configs", "mscrs", "redial.yaml")
    with pytest.raises(ConfigError, match="mscrs/redial"):  # the error lists what exists
        find_config("mscrs/redail")


def test_extends_deep_merges_and_the_file_given_wins(tmp_path):
    path = write(tmp_path, """
        extends: kbrd/sample
        rec: {epoch: 7}
    """)
    opt = load_config(path, ["conv.batch_size=4"])
    sample = compose("kbrd/sample")
    assert opt["rec"]["epoch"] == 7 and opt["rec"]["batch_size"] == sample["rec"]["batch_size"]
    assert opt["rec"]["optimizer"] == sample["rec"]["optimizer"]  # merged, not replaced
    assert opt["conv"]["batch_size"] == 4 and opt["dataset"] == "ReDial"


def test_every_key_knows_the_file_that_set_it(tmp_path):
    path = write(tmp_path, "extends: kbrd/sample\nseed: 3\n")
    composed = resolve(path, ["rec.epoch=1"])
    assert composed.chain == ["kbrd/base.yaml", "kbrd/redial.yaml", "kbrd/sample.yaml", str(path)]
    assert composed.source("seed") == str(path) and composed.source("rec.epoch") == "--set"
    assert composed.source("dataset") == "kbrd/redial.yaml" and composed.source("n_heads") == "kbrd/base.yaml"


def test_unknown_key_in_a_layer_names_that_file_and_the_chain(tmp_path):
    write(tmp_path, "dataset: ReDial\nmodel: KBRD\nkg_emb_dimm: 128\n", name="mine.yaml")
    path = write(tmp_path, "extends: mine.yaml\nseed: 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(str(tmp_path / "mine.yaml")) and "kg_emb_dimm" in message
    assert "kbrd/base.yaml" in message and str(path) in message  # the chain


def test_a_file_without_extends_sits_on_its_family_base(tmp_path):
    opt = load_config(write(tmp_path, "dataset: ReDial\nmodel: KGSF\n"))
    assert opt == compose("kgsf/redial")


def test_unicrs_is_mscrs_with_the_graphs_off():
    for name in ("redial", "inspired", "redial_offline", "inspired_offline", "sample"):
        mscrs, unicrs = compose(f"mscrs/{name}"), compose(f"unicrs/{name}")
        different = {key for key in mscrs if mscrs[key] != unicrs[key]}
        assert different == {"model", "use_cooccurrence_graph", "use_text_graph", "use_image_graph"}
        assert unicrs["model"] == "UniCRS" and not unicrs["use_text_graph"]


def test_extends_loop_is_an_error(tmp_path):
    write(tmp_path, "extends: b.yaml\n", name="a.yaml")
    write(tmp_path, "extends: a.yaml\n", name="b.yaml")
    with pytest.raises(ConfigError, match="loops"):
        load_config(tmp_path / "a.yaml")


def test_deprecated_max_steps_is_read_as_max_batches_per_epoch(tmp_path):
    path = write(tmp_path, "extends: mscrs/sample\nrec: {max_steps: 2}\n")
    assert load_config(path)["rec"]["max_batches_per_epoch"] == 2
    assert "max_steps" not in load_config(path)["rec"]
    assert compose("mscrs/sample", ["conv.max_steps=3"])["conv"]["max_batches_per_epoch"] == 3
    both = write(tmp_path, "extends: mscrs/sample\nrec: {max_steps: 2, max_batches_per_epoch: 2}\n", "both.yaml")
    with pytest.raises(ConfigError, match="deprecated"):
        load_config(both)


def test_features_configs_reject_unknown_nested_keys(tmp_path):
    opt = compose("features/inspired_offline")
    assert opt["features"]["graphs"]["text_knn"] == {"k": 10, "weight": "cosine", "min_similarity": 0.0}
    path = write(tmp_path, "extends: features/redial_offline\nfeatures: {graphs: {text_knn: {kk: 3}}}\n")
    with pytest.raises(ConfigError, match=r"features\.graphs\.text_knn\.kk.*'k'"):
        load_config(path)


def test_misspelt_key_is_an_error_naming_file_key_and_suggestion(tmp_path):
    path = write(tmp_path, """
        dataset: ReDial
        tokenize: nltk
        model: KBRD
        kg_emb_dimm: 128
    """)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message and "kg_emb_dimm" in message and "kg_emb_dim" in message


def test_unknown_key_inside_a_stage_section(tmp_path):
    path = write(tmp_path, """
        dataset: ReDial
        tokenize: nltk
        model: KBRD
        rec: {epoch: 1, batch_sise: 8}
    """)
    with pytest.raises(ConfigError, match=r"rec\.batch_sise.*batch_size"):
        load_config(path)


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "dataset: ReDial\ntokenize: [nltk\nmodel: KBRD\n")
    with pytest.raises(ConfigError, match=rf"{path.name}:\d+"):
        load_config(path)


def test_missing_required_key(tmp_path):
    with pytest.raises(ConfigError, match="dataset"):
        load_config(write(tmp_path, "tokenize: nltk\nmodel: KBRD\n"))


def test_overrides_set_nested_values_parsed_as_yaml():
    opt = apply_overrides({"rec": {"epoch": 5}}, ["rec.epoch=1", "seed=3", "conv.optimizer.lr=1e-4"])
    assert opt["rec"]["epoch"] == 1 and opt["seed"] == 3 and opt["conv"]["optimizer"]["lr"] == 1e-4


def test_effective_overrides_keep_the_last_value_of_each_key_like_apply_overrides():
    flags = ["rec.time_limit_min=2.18", "stages=[rec]", "rec.epoch=1", "rec.time_limit_min=null"]
    assert effective_overrides(flags) == ["stages=[rec]", "rec.epoch=1", "rec.time_limit_min=null"]
    assert apply_overrides({}, flags) == apply_overrides({}, effective_overrides(flags))


def test_override_without_equals_is_rejected():
    with pytest.raises(ConfigError):
        apply_overrides({}, ["rec.epoch"])


def test_cli_prints_test_metrics_as_a_table_with_absent_values_as_na():
    from crslab_mscrs.cli import format_metrics_table

    table = format_metrics_table({"rec": {"recall@10": 0.25},
                                  "conv": {"generation": {"bleu@1": 0.125, "greedy": None}}})
    lines = table.splitlines()
    assert lines[0] == "== test metrics: rec ==" and lines[1].split() == ["recall@10", "0.2500"]
    assert "generation.greedy" in table and table.rstrip().endswith("n/a")
