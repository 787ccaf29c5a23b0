"""Bad input and faults during dataset builds (issue 16, item 4), on a tiny synthetic ReDial.

A build either succeeds completely or leaves the previous good build exactly as it was;
bad input is an error naming the file (and the line where there is one).
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from crslab_mscrs.data import BuildOptions, build_redial
from crslab_mscrs.data.jsonl import JsonlFormatError
from test_build_units import _write_toy_source

REPO = Path(__file__).resolve().parents[1]
OPTIONS = BuildOptions(valid_fraction=0.25, seed=1, word_min_pair_count=1, concept_min_count=1)


def _snapshot(root: Path) -> dict:
    """Every file under ``root`` (relative path -> bytes)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def good_build(tmp_path):
    """A toy source and a data root holding one good ReDial build."""
    source = _write_toy_source(tmp_path / "src")
    data = tmp_path / "data"
    build_redial(source, data, OPTIONS, echo=False)
    return source, data


def test_empty_split_is_an_error_naming_the_file(good_build):
    source, data = good_build
    before = _snapshot(data)
    (source / "redial" / "raw" / "test_data.jsonl").write_text("\n")
    with pytest.raises(ValueError, match=r"test_data\.jsonl: the test split has no conversations"):
        build_redial(source, data, OPTIONS, echo=False)
    assert _snapshot(data) == before


def test_empty_valid_carve_is_an_error_naming_the_pool(good_build):
    source, data = good_build
    with pytest.raises(ValueError, match=r"train_pool\.jsonl: the valid split has no conversations \(valid_fraction 0"):
        build_redial(source, data, BuildOptions(valid_fraction=0.0), echo=False)


def test_late_failure_keeps_the_previous_build(good_build, monkeypatch):
    source, data = good_build
    before = _snapshot(data)
    (source / "redial" / "raw" / "test_data.jsonl").write_text(
        (source / "redial" / "raw" / "train_pool.jsonl").read_text())  # the new build would differ

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("crslab_mscrs.data.redial.save_copy_mask", fail)  # the last file written
    with pytest.raises(OSError, match="disk full"):
        build_redial(source, data, OPTIONS, echo=False)
    assert _snapshot(data) == before  # .built, data files and the KGSF copy mask: all the old build's
    assert sorted(p.name for p in (data / "dataset" / "redial").iterdir()) == ["nltk"]
    assert sorted(p.name for p in (data / "model" / "kgsf").iterdir()) == ["ReDial"]


