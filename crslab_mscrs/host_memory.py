"""The host's C allocator (glibc): handing freed tensor memory back to the system.

PyTorch's CPU tensors come from ``malloc``. glibc serves allocations above its mmap threshold
with their own mapping, returned to the system on ``free``; below it they come from the heap,
whose freed pages stay in the process's RSS until reused. The threshold starts at 128 KiB and
rises (up to 32 MiB) each time a mapped block is freed, so after the first large temporaries
of a training step most activation-sized tensors land in the heap and the step's RSS grows
far beyond its live memory (benchmarks/README.md, "Activation checkpointing of the frozen LM":
2,691 MB instead of 7,227 MB for a 64 x 200 rec step). Setting the threshold explicitly
(``mallopt(M_MMAP_THRESHOLD)``, glibc's ``MALLOC_MMAP_THRESHOLD_``) stops that drift.
Elsewhere (musl, macOS, Windows) these calls do nothing and say so.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from typing import Optional

M_MMAP_THRESHOLD = -3  # glibc malloc.h
ENV_THRESHOLD = "MALLOC_MMAP_THRESHOLD_"


@functools.lru_cache(maxsize=1)
def _libc():
    """The C library, loaded once (``find_library`` runs ``ldconfig``)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def release_free_memory() -> None:
    """Return the heap's free pages to the system (glibc ``malloc_trim``; a no-op elsewhere).

    After a phase of many chunk-sized temporaries the RSS holds their pages until they are
    reused; trimming between phases keeps the peak close to the live memory."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def set_mmap_threshold(threshold_bytes: int) -> Optional[str]:
    """Serve allocations of at least ``threshold_bytes`` by their own mapping from now on.

    Returns None when applied, else why not: the environment already sets
    ``MALLOC_MMAP_THRESHOLD_`` (the user's choice wins), or the C library is not glibc.
    """
    if os.environ.get(ENV_THRESHOLD):
        return f"{ENV_THRESHOLD}={os.environ[ENV_THRESHOLD]} is set in the environment"
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):
        return "the C library is not glibc"
    if libc.mallopt(M_MMAP_THRESHOLD, int(threshold_bytes)) != 1:
        return f"glibc refused an mmap threshold of {threshold_bytes} bytes"
    return None


def resident_bytes() -> int:
    """The process's resident set size now (Linux ``/proc/self/statm``; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
