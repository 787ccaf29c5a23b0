"""Shared pieces of CRSLab's on-disk ``nltk`` dataset format.

* ``.built`` markers: :func:`crslab.download.build` skips its download when
  ``<dir>/.built`` exists and its SECOND line equals the resource version (ReDial
  ``0.31``, INSPIRED ``0.3``, KGSF copy mask ``0.2`` ReDial / ``0.1`` INSPIRED). The
  versions are read from CRSLab's own ``resources.py`` so they cannot drift.
* the token vocabulary (``__pad__`` 0, ``__start__`` 1, ``__end__`` 2, ``__unk__`` 3)
  built from TRAIN tokens only;
* the seeded valid carve of ReDial's train pool;
* reading the source JSON files with errors that name the file and line
  (:func:`read_json`) and refusing an empty split (:func:`require_conversations`).
"""
from __future__ import annotations

import datetime
import json
import random
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from crslab_mscrs.data.jsonl import JsonlFormatError

SPECIAL_TOKENS = ("__pad__", "__start__", "__end__", "__unk__")


def dataset_version(dataset: str, tokenize: str = "nltk") -> str:
    """The ``.built`` version CRSLab expects for ``<dataset>/<tokenize>``."""
    if dataset.lower() == "redial":
        from crslab.data.dataset.redial.resources import resources
    elif dataset.lower() == "inspired":
        from crslab.data.dataset.inspired.resources import resources
    else:
        raise KeyError(f"no CRSLab resource version known for dataset {dataset!r}")
    return resources[tokenize]["version"]


def kgsf_version(dataset: str) -> str:
    """The ``.built`` version of KGSF's copy mask for CRSLab dataset name ``dataset``."""
    from crslab.model.crs.kgsf.resources import resources

    return resources[dataset]["version"]


def write_built_marker(directory: Path, version: str) -> Path:
    """Write ``.built`` (timestamp, then ``version`` on line 2), as CRSLab's ``mark_done``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / ".built"
    marker.write_text(f"{datetime.datetime.today()}\n{version}", encoding="utf-8")
    return marker


class IncompleteBuildError(FileNotFoundError):
    """A dataset folder has no valid ``.built`` marker (never built, or a build was interrupted)."""


def check_built(directory: Path, version: Optional[str] = None, rebuild_hint: str = "") -> Path:
    """``directory``'s ``.built`` marker; raises :class:`IncompleteBuildError` when it is missing,
    has no version line, or (if ``version`` is given) records another version."""
    marker = Path(directory) / ".built"
    lines = marker.read_text(encoding="utf-8").splitlines() if marker.is_file() else []
    problem = None
    if not lines:
        problem = "has no .built marker (never built, or its build failed or was interrupted)"
    elif len(lines) < 2 or not lines[1].strip():
        problem = f"has a .built marker without a version line ({marker})"
    elif version is not None and lines[1].strip() != version:
        problem = f"was built as version {lines[1].strip()!r}, CRSLab expects {version!r}"
    if problem:
        hint = f"; rebuild it: {rebuild_hint}" if rebuild_hint else ""
        raise IncompleteBuildError(f"dataset folder {directory} {problem}{hint}")
    return marker


def read_json(path: Path):
    """One JSON file; a truncated or corrupt file and non-UTF-8 bytes raise
    :class:`~crslab_mscrs.data.jsonl.JsonlFormatError` naming the file and the line."""
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise JsonlFormatError(path, line, f"not UTF-8: byte 0x{data[err.start]:02x}") from err
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        truncated = " (file truncated?)" if err.pos >= len(text.rstrip()) else ""
        raise JsonlFormatError(path, err.lineno, f"{err.msg} at column {err.colno}{truncated}") from err
    except RecursionError as err:
        raise JsonlFormatError(path, 1, "nested too deeply to parse") from err


def require_conversations(split: str, records: Sequence, source: Path, note: str = "") -> None:
    """An empty split is an error naming its source file (CRSLab would train on nothing)."""
    if not records:
        raise ValueError(f"{source}: the {split} split has no conversations{note}; "
                         "a dataset needs non-empty train, valid and test splits")


def write_json(path: Path, value, compact: bool = True) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        if compact:
            json.dump(value, handle, ensure_ascii=False, separators=(",", ":"))
        else:
            json.dump(value, handle, ensure_ascii=False, indent=2)


def build_token_vocab(train_token_lists: Iterable[Sequence[str]], min_count: int = 1) -> Dict[str, int]:
    """``token2id``: the four special tokens, then TRAIN tokens by frequency (ties: A-Z)."""
    counts = Counter(tok for tokens in train_token_lists for tok in tokens)
    for special in SPECIAL_TOKENS:
        counts.pop(special, None)
    tokens = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
    return {tok: idx for idx, tok in enumerate(list(SPECIAL_TOKENS) + tokens)}


def carve_valid(records: List, valid_fraction: float, seed: int) -> Tuple[List, List]:
    """Split ``records`` into ``(train, valid)``: a seeded shuffle of the indices, the first
    ``round(len * valid_fraction)`` go to valid; both keep the original record order."""
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n_valid = int(round(len(records) * valid_fraction))
    valid_idx = set(order[:n_valid])
    train = [r for i, r in enumerate(records) if i not in valid_idx]
    valid = [r for i, r in enumerate(records) if i in valid_idx]
    return train, valid


def dialog_tokens(conversations: Iterable[dict]) -> List[List[str]]:
    """All ``text`` token lists of CRSLab-format conversations."""
    return [utt["text"] for conv in conversations for utt in conv["dialog"]]
