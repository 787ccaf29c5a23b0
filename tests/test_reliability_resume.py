"""Exact resume wherever the kill lands (issue 16, item 1): a sample run killed in epoch 0 of
rec, in epoch 0 of conv (before either stage wrote its first checkpoint) or inside test
generation, then resumed with ``-rs``, writes the same rankings, metrics and replies, byte
for byte, as the run that was never killed."""
import json
from pathlib import Path

import pytest

from crslab_mscrs.cli import main
from crslab_mscrs.training.generation import Generation
from crslab_mscrs.training.system import MSCRSSystem

REPO = Path(__file__).resolve().parents[1]
SHORT = ["--set", "pretrain.max_batches_per_epoch=2", "--set", "rec.max_batches_per_epoch=3",
         "--set", "conv.max_batches_per_epoch=3", "--set", "max_new_tokens=4"]


class SimulatedKill(BaseException):
    """What a SIGKILL leaves: the run stops between two lines, nothing is cleaned up."""


def train(folder: Path, *flags: str) -> int:
    """The sample config through the command line, outputs under ``folder``."""
    return main(["--config", str(REPO / "config/mscrs/sample.yaml"), "-g", "-1", "--save-dir", str(folder / "save"),
                 "--rankings-out", str(folder / "rankings.jsonl"), "--metrics-out", str(folder / "metrics.json"),
                 *SHORT, *flags])


def outputs(folder: Path) -> dict:
    """The run's output files as bytes; ``train_seconds`` (wall clock) is left out of metrics."""

    def without_seconds(value):
        if isinstance(value, dict):
            return {k: without_seconds(v) for k, v in value.items() if k != "train_seconds"}
        return value

    (run_dir,) = (folder / "save").iterdir()
    metrics = without_seconds(json.loads((folder / "metrics.json").read_text()))
    return {"rankings.jsonl": (folder / "rankings.jsonl").read_bytes(),
            "run rankings.jsonl": (run_dir / "rankings.jsonl").read_bytes(),
            "test_replies.jsonl": (run_dir / "test_replies.jsonl").read_bytes(),
            "metrics.json": json.dumps(metrics, indent=2, sort_keys=True).encode()}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # CRSLab writes ./log
        assert train(folder) == 0
    return folder


def kill_at_training_batch(monkeypatch, stage: str, batch: int) -> None:
    """Kill the run in the middle of training batch number ``batch`` of ``stage``."""
    original, seen = MSCRSSystem.step, []

    def step(self, data, step_stage, mode):
        if step_stage == stage and mode == "train":
            seen.append(1)
            if len(seen) == batch:
                raise SimulatedKill(f"{stage} batch {batch}")
        return original(self, data, step_stage, mode)

    monkeypatch.setattr(MSCRSSystem, "step", step)


def kill_after_generated_batches(monkeypatch, n_batches: int) -> None:
    seen = []

    def saved(self, n_done):
        seen.append(n_done)
        if len(seen) == n_batches:
            raise SimulatedKill(f"test generation after {n_done} replies")

    monkeypatch.setattr(Generation, "on_replies_saved", saved)


@pytest.mark.parametrize("where", ["rec epoch 0", "conv epoch 0", "test generation"])
def test_a_run_killed_anywhere_resumes_to_the_uninterrupted_outputs(where, uninterrupted, tmp_path, monkeypatch,
                                                                   capfd):
    monkeypatch.chdir(tmp_path)
    with monkeypatch.context() as patch:
        if where == "test generation":
            kill_after_generated_batches(patch, 2)
        else:
            kill_at_training_batch(patch, where.split()[0], 2)  # before the stage's first checkpoint
        with pytest.raises(SimulatedKill):
            train(tmp_path)
    assert train(tmp_path, "-rs") == 0
    log = capfd.readouterr().err
    assert "[Resuming " in log and "resume is exact" in log
    resumed = outputs(tmp_path)
    for name, expected in outputs(uninterrupted).items():
        assert resumed[name] == expected, f"{name} differs after a kill in {where}"


def test_a_resume_that_cannot_be_exact_says_so(uninterrupted, tmp_path, monkeypatch, capfd):
    """``last.pth`` written on a GPU, resumed on this CPU: the log says the resume is NOT exact."""
    import shutil

    from crslab_mscrs.training.checkpoint import load_checkpoint, save_run_checkpoint

    monkeypatch.chdir(tmp_path)
    shutil.copytree(uninterrupted / "save", tmp_path / "save")
    (last,) = (tmp_path / "save").glob("*/last.pth")
    checkpoint = load_checkpoint(last)
    checkpoint.device = "cuda"
    save_run_checkpoint(checkpoint, last)
    assert train(tmp_path, "-rs") == 0
    log = capfd.readouterr().err
    assert "resume is NOT exact: written on cuda, resumed on cpu" in log and "resume is exact" not in log


def test_a_truncated_last_checkpoint_falls_back_to_the_previous_one(uninterrupted, tmp_path, monkeypatch, capfd):
    """``last.pth`` cut in half (a full disk): the resume says so, goes on from ``last.prev.pth``
    and still ends with the uninterrupted run's outputs."""
    monkeypatch.chdir(tmp_path)
    with monkeypatch.context() as patch:
        kill_at_training_batch(patch, "conv", 2)
        with pytest.raises(SimulatedKill):
            train(tmp_path)
    (last,) = (tmp_path / "save").glob("*/last.pth")
    assert (last.parent / "last.prev.pth").is_file()
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    assert train(tmp_path, "-rs") == 0
    log = capfd.readouterr().err
    assert f"{last} is unreadable" in log and f"resuming from the previous checkpoint {last.parent / 'last.prev.pth'}" in log
    assert (last.parent / "last.unreadable.pth").is_file()  # kept for a look, never made last.prev.pth
    for name, expected in outputs(uninterrupted).items():
        assert outputs(tmp_path)[name] == expected, name