def test_a_build_killed_midway_leaves_the_previous_build_and_the_next_build_cleans_up(good_build, tmp_path):
    source, data = good_build
    before = _snapshot(data)
    script = (
        "import os, signal, sys\n"
        "sys.path[:0] = [sys.argv[3], sys.argv[4]]\n"
        "import crslab_mscrs.data.redial as r\n"
        "from test_reliability_build import OPTIONS\n"
        "real = r.write_redial_word_graph\n"
        "def killed(*a, **k):\n"
        "    real(*a, **k)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "r.write_redial_word_graph = killed\n"
        "r.build_redial(sys.argv[1], sys.argv[2], OPTIONS, echo=False)\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script, str(source), str(data), str(REPO), str(REPO / "tests")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    leftovers = [p.name for p in (data / "dataset" / "redial").iterdir() if p.name != "nltk"]
    assert leftovers and leftovers[0].startswith("nltk.tmp-")  # half a build, beside the good one
    assert _snapshot(data / "dataset" / "redial" / "nltk") == {
        k[len("dataset/redial/nltk/"):]: v for k, v in before.items() if k.startswith("dataset/redial/nltk/")}
    build_redial(source, data, OPTIONS, echo=False)
    assert sorted(p.name for p in (data / "dataset" / "redial").iterdir()) == ["nltk"]
    assert (data / "dataset" / "redial" / "nltk" / ".built").is_file()


def test_non_utf8_raw_input_names_file_and_line(tmp_path):
    source = _write_toy_source(tmp_path / "src")
    pool = source / "redial" / "raw" / "train_pool.jsonl"
    lines = pool.read_bytes().splitlines()
    lines[2] = lines[2].replace(b"scary", b"sc\xff\xfery")
    pool.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(JsonlFormatError, match=r"train_pool\.jsonl:3: .*UnicodeDecodeError"):
        build_redial(source, tmp_path / "data", OPTIONS, echo=False)


def test_truncated_kg_json_names_file_and_line(tmp_path):
    source = _write_toy_source(tmp_path / "src")
    kg = source / "redial" / "kg" / "dbpedia_subkg.json"
    kg.write_text(json.dumps({"1": [[7, 4]], "2": [[8, 5]]}, indent=1)[:-12])
    with pytest.raises(JsonlFormatError, match=r"dbpedia_subkg\.json:\d+: .*truncated"):
        build_redial(source, tmp_path / "data", OPTIONS, echo=False)


def test_non_utf8_kg_json_names_file_and_line(tmp_path):
    source = _write_toy_source(tmp_path / "src")
    names = source / "redial" / "kg" / "mid2name_redial.json"
    names.write_bytes(b'{"100": "Jaws",\n "200": "Al\xe9n"}')
    with pytest.raises(JsonlFormatError, match=r"mid2name_redial\.json:2: .*not UTF-8"):
        build_redial(source, tmp_path / "data", OPTIONS, echo=False)


def test_feature_pipeline_refuses_a_dataset_folder_without_built_marker(good_build):
    from crslab_mscrs.data.crslab_format import IncompleteBuildError
    from crslab_mscrs.features.pipeline import FeaturePipeline

    _, data = good_build
    (data / "dataset" / "redial" / "nltk" / ".built").unlink()  # e.g. a build of an older version, killed
    with pytest.raises(IncompleteBuildError, match=r"nltk has no \.built marker.*build_datasets\.py --datasets redial"):
        FeaturePipeline("redial", {}, data_root=data)


def _write_toy_inspired(root: Path) -> Path:
    kg, raw = root / "inspired" / "kg", root / "inspired" / "raw"
    kg.mkdir(parents=True)
    raw.mkdir(parents=True)
    uris = ["<Jaws>", "<Alien>", "<Horror>"]
    (kg / "entity2id.json").write_text(json.dumps({u: i for i, u in enumerate(uris)}))
    (kg / "dbpedia_subkg.json").write_text(json.dumps({"0": [[0, 2]], "1": [[0, 2]]}))
    (kg / "item_ids.json").write_text("[0, 1]")
    (kg / "relation2id.json").write_text(json.dumps({"<genre>": 0}))

    def turn(role, text, movies=()):
        return {"role": role, "text": text, "movie_link": [f"<{m}>" for m in movies], "movie_name": list(movies),
                "entity_link": ["<Horror>"]}

    dialogue = [turn("SEEKER", "I like scary horror movies"), turn("RECOMMENDER", "scary horror : Jaws", ["Jaws"]),
                turn("SEEKER", "scary Alien then", ["Alien"])]
    for split in ("train", "valid", "test"):
        (raw / f"{split}_data_dbpedia.jsonl").write_text("\n".join(json.dumps(dialogue) for _ in range(3)) + "\n")
    return root


def test_inspired_empty_split_and_late_failure_keep_the_previous_build(tmp_path, monkeypatch):
    from crslab_mscrs.data import build_inspired

    source, data = _write_toy_inspired(tmp_path / "src"), tmp_path / "data"
    build_inspired(source, data, OPTIONS, echo=False)
    before = _snapshot(data)
    assert (data / "dataset" / "inspired" / "nltk" / ".built").is_file()
    valid = source / "inspired" / "raw" / "valid_data_dbpedia.jsonl"
    valid.write_text("")
    with pytest.raises(ValueError, match=r"valid_data_dbpedia\.jsonl: the valid split has no conversations"):
        build_inspired(source, data, OPTIONS, echo=False)
    valid.write_text((source / "inspired" / "raw" / "test_data_dbpedia.jsonl").read_text())
    monkeypatch.setattr("crslab_mscrs.data.inspired_layout.write_item_names", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        build_inspired(source, data, OPTIONS, echo=False)
    assert _snapshot(data) == before


def test_features_script_refuses_an_unfinished_dataset_folder_with_a_message(good_build):
    _, data = good_build
    (data / "dataset" / "redial" / "nltk" / ".built").unlink()
    proc = subprocess.run([sys.executable, str(REPO / "data_prep" / "features.py"), "build-graphs",
                           "--dataset", "redial", "--data-root", str(data)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode != 0
    assert "error: dataset folder" in proc.stderr and "has no .built marker" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (data / "features").exists()  # no graph built from it


def test_features_script_set_value_that_is_not_yaml_is_a_message(capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("features_script", REPO / "data_prep" / "features.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    code = script.main(["build-graphs", "--dataset", "redial", "--set", "graphs.text_knn.k=[1,"])
    assert code == 2
    assert "graphs.text_knn.k=[1,': the value is not valid YAML" in capsys.readouterr().err
