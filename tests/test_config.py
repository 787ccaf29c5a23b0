"""Config files: validation errors name the file and key; overrides work like the CLI's --set."""
import textwrap

import pytest

from crslab_mscrs.config import ConfigError, apply_overrides, effective_overrides, load_config


def write(tmp_path, text, name="run.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_shipped_kbrd_and_kgsf_configs_are_valid():
    for path in ("config/kbrd/redial.yaml", "config/kbrd/inspired.yaml", "config/kbrd/sample.yaml",
                 "config/kgsf/redial.yaml", "config/kgsf/inspired.yaml", "config/kgsf/sample.yaml"):
        opt = load_config(path)
        assert opt["model"] in ("KBRD", "KGSF")


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