def test_the_benchmark_harness_reports_an_inexact_resume(tmp_path, monkeypatch):
    """``--resume`` of a run that logs "resume is NOT exact" is not reported as a plain resume."""
    from test_eval_benchmark import N_ITEMS, harness, make_tiny_dataset, write_model_config

    root = make_tiny_dataset(tmp_path / "data")
    run_dir = write_model_config(tmp_path, "MSCRS")
    out = tmp_path / "results"

    def fake_run(cmd, log_path, timeout, append=False):
        with open(log_path, "a" if append else "w") as log:
            if not append:  # killed
                return -9, 1.0, 1.0
            log.write("WARNING | [Resuming save/x: finished stages ['pretrain'], between stages; resume is NOT exact: "
                      "written on cuda, resumed on cpu (other kernels and random streams)]\n")
        with open(run_dir / "rankings.jsonl", "w") as f:
            for conv_id, turn in (("t1", 1), ("t1", 3), ("t2", 1), ("t2", 3)):
                f.write(json.dumps({"conv_id": conv_id, "turn_index": turn, "ranked_items": list(range(N_ITEMS))[:100]})
                        + "\n")
        (run_dir / "metrics.json").write_text(json.dumps({"stages": {}}))
        return 0, 1.0, 1.0

    monkeypatch.setattr(harness, "run_subprocess", fake_run)
    args = ["--models", "mscrs", "--datasets", "redial", "--data-root", str(root), "--out", str(out), "--seeds", "0",
            "--config-dir", str(tmp_path / "configs"), "--shared-data", str(tmp_path / "none")]
    assert harness.main(args) == 1
    assert harness.main(args + ["--resume"]) == 0
    (run,) = json.loads((out / "runs.json").read_text())
    assert "resume is NOT exact: written on cuda, resumed on cpu (other kernels and random streams)" in run["notes"]


def test_a_time_bounded_stage_makes_the_resume_inexact():
    """A stage with ``time_limit_min`` trains as many batches as the wall clock allows."""
    import torch

    from crslab_mscrs.training.run_state import RngState, RunCheckpoint

    checkpoint = RunCheckpoint(["pretrain"], None, {"w": torch.zeros(1)}, None, None, 0, RngState.capture(), {}, "cpu")
    assert checkpoint.inexact_reasons("cpu") == []
    (reason,) = checkpoint.inexact_reasons("cpu", ["rec"])
    assert reason.startswith("stage(s) rec bounded by time_limit_min")


def test_another_cpu_thread_count_makes_the_resume_inexact(monkeypatch):
    """Float sums are split across threads: a resume with other threads differs in the last digits."""
    import torch

    from crslab_mscrs.training.run_state import RngState, RunCheckpoint

    checkpoint = RunCheckpoint(["pretrain"], None, {"w": torch.zeros(1)}, None, None, 0, RngState.capture(), {},
                               "cpu", cpu_threads=torch.get_num_threads())
    assert checkpoint.inexact_reasons("cpu") == []
    restored = RunCheckpoint.from_plain(checkpoint.to_plain())
    monkeypatch.setattr(torch, "get_num_threads", lambda: checkpoint.cpu_threads + 1)
    (reason,) = restored.inexact_reasons("cpu")
    assert reason.startswith(f"written with {checkpoint.cpu_threads} CPU thread(s), resumed with "
                             f"{checkpoint.cpu_threads + 1}")


SIGKILL_AT_REC_BATCH_2 = """
import os, signal, sys
import torch
torch.set_num_threads(1)  # as the test process (conftest.py): another thread count changes float sums
sys.path.insert(0, sys.argv[1])
from crslab_mscrs.cli import main
from crslab_mscrs.training.system import MSCRSSystem
original, seen = MSCRSSystem.step, []
def step(self, data, stage, mode):
    if stage == "rec" and mode == "train":
        seen.append(1)
        if len(seen) == 2:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup at all: the lock stays behind
    return original(self, data, stage, mode)
MSCRSSystem.step = step
sys.exit(main(sys.argv[2:]))
"""


def test_a_process_killed_with_sigkill_resumes_exactly_and_takes_over_its_stale_lock(uninterrupted, tmp_path,
                                                                                     monkeypatch, capfd):
    import subprocess
    import sys

    flags = ["--config", str(REPO / "config/mscrs/sample.yaml"), "-g", "-1", "--save-dir", str(tmp_path / "save"),
             "--rankings-out", str(tmp_path / "rankings.jsonl"), "--metrics-out", str(tmp_path / "metrics.json"),
             *SHORT]
    killed = subprocess.run([sys.executable, "-c", SIGKILL_AT_REC_BATCH_2, str(REPO), *flags], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    (lock,) = (tmp_path / "save").glob("*/run.lock")
    dead_pid = json.loads(lock.read_text())["pid"]
    monkeypatch.chdir(tmp_path)
    assert train(tmp_path, "-rs") == 0
    log = capfd.readouterr().err
    assert f"stale lock of process {dead_pid}" in log and "resume is exact" in log
    assert not lock.exists()
    for name, expected in outputs(uninterrupted).items():
        assert outputs(tmp_path)[name] == expected, name
