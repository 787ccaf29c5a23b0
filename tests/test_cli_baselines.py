"""End to end through our CLI: KBRD and KGSF train and evaluate on the embedded sample.

These are the CRSLab models themselves (not re-implementations), run through
``run_crslab.py`` with the compatibility layer, on the sample copied into a temporary
data root; the test split's rankings and metrics land in the files the benchmark reads.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FAST = ["--set", "rec.epoch=1", "--set", "conv.epoch=1", "--set", "pretrain.epoch=1",
        "--set", "response_truncate=5", "--set", "scale=0.3"]


def run_cli(tmp_path, config, *extra):
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "run_crslab.py"), "--config", str(REPO / config),
           "--rankings-out", str(out / "rankings.jsonl"), "--metrics-out", str(out / "metrics.json"), *extra]
    result = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    rankings = [json.loads(line) for line in (out / "rankings.jsonl").read_text().splitlines()]
    metrics = json.loads((out / "metrics.json").read_text())
    return rankings, metrics


@pytest.mark.parametrize("config", ["config/kbrd/sample.yaml", "config/kgsf/sample.yaml"])
def test_baseline_trains_and_writes_test_rankings_and_metrics(tmp_path, config):
    rankings, metrics = run_cli(tmp_path, config, *FAST)
    assert rankings, "no test recommendation turn was ranked"
    items = set(json.loads((tmp_path / "data/sample/dataset/redial/nltk/movie_ids.json").read_text()))
    for row in rankings:
        assert row["turn_index"] >= 1 and row["conv_id"]
        assert len(row["ranked_items"]) == min(100, len(items))
        assert set(row["ranked_items"]) <= items
        assert len(set(row["ranked_items"])) == len(row["ranked_items"])
    test = metrics["crslab_test_metrics"]
    assert 0.0 <= test["hit@1"] <= test["hit@10"] <= test["hit@50"] <= 1.0
    assert "dist@1" in test and "bleu@1" in test and "dist_ratio@1" in test
    assert metrics["model"] in ("KBRD", "KGSF") and metrics["scale"] == 0.3
    # the generated test replies are scored by OUR generation metrics, under the key our systems use
    generation = metrics["stages"]["conv"]["test"]["generation"]
    replies = [json.loads(line) for line in (tmp_path / "out" / "test_replies.jsonl")
               .read_text().splitlines()]
    assert generation["available"] and generation["n_replies"] == len(replies) > 0
    assert 0.0 <= generation["item_ratio"] <= 1.0 and "bleu@1" in generation and "dist@1" in generation
    # nothing was written next to the code: data and logs stay in the working folder
    assert not (REPO / "crslab_mscrs" / "sample" / "dataset" / "redial" / "nltk" / "all_data.pkl").exists()


def test_unknown_config_key_fails_with_a_message_naming_it(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "config/kbrd/sample.yaml").read_text() + "\nlearnig_rate: 0.1\n")
    result = subprocess.run([sys.executable, str(REPO / "run_crslab.py"), "--config", str(bad)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "learnig_rate" in result.stderr and str(bad) in result.stderr


def test_model_that_cannot_be_loaded_fails_with_a_message_naming_the_key(tmp_path):
    missing = tmp_path / "no-model-here"
    missing.mkdir()
    result = subprocess.run([sys.executable, str(REPO / "run_crslab.py"), "--config",
                             str(REPO / "config/mscrs/sample.yaml"), "--set", f"lm={missing}"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: config key `lm`" in result.stderr and str(missing) in result.stderr
    assert "Traceback" not in result.stderr


def test_stages_key_skips_the_conversation_stage(tmp_path):
    rankings, metrics = run_cli(tmp_path, "config/kbrd/sample.yaml", *FAST, "--set", "stages=[rec]")
    assert rankings and metrics["stages_run"] == ["rec"] and set(metrics["stages"]) == {"rec"}
    assert metrics["stages"]["rec"]["budget"]["full_epochs"] and len(metrics["stages"]["rec"]["valid_history"]) == 1
    test = metrics["crslab_test_metrics"]
    assert "hit@10" in test and "bleu@1" not in test  # no generation was evaluated


def test_unknown_stage_name_is_rejected():
    from crslab_mscrs.compat.stage_selection import select_stages

    with pytest.raises(ValueError, match="recommend"):
        select_stages(object(), ["recommend"])
