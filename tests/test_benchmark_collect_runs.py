"""benchmarks/collect_runs.py: runs from separate invocations gathered into one benchmark folder."""
import json
from pathlib import Path

import pytest

from script_loader import load_benchmark_script

collector = load_benchmark_script("collect_runs")


def make_run(root: Path, model: str, dataset: str, seed: int, ranking=(1, 2, 3), overrides=("rec.epoch=1",),
             hardware="2 cores, no GPU", complete=True, exit_code=0) -> Path:
    """A run folder as run_benchmark.py writes it (tiny contents)."""
    run = root / "runs" / model / dataset / f"seed{seed}"
    run.mkdir(parents=True)
    (run / "rankings.jsonl").write_text(json.dumps({"conv_id": "c1", "turn": 1, "ranking": list(ranking)}) + "\n")
    if complete:
        (run / "metrics.json").write_text(json.dumps({"stages": {}}))
    command = ["python", "run_crslab.py", "--seed", str(seed)]
    for override in overrides:
        command += ["--set", override]
    (run / "run_stats.json").write_text(json.dumps({"exit_code": exit_code, "config": f"config/{model}/{dataset}.yaml",
                                                    "hardware": hardware, "command": command}))
    (run / "model.pth").write_bytes(b"weights")
    return run


def test_runs_of_several_folders_are_gathered_without_checkpoints(tmp_path):
    make_run(tmp_path / "a", "mscrs", "redial", 0)
    make_run(tmp_path / "b", "mscrs", "redial", 1)
    out = tmp_path / "current"

    lines = collector.collect([tmp_path / "a", tmp_path / "b"], out)

    for seed in (0, 1):
        copied = out / "runs" / "mscrs" / "redial" / f"seed{seed}"
        assert (copied / "rankings.jsonl").is_file() and (copied / "metrics.json").is_file()
        assert (copied / "run_stats.json").is_file()
        assert not (copied / "model.pth").exists()
    assert sum(line.startswith("copied") for line in lines) == 2
    assert not any(line.startswith("warning") for line in lines)


def test_collecting_twice_copies_nothing_new(tmp_path):
    make_run(tmp_path / "a", "kbrd", "inspired", 0)
    out = tmp_path / "current"
    collector.collect([tmp_path / "a"], out)

    lines = collector.collect([tmp_path / "a"], out)

    assert lines == [f"already there: {out / 'runs' / 'kbrd' / 'inspired' / 'seed0'}"]


def test_a_different_run_at_the_target_is_an_error_unless_replace(tmp_path):
    make_run(tmp_path / "old", "kbrd", "inspired", 0, ranking=(1, 2, 3))
    make_run(tmp_path / "new", "kbrd", "inspired", 0, ranking=(3, 2, 1))
    out = tmp_path / "current"
    collector.collect([tmp_path / "old"], out)
    target = out / "runs" / "kbrd" / "inspired" / "seed0" / "rankings.jsonl"
    before = target.read_text()

    with pytest.raises(collector.CollectError, match="holds a different run"):
        collector.collect([tmp_path / "new"], out)
    assert target.read_text() == before  # nothing lost

    collector.collect([tmp_path / "new"], out, replace=True)
    assert json.loads(target.read_text())["ranking"] == [3, 2, 1]


def test_two_sources_with_different_runs_for_one_seed_copy_nothing(tmp_path):
    make_run(tmp_path / "a", "kgsf", "redial", 2, ranking=(1, 2, 3))
    make_run(tmp_path / "b", "kgsf", "redial", 2, ranking=(9, 8, 7))
    make_run(tmp_path / "b", "kgsf", "redial", 1)
    out = tmp_path / "current"

    with pytest.raises(collector.CollectError, match="two different runs for kgsf/redial/2"):
        collector.collect([tmp_path / "a", tmp_path / "b"], out)
    assert not out.exists()


def test_incomplete_runs_are_skipped_and_listed(tmp_path):
    make_run(tmp_path / "a", "unicrs", "redial", 0, complete=False)
    out = tmp_path / "current"

    lines = collector.collect([tmp_path / "a"], out)

    assert lines == [f"skipped {tmp_path / 'a' / 'runs' / 'unicrs' / 'redial' / 'seed0'}: "
                     "incomplete run (no metrics.json)"]
    assert not (out / "runs" / "unicrs" / "redial" / "seed0").exists()


def test_a_killed_run_that_left_both_outputs_is_skipped(tmp_path):
    """MSCRS writes rankings and metrics after its rec stage: killed in conv, it has both."""
    make_run(tmp_path / "a", "mscrs", "redial", 0, exit_code=-9)
    out = tmp_path / "current"

    lines = collector.collect([tmp_path / "a"], out)

    assert lines == [f"skipped {tmp_path / 'a' / 'runs' / 'mscrs' / 'redial' / 'seed0'}: "
                     "incomplete run (exit code -9 in run_stats.json)"]
    assert not (out / "runs").exists()


def test_seeds_trained_with_different_recipes_are_flagged(tmp_path):
    make_run(tmp_path / "a", "unicrs", "inspired", 0, overrides=("rec.epoch=3",), hardware="NVIDIA H200")
    make_run(tmp_path / "b", "unicrs", "inspired", 1, overrides=("rec.epoch=3", "stages=[rec]"),
             hardware="NVIDIA H200")
    make_run(tmp_path / "b", "unicrs", "inspired", 2, overrides=("rec.epoch=3",), hardware="2 cores, no GPU")

    lines = collector.collect([tmp_path / "a", tmp_path / "b"], tmp_path / "current", dry_run=True)

    warnings = [line for line in lines if line.startswith("warning")]
    assert any("unicrs/inspired: seeds differ in overrides" in w and "seed 1: rec.epoch=3 stages=[rec]" in w
               for w in warnings)
    assert any("seeds differ in hardware" in w for w in warnings)
    assert not (tmp_path / "current").exists()  # a dry run copies nothing


def test_a_value_overridden_later_in_the_command_is_the_same_recipe(tmp_path):
    make_run(tmp_path / "a", "mscrs", "redial", 0, overrides=("rec.epoch=3",))
    make_run(tmp_path / "a", "mscrs", "redial", 1, overrides=("rec.epoch=1", "rec.epoch=3"))

    lines = collector.collect([tmp_path / "a"], tmp_path / "current", dry_run=True)

    assert not [line for line in lines if "differ in overrides" in line]


def test_a_corrupt_run_record_is_an_error_naming_the_file(tmp_path):
    run = make_run(tmp_path / "a", "mscrs", "redial", 0)
    (run / "run_stats.json").write_text('{"exit_code": 0,')
    with pytest.raises(collector.CollectError, match=r"seed0/run_stats.json: not valid JSON"):
        collector.collect([tmp_path / "a"], tmp_path / "current")
    assert not (tmp_path / "current").exists()


def test_command_line_reports_a_folder_without_runs(tmp_path, capsys):
    (tmp_path / "empty").mkdir()

    code = collector.main([str(tmp_path / "empty"), "--out", str(tmp_path / "current")])

    assert code == 2
    assert "no runs/ folder" in capsys.readouterr().err
