"""One process per run folder (issue 16, item 3): ``run.lock`` refuses a second live process,
a stale lock is taken over with a message, every atomic writer has its own temporary name,
and the benchmark harness's runs die with it and never start on a folder still in use."""
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from crslab_mscrs.cli import main
from crslab_mscrs.training.run_lock import LOCK_NAME, LockOwner, RunFolderLocked, RunLock, process_start_time

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def holder(tmp_path):
    """``tmp_path/run`` locked by another live process (killed at the end)."""
    folder = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    folder.mkdir()
    owner = LockOwner(process.pid, LockOwner.this_process().host, process_start_time(process.pid), "a minute ago")
    (folder / LOCK_NAME).write_text(json.dumps(asdict(owner)))
    yield folder, process
    process.kill()
    process.wait()


def test_a_live_lock_is_refused_naming_the_folder_and_pid(holder):
    folder, process = holder
    with pytest.raises(RunFolderLocked, match=rf"run folder {folder} is in use by process {process.pid} on "):
        RunLock(folder).acquire()
    assert LockOwner.read(folder / LOCK_NAME).pid == process.pid  # left alone


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_message(holder, capfd):
    from crslab_mscrs.cli import configure_logging

    folder, process = holder
    process.kill()  # SIGKILL: no cleanup, the lock stays
    process.wait()
    assert (folder / LOCK_NAME).is_file()
    configure_logging(None, False)
    with RunLock(folder):
        assert LockOwner.read(folder / LOCK_NAME).pid == os.getpid()
    assert not (folder / LOCK_NAME).exists()  # released
    assert f"stale lock of process {process.pid}" in capfd.readouterr().err


def test_a_reused_pid_is_a_stale_lock(tmp_path):
    """The PID of the dead owner now belongs to a process started later (here: this one)."""
    me = LockOwner.this_process()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": me.pid, "host": me.host, "start_time": -1}))
    with RunLock(tmp_path):
        assert LockOwner.read(tmp_path / LOCK_NAME) == me


def test_a_lock_from_another_host_is_refused_with_what_to_do(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1234, "host": "gpu-node-7"}))
    with pytest.raises(RunFolderLocked, match=r"process 1234 on gpu-node-7.*delete .*run\.lock"):
        RunLock(tmp_path).acquire()


def test_only_rank_zero_locks(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    with RunLock(tmp_path):
        assert not (tmp_path / LOCK_NAME).exists()


def test_training_refuses_a_run_folder_in_use(holder, tmp_path, monkeypatch, capsys):
    folder, process = holder
    monkeypatch.chdir(tmp_path)
    code = main(["--config", str(REPO / "config/mscrs/sample.yaml"), "-g", "-1", "--save-dir", str(folder.parent),
                 "--set", f"run_name={folder.name}"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"run folder {folder} is in use by process {process.pid}" in err
    assert not (folder / "last.pth").exists()


def test_every_atomic_writer_uses_its_own_temporary_name(tmp_path, monkeypatch):
    """Two processes writing one file never share a temporary file: each name is unique, holds
    the writer's PID and lies in the target's folder."""
    from crslab_mscrs.evaluation.rankings import RankingRecord, write_rankings
    from crslab_mscrs.graphs.storage import update_manifest
    from crslab_mscrs.training.checkpoint import atomic_save
    from crslab_mscrs.training.generation_journal import GenerationJournal
    from crslab_mscrs.training.outputs import write_metrics_file

    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (replaced.append((Path(src), Path(dst))),
                                                         real_replace(src, dst))[1])
    writers = {
        "checkpoint": lambda: atomic_save({"w": torch.zeros(1)}, tmp_path / "last.pth"),
        "rankings": lambda: write_rankings(tmp_path / "rankings.jsonl", [RankingRecord("c", 1, [1, 2])], min_length=1),
        "journal": lambda: GenerationJournal(tmp_path / "journal.jsonl", {"k": 1})._rewrite(),
        "manifest": lambda: update_manifest(tmp_path, "g.pt", {"sha256": "0"}),
        "metrics": lambda: write_metrics_file(tmp_path / "metrics.json", {"stages": {}}),
    }
    for name, write in writers.items():
        replaced.clear()
        write()
        write()
        (first_tmp, target), (second_tmp, _) = replaced[-2:]
        assert first_tmp != second_tmp, name
        assert first_tmp.parent == target.parent and str(os.getpid()) in first_tmp.name, (name, first_tmp)
        assert not list(tmp_path.glob(".*.tmp")), name  # nothing left behind


def test_harness_runs_die_with_the_harness(tmp_path):
    """Killing only the harness (SIGKILL, no cleanup) takes its run down too (Linux)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux only")
    child_pid = tmp_path / "child.pid"
    child = f"import os, time; open({str(child_pid)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    harness = ("import sys\nsys.path.insert(0, sys.argv[1] + '/tests')\nfrom pathlib import Path\n"
               "from script_loader import load_benchmark_script\n"
               "bench = load_benchmark_script('run_benchmark')\n"
               f"bench.run_subprocess([sys.executable, '-c', {child!r}], Path(sys.argv[2]), None)\n")
    process = subprocess.Popen([sys.executable, "-c", harness, str(REPO), str(tmp_path / "run.log")])
    deadline = time.time() + 60
    while not (child_pid.is_file() and child_pid.read_text()) and time.time() < deadline:
        time.sleep(0.1)
    pid = int(child_pid.read_text())
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    for _ in range(50):
        if not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail(f"run {pid} outlived its harness")


def test_harness_resume_refuses_a_folder_a_live_run_still_holds(tmp_path, monkeypatch):
    from test_eval_benchmark import harness, make_tiny_dataset, write_model_config

    root = make_tiny_dataset(tmp_path / "data")
    left_behind = write_model_config(tmp_path, "MSCRS") / "checkpoints" / "ReDial_MSCRS_seed0_abc"
    out = tmp_path / "results"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        left_behind.mkdir(parents=True)
        owner = LockOwner(sleeper.pid, LockOwner.this_process().host, process_start_time(sleeper.pid))
        (left_behind / LOCK_NAME).write_text(json.dumps(asdict(owner)))
        started = []
        monkeypatch.setattr(harness, "run_subprocess", lambda cmd, *a, **k: started.append(cmd) or (0, 1.0, 1.0))
        args = ["--models", "mscrs", "--datasets", "redial", "--data-root", str(root), "--out", str(out),
                "--seeds", "0", "--config-dir", str(tmp_path / "configs"), "--shared-data", str(tmp_path / "none")]
        assert harness.main(args + ["--resume"]) == 1
        assert started == []  # no second process on the same checkpoints
        (run,) = json.loads((out / "runs.json").read_text())
        assert f"still in use by process {sleeper.pid}" in run["error"]
    finally:
        sleeper.kill()
        sleeper.wait()
