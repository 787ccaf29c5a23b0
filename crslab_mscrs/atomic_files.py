"""Atomic file writes: write a uniquely named sibling, then ``os.replace`` it over the target.

A kill never leaves half a file, and two processes writing the same file never share a
temporary name (``.<name>.<pid>.<random>.tmp`` in the target's folder, so the rename stays on
one file system). The temporary file is removed when the write fails.
"""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, Path]


def temporary_sibling(path: PathLike) -> Path:
    """A fresh temporary name next to ``path``: ``.<name>.<pid>.<8 hex digits>.tmp``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


@contextmanager
def replacing(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is deleted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: PathLike, text: str) -> None:
    """``Path.write_text`` (UTF-8) through :func:`replacing`."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def process_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this machine (signal 0; another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True
