"""The console commands besides training: ``config``, ``build-data``, ``features``; and the
errors that name the command making a missing prerequisite."""
import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from crslab_mscrs import cli
from crslab_mscrs.commands import features as features_command

REPO = Path(__file__).resolve().parents[1]


def test_config_lists_the_packaged_configs_and_shows_one_composed(capsys):
    assert cli.main(["config"]) == 0
    names = capsys.readouterr().out.split()
    assert "mscrs/sample" in names and "features/redial_offline" in names and "mscrs/base" not in names
    assert cli.main(["config", "unicrs/sample", "--set", "rec.epoch=3"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("# unicrs/sample: unicrs/sample.yaml <- unicrs/_graphs_off.yaml")
    assert "model: UniCRS" in shown and "use_text_graph: false" in shown and "epoch: 3" in shown
    assert cli.main(["config", "kbrd/sample", "--sources"]) == 0
    sources = dict(line.split() for line in capsys.readouterr().out.splitlines()[1:])
    assert sources["data_root"] == "kbrd/sample.yaml" and sources["dataset"] == "kbrd/redial.yaml"


def test_build_data_without_a_source_says_how_to_give_one(capsys, monkeypatch):
    monkeypatch.delenv("CRSLAB_MSCRS_SOURCE", raising=False)
    assert cli.main(["build-data", "--data-root", "unused"]) == 2
    assert "--source DIR" in capsys.readouterr().err


def features_args(*argv):
    return features_command.add_arguments(argparse.ArgumentParser()).parse_args(list(argv))


def test_features_flags_override_the_composed_config():
    dataset, data_root, section = features_command.resolve(features_args(
        "build-graphs", "--config", "features/inspired_offline", "--k-text", "3", "--source", "/raw",
        "--set", "graphs.image_knn.weight=binary"))
    assert dataset == "inspired" and data_root is None and section["shared_data"] == "/raw"
    assert section["graphs"]["text_knn"] == {"k": 3, "weight": "cosine", "min_similarity": 0.0}
    assert section["graphs"]["image_knn"]["weight"] == "binary" and section["graphs"]["image_knn"]["k"] == 10


def test_a_feature_step_that_reads_raw_data_names_the_source_flag(tmp_path, monkeypatch):
    from crslab_mscrs.features.pipeline import FeaturePipeline

    monkeypatch.delenv("CRSLAB_MSCRS_SOURCE", raising=False)
    with pytest.raises(FileNotFoundError, match="--source DIR"):
        FeaturePipeline("redial", {}, data_root=tmp_path).catalogue()


def run_cli(tmp_path, *argv):
    return subprocess.run([sys.executable, str(REPO / "run_crslab.py"), *argv], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)


def test_a_missing_built_dataset_names_make_data(tmp_path):
    result = run_cli(tmp_path, "--config", "kbrd/redial", "--data-root", str(tmp_path / "empty"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "built dataset not found" in result.stderr and "make data" in result.stderr
    assert "crslab-mscrs build-data" in result.stderr


def test_a_missing_graph_file_names_make_features(tmp_path):
    result = run_cli(tmp_path, "--config", "mscrs/sample", "--set", f"features_dir={tmp_path / 'none'}")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "cooccurrence_graph.pt not found" in result.stderr and "make features" in result.stderr


def test_kgsf_without_its_copy_mask_names_build_data_instead_of_downloading(tmp_path):
    from crslab_mscrs.data.sample import sample_data_root

    root = tmp_path / "root"
    root.mkdir()
    (root / "dataset").symlink_to(Path(sample_data_root()) / "dataset")  # the dataset, no model/
    result = run_cli(tmp_path, "--config", "kgsf/sample", "--data-root", str(root))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "KGSF copy mask not found" in result.stderr and "build-data" in result.stderr
