"""Append-only journal of the test-generation pass, so a killed run resumes where it stopped.

Generating every test reply is the longest single pass of a run on CPU (ReDial's test split
has 11,551 recommender turns). Without a journal a run killed during that pass would start
it again from the first reply after ``--restore``. ``<run dir>/test_generation.journal.jsonl``
holds:

- line 1: ``{"key": {...}}``, what the replies depend on (fingerprint of the weights, the
  rows in order, batch size, generation settings and model specs);
- then one ``{"i": row number, "conv_id": ..., "turn_index": ..., "raw": text}`` per reply,
  written and flushed batch by batch, and ``{"nll": ..., "tokens": ...}`` once the
  teacher-forced pass is done.

A journal made under another key is moved aside (``*.stale.jsonl``), never deleted. A run
killed in the middle of a write leaves a truncated last line, which is dropped; a malformed
line anywhere else is reported by line number, the file is kept as ``*.corrupt.jsonl`` and
the replies before that line are reused.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import torch
from loguru import logger

from crslab_mscrs.atomic_files import replacing
from crslab_mscrs.data.jsonl import JsonlFormatError, parse_jsonl_line

JOURNAL_NAME = "test_generation.journal.jsonl"


def state_fingerprint(state: Dict[str, torch.Tensor]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of a state dict (order independent)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{tensor.dtype}|{tuple(state[name].shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def rows_fingerprint(rows: Iterable[Tuple[object, object]]) -> str:
    """sha256 of the (conversation id, turn index) sequence of the rows to generate."""
    digest = hashlib.sha256()
    for conv_id, turn_index in rows:
        digest.update(f"{conv_id}\t{turn_index}\n".encode())
    return digest.hexdigest()


class GenerationJournal:
    """The replies generated so far under ``key``; :meth:`append` adds a batch durably."""

    def __init__(self, path: Path, key: dict):
        self.path = Path(path)
        self.key = json.loads(json.dumps(key))  # what a reader will compare it with
        self.replies: List[dict] = []
        self.nll: Optional[Tuple[float, int]] = None
        self._load()
        if not self.path.is_file():
            self._rewrite()

    # -- reading ---------------------------------------------------------------------------
    def _load(self) -> None:
        if not self.path.is_file():
            return
        lines = self.path.read_bytes().split(b"\n")
        complete = lines[:-1]  # the text after the last newline is a write cut by a kill
        if lines[-1].strip():
            logger.warning(f"[{self.path}: dropped an unfinished last line (a run killed while writing)]")
        records, bad_line = [], None
        for number, line in enumerate(complete, start=1):
            try:
                record = parse_jsonl_line(self.path, number, line)
                if not isinstance(record, dict):
                    raise JsonlFormatError(self.path, number, "not a JSON object")
            except JsonlFormatError as error:
                bad_line = (number, error.reason)
                break
            records.append(record)
        if not records or records[0].get("key") != self.key:
            why = ("made for other weights, rows or generation settings" if records
                   else "no readable first line (the key)")
            stale = self._move_aside("stale")
            logger.warning(f"[{self.path}: {why}; moved to {stale.name}, generating from the first reply]")
            return
        replies = [r for r in records[1:] if "raw" in r]
        if any(r.get("i") != i for i, r in enumerate(replies)):
            stale = self._move_aside("corrupt")
            logger.warning(f"[{self.path}: replies out of order; kept as {stale.name}, generating from the first reply]")
            return
        nll = next((r for r in records[1:] if "nll" in r), None)
        self.replies = replies
        self.nll = (float(nll["nll"]), int(nll["tokens"])) if nll else None
        if bad_line is not None:
            kept = self._move_aside("corrupt")
            logger.warning(f"[{self.path}, line {bad_line[0]}: malformed JSON ({bad_line[1]}); file kept as "
                           f"{kept.name}, the {len(replies)} replies before that line are reused]")
            self._rewrite()
        elif lines[-1].strip():
            self._rewrite()  # without the cut line, so appends start on a fresh line

    def _move_aside(self, label: str) -> Path:
        """Rename the journal to ``*.<label>.jsonl`` (``*.<label>.2.jsonl``, ... if taken)."""
        target, n = self.path.with_name(self.path.name.replace(".jsonl", f".{label}.jsonl")), 1
        while target.exists():
            n += 1
            target = self.path.with_name(self.path.name.replace(".jsonl", f".{label}.{n}.jsonl"))
        os.replace(self.path, target)
        return target

    def _rewrite(self) -> None:
        records = [{"key": self.key}] + ([{"nll": self.nll[0], "tokens": self.nll[1]}] if self.nll else [])
        records += self.replies
        with replacing(self.path) as partial, partial.open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    # -- writing ---------------------------------------------------------------------------
    def _append_records(self, records: List[dict]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(record) + "\n" for record in records))
            handle.flush()
            os.fsync(handle.fileno())

    def append(self, replies: List[dict]) -> None:
        """Add the next replies (each with ``conv_id``, ``turn_index`` and ``raw``)."""
        start = len(self.replies)
        records = [{"i": start + j, **reply} for j, reply in enumerate(replies)]
        self._append_records(records)
        self.replies.extend(records)

    def record_nll(self, nll: float, tokens: int) -> None:
        self._append_records([{"nll": nll, "tokens": tokens}])
        self.nll = (nll, tokens)

    @property
    def n_done(self) -> int:
        return len(self.replies)

    def remove(self) -> None:
        """Delete the journal once its replies are in the run's outputs."""
        self.path.unlink(missing_ok=True)
