"""Checkpoints never run code (issue 16, item 2): every checkpoint opens with
``torch.load(weights_only=True)``; a planted pickle in ``last.pth`` (resume, ``-rs``) or
``conv_best.pth`` (chat, ``-i``) is refused with a message naming the file, and its payload
never runs."""
import io
import os
import pickle
import sys
from pathlib import Path

import pytest
import torch

from crslab_mscrs.cli import main
from crslab_mscrs.training.checkpoint import CheckpointError, load_checkpoint, load_checkpoint_weights

REPO = Path(__file__).resolve().parents[1]


class ShellPayload:
    """Unpickling this runs ``touch <marker>`` (what a malicious checkpoint would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def plant(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"version": 2, "model": {}, "completed": ShellPayload(marker)}, path)


def sample(folder: Path, *flags: str) -> int:
    return main(["--config", str(REPO / "config/mscrs/sample.yaml"), "-g", "-1", "--save-dir", str(folder / "save"),
                 "--set", "run_name=planted", *flags])


def test_loading_functions_refuse_a_planted_pickle(tmp_path):
    marker = tmp_path / "payload_ran"
    plant(tmp_path / "last.pth", marker)
    plant(tmp_path / "conv_best.pth", marker)
    with pytest.raises(CheckpointError, match=r"last\.pth: .*refused to open it"):
        load_checkpoint(tmp_path / "last.pth")
    with pytest.raises(CheckpointError, match=r"conv_best\.pth: .*refused to open it"):
        load_checkpoint_weights(tmp_path / "conv_best.pth")
    assert not marker.exists()
    pickle.loads(pickle.dumps(ShellPayload(marker)))  # the payload is real: a plain unpickle runs it
    assert marker.exists()


@pytest.mark.parametrize("planted, flags", [("last.pth", ["-rs"]), ("conv_best.pth", ["-i"])])
def test_the_command_line_refuses_a_planted_checkpoint(planted, flags, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO("hi\n[EXIT]\n"))
    marker = tmp_path / "payload_ran"
    plant(tmp_path / "save" / "planted" / planted, marker)
    assert sample(tmp_path, *flags) == 2
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'save' / 'planted' / planted}: not a checkpoint of version 2: refused" in err
    assert not marker.exists()


def test_no_weights_only_false_in_the_repository():
    offenders = [f"{path.relative_to(REPO)}:{number}"
                 for folder in ("crslab_mscrs", "benchmarks", "data_prep", "tests")
                 for path in (REPO / folder).rglob("*.py")
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
                 if "weights_only=" + "False" in line.replace(" ", "")]
    assert offenders == []
