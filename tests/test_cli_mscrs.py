"""MSCRS end to end through ``run_crslab.py`` (CRSLab's Config, registries and loaders), on
the embedded sample with the tiny random models of ``config/mscrs/sample.yaml``."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHORT = ["--set", "pretrain.max_batches_per_epoch=2", "--set", "rec.max_batches_per_epoch=2",
         "--set", "conv.max_batches_per_epoch=2",
         "--set", "max_new_tokens=4"]


def test_mscrs_runs_every_stage_through_the_cli(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "run_crslab.py"), "--config", str(REPO / "config/mscrs/sample.yaml"),
           "--rankings-out", str(out / "rankings.jsonl"), "--metrics-out", str(out / "metrics.json"),
           "--save-dir", str(tmp_path / "save"), *SHORT]
    result = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["stages"]) == {"pretrain", "rec", "conv"}
    assert 0.0 <= metrics["stages"]["rec"]["test"]["recall@10"] <= 1.0
    generation = metrics["stages"]["conv"]["test"]["generation"]
    (run_dir,) = (tmp_path / "save").iterdir()
    replies = (run_dir / "test_replies.jsonl").read_text().splitlines()
    assert generation["n_replies"] == len(replies) > 0
    assert not (run_dir / "test_generation.journal.jsonl").exists()  # finished: the replies are in their file
    assert (out / "rankings.jsonl").read_text().strip()
