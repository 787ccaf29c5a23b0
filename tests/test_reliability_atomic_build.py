"""Atomic builds: the previous good build survives a failed or killed build (issue 16, item 4)."""
import os

import pytest

from crslab_mscrs.data.atomic_build import AtomicBuild, atomic_build, recover_leftovers


def _good_build(folder):
    folder.mkdir(parents=True)
    (folder / "train_data.json").write_text("old")
    (folder / ".built").write_text("t\n0.31")


def test_success_replaces_the_previous_build(tmp_path):
    out = tmp_path / "nltk"
    _good_build(out)
    (out / "stale_file.json").write_text("from an older build")
    with atomic_build(out) as tmp:
        assert tmp.name == f"nltk.tmp-{os.getpid()}" and not any(tmp.iterdir())
        (tmp / "train_data.json").write_text("new")
        (tmp / ".built").write_text("t\n0.31")
    assert (out / "train_data.json").read_text() == "new"
    assert not (out / "stale_file.json").exists()  # no mix of old and new files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nltk"]


def test_failure_keeps_the_previous_build_and_removes_the_temporary_folder(tmp_path):
    out = tmp_path / "nltk"
    _good_build(out)
    with pytest.raises(RuntimeError, match="late failure"):
        with atomic_build(out) as tmp:
            (tmp / "train_data.json").write_text("half")
            raise RuntimeError("late failure")
    assert (out / "train_data.json").read_text() == "old"
    assert (out / ".built").read_text() == "t\n0.31"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nltk"]


def test_two_folders_are_swapped_only_when_the_whole_build_succeeds(tmp_path):
    data, mask = tmp_path / "dataset" / "nltk", tmp_path / "model" / "ReDial"
    _good_build(data)
    with pytest.raises(ValueError):
        with AtomicBuild() as build:
            build.stage(data)
            (build.stage(mask) / "copy_mask.npy").write_text("new")
            raise ValueError("boom")
    assert not mask.exists() and (data / ".built").exists()


def test_a_killed_build_leaves_nothing_the_next_build_trips_over(tmp_path):
    out = tmp_path / "nltk"
    _good_build(out)
    dead_pid = 2 ** 22 + 12345  # above Linux's pid_max: no such process
    (tmp_path / f"nltk.tmp-{dead_pid}").mkdir()  # killed while writing
    recover_leftovers(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nltk"]


def test_a_kill_between_the_two_renames_restores_the_previous_build(tmp_path):
    out = tmp_path / "nltk"
    _good_build(tmp_path / "nltk.old-999999")  # final renamed away, new one never moved in
    recover_leftovers(out)
    assert (out / ".built").exists() and (out / "train_data.json").read_text() == "old"
