"""The test-generation journal: what survives a kill, and what is never reused."""
import json

import pytest
import torch
from loguru import logger

from crslab_mscrs.training.generation_journal import GenerationJournal, rows_fingerprint, state_fingerprint

KEY = {"weights": "abc", "rows": rows_fingerprint([(1, 0), (1, 2), (2, 1)]), "batch_size": 2}


@pytest.fixture
def warnings_logged():
    messages = []
    handler = logger.add(lambda message: messages.append(str(message)), level="WARNING", format="{message}")
    yield messages
    logger.remove(handler)


def reply(conv_id, turn_index, raw):
    return {"conv_id": conv_id, "turn_index": turn_index, "raw": raw}


def test_replies_and_nll_survive_a_reopen(tmp_path):
    path = tmp_path / "journal.jsonl"
    journal = GenerationJournal(path, KEY)
    assert journal.n_done == 0 and journal.nll is None
    journal.record_nll(12.5, 40)
    journal.append([reply(1, 0, "hello"), reply(1, 2, "try <movie>")])
    again = GenerationJournal(path, KEY)
    assert again.nll == (12.5, 40)
    assert [r["raw"] for r in again.replies] == ["hello", "try <movie>"] and again.n_done == 2
    again.append([reply(2, 1, "bye")])
    assert [r["i"] for r in GenerationJournal(path, KEY).replies] == [0, 1, 2]


def test_a_line_cut_by_a_kill_is_dropped(tmp_path):
    path = tmp_path / "journal.jsonl"
    GenerationJournal(path, KEY).append([reply(1, 0, "hello")])
    with path.open("a") as handle:
        handle.write('{"i": 1, "conv_id": 1, "turn_')  # killed in the middle of a write
    journal = GenerationJournal(path, KEY)
    assert journal.n_done == 1
    journal.append([reply(1, 2, "next")])
    assert [r["raw"] for r in GenerationJournal(path, KEY).replies] == ["hello", "next"]


def test_a_journal_for_other_weights_is_moved_aside_not_reused(tmp_path):
    path = tmp_path / "journal.jsonl"
    GenerationJournal(path, KEY).append([reply(1, 0, "old weights")])
    journal = GenerationJournal(path, dict(KEY, weights="retrained"))
    assert journal.n_done == 0
    stale = tmp_path / "journal.stale.jsonl"
    assert "old weights" in stale.read_text()  # nothing is lost
    assert json.loads(path.read_text().splitlines()[0]) == {"key": dict(KEY, weights="retrained")}
    GenerationJournal(path, KEY)  # and back: the second stale journal does not replace the first
    assert "old weights" in stale.read_text() and (tmp_path / "journal.stale.2.jsonl").is_file()


def test_a_malformed_line_keeps_the_replies_before_it(tmp_path, warnings_logged):
    path = tmp_path / "journal.jsonl"
    GenerationJournal(path, KEY).append([reply(1, 0, "a"), reply(1, 2, "b")])
    lines = path.read_text().splitlines()
    lines[2] = "not json"
    path.write_text("\n".join(lines + [json.dumps({"i": 2, **reply(2, 1, "c")})]) + "\n")
    journal = GenerationJournal(path, KEY)
    assert [r["raw"] for r in journal.replies] == ["a"]
    assert (tmp_path / "journal.corrupt.jsonl").read_text().count("\n") == 4
    assert any("journal.jsonl, line 3: malformed JSON" in m for m in warnings_logged)


def test_state_fingerprint_sees_every_weight():
    state = {"a": torch.zeros(2, 3), "b": torch.ones(4, dtype=torch.bfloat16), "step": torch.tensor(3)}
    same = {k: v.clone() for k, v in reversed(list(state.items()))}
    assert state_fingerprint(state) == state_fingerprint(same)
    changed = dict(state, b=state["b"].clone())
    changed["b"][2] = 2.0
    assert state_fingerprint(changed) != state_fingerprint(state)
    assert state_fingerprint({"a": torch.zeros(3, 2), **{k: state[k] for k in ("b", "step")}}) != \
        state_fingerprint(state)
