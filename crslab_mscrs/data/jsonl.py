"""Streaming JSON-Lines reader with errors that name the file and the line.

ReDial and INSPIRED ship one JSON value per line, and so do our own files (rankings,
replies, journals, caches, catalogues). A truncated download or a hand edit leaves a
malformed line; ``json.loads`` alone would only report a character offset, so
:func:`iter_jsonl` wraps the error in :class:`JsonlFormatError` with ``FILE:LINE``. The ONE
JSONL reader of the project: modules do not loop over ``json.loads`` themselves.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple


class JsonlFormatError(ValueError):
    """A line of a JSONL file is not valid JSON."""

    def __init__(self, path: Path, line_no: int, reason: str):
        self.path = Path(path)
        self.line_no = line_no
        self.reason = reason
        super().__init__(f"{self.path}:{line_no}: malformed JSON line ({reason})")


def parse_jsonl_line(path, line_no: int, line) -> Any:
    """One line's value; a malformed line raises :class:`JsonlFormatError` naming file and line."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as err:
        raise JsonlFormatError(path, line_no, f"{err.msg} at column {err.colno}") from err
    except UnicodeDecodeError as err:
        raise JsonlFormatError(path, line_no, f"UnicodeDecodeError: not UTF-8 ({err.reason})") from err
    except RecursionError as err:  # absurd nesting (e.g. 100k brackets)
        raise JsonlFormatError(path, line_no, "nested too deeply to parse (RecursionError)") from err


def iter_jsonl(path, limit: Optional[int] = None,
               malformed: Optional[List[JsonlFormatError]] = None) -> Iterator[Tuple[int, Any]]:
    """Yield ``(line_number, value)`` for each non-blank line (1-based numbers).

    Args:
        path: the ``.jsonl`` file.
        limit: stop after this many values (``None``: read everything).
        malformed: for a cache that tolerates torn lines: malformed lines are appended to
            this list and skipped instead of raised.

    Raises:
        JsonlFormatError: on the first malformed line, naming file and line.
    """
    path = Path(path)
    if limit is not None and limit <= 0:
        return
    count = 0
    with path.open("rb") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = parse_jsonl_line(path, line_no, line)
            except JsonlFormatError as err:
                if malformed is None:
                    raise
                malformed.append(err)
                continue
            yield line_no, value
            count += 1
            if limit is not None and count >= limit:
                return


def read_jsonl(path, limit: Optional[int] = None) -> List[Any]:
    """All values of a JSONL file (see :func:`iter_jsonl`)."""
    return [value for _, value in iter_jsonl(path, limit)]
