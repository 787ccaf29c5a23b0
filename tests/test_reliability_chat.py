"""Interactive mode (``-i``) refuses an untrained model unless the config allows it, and keeps
the dialogue on stdout and its messages on stderr (issue 16, "weak today")."""
import io
import sys
from pathlib import Path

from crslab_mscrs.cli import main

REPO = Path(__file__).resolve().parents[1]
DIALOGUE = ("You: ", "System: ", "Recommended: ")


def chat(folder: Path, monkeypatch, *flags: str) -> int:
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "stdin", io.StringIO("hi i like horror movies\n[EXIT]\n"))
    return main(["--config", str(REPO / "config/mscrs/sample.yaml"), "-g", "-1", "--save-dir", str(folder / "save"),
                 "--set", "max_new_tokens=4", "-i", *flags])


def test_chat_refuses_an_untrained_model(tmp_path, monkeypatch, capsys):
    assert chat(tmp_path, monkeypatch) == 2
    out, err = capsys.readouterr()
    assert "error: no trained model to chat with: " in err and "conv_best.pth does not exist" in err
    assert "allow_untrained: true" in err and "System: " not in out


def test_allow_untrained_chats_with_dialogue_on_stdout_and_messages_on_stderr(tmp_path, monkeypatch, capsys):
    assert chat(tmp_path, monkeypatch, "--set", "allow_untrained=true") == 0
    out, err = capsys.readouterr()
    assert "chatting with UNTRAINED weights" in err and "UNTRAINED" not in out
    lines = out.splitlines()
    assert any(line.startswith("System: ") for line in lines)
    assert all(line.startswith(DIALOGUE) for line in lines), lines
