"""Atomic dataset builds: write into a fresh folder, swap it in only when the build succeeded.

A builder that writes straight into ``<data_root>/dataset/<name>/nltk`` leaves, after a
late failure or a kill, a folder mixing old and new files whose ``.built`` marker is gone
(so CRSLab then tries its download link). With :func:`atomic_build` the previous good build
stays untouched until the very end::

    from crslab_mscrs.data.atomic_build import atomic_build
    from crslab_mscrs.data.crslab_format import write_built_marker, write_json

    with atomic_build(out_dir) as tmp:          # tmp = <out_dir>.tmp-<pid>, empty
        write_json(tmp / "train_data.json", train)
        ...                                     # any exception: tmp is removed, out_dir kept
        write_built_marker(tmp, version)        # the marker goes in LAST
    # here out_dir is the new build; the previous one is gone

Several folders that belong to one build (a dataset and its KGSF copy mask) are staged
together and swapped in one after the other only when the whole block succeeded::

    with AtomicBuild() as build:
        data_dir = build.stage(out_dir)
        mask_dir = build.stage(copy_mask_dir)
        ...

The swap is two ``os.rename`` calls per folder (``out_dir`` -> ``<out_dir>.old-<pid>``,
``tmp`` -> ``out_dir``), then the old folder is deleted. Leftovers of an interrupted build
are cleaned when the next build of the same folder starts (:func:`recover_leftovers`): a
``.tmp-<pid>`` folder of a process that no longer runs is removed, and an ``.old-<pid>``
folder is renamed back when a kill fell between the two renames. Only the output folder
itself is replaced: other folders next to it (``<data_root>/features/...``) are untouched.
Users' view: docs/data.md, "Building the datasets".
"""
from __future__ import annotations

import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Tuple

from loguru import logger

_LEFTOVER = re.compile(r"^(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)$")


def _pid_alive(pid: int) -> bool:
    from crslab_mscrs.atomic_files import process_alive  # the one liveness check

    return process_alive(pid)


def recover_leftovers(final_dir) -> List[Path]:
    """Clean what an interrupted build of ``final_dir`` left next to it; returns what was done.

    ``<name>.old-<pid>`` is moved back to ``<name>`` when ``<name>`` is missing (the kill fell
    between the two renames of the swap), else deleted; ``<name>.tmp-<pid>`` is deleted unless
    process ``pid`` still runs (another build in progress).
    """
    final = Path(final_dir)
    parent = final.parent
    if not parent.is_dir():
        return []
    touched = []
    for entry in sorted(parent.iterdir()):
        match = _LEFTOVER.match(entry.name)
        if not match or match["name"] != final.name or not entry.is_dir():
            continue
        if match["kind"] == "old":
            if not final.exists():
                os.rename(entry, final)
                logger.warning(f"{final}: restored the previous build from {entry.name} "
                               "(an earlier build was interrupted while swapping in)")
            else:
                shutil.rmtree(entry, ignore_errors=True)
            touched.append(entry)
        elif int(match["pid"]) == os.getpid() or not _pid_alive(int(match["pid"])):
            shutil.rmtree(entry, ignore_errors=True)
            logger.info(f"{final}: removed {entry.name} left by an interrupted build")
            touched.append(entry)
    return touched


def swap_in(tmp_dir, final_dir) -> Path:
    """Replace ``final_dir`` by ``tmp_dir`` (two renames), then delete the previous build."""
    tmp, final = Path(tmp_dir), Path(final_dir)
    old = final.with_name(f"{final.name}.old-{os.getpid()}")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.rename(final, old)
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


class AtomicBuild:
    """Stages output folders; :meth:`commit` swaps them all in, :meth:`abort` removes them.

    As a context manager it commits when the block ends normally and aborts on any exception
    (``KeyboardInterrupt`` included), which it re-raises.
    """

    def __init__(self) -> None:
        self._staged: List[Tuple[Path, Path]] = []

    def stage(self, final_dir) -> Path:
        """An empty ``<final_dir>.tmp-<pid>`` folder to build into (leftovers cleaned first)."""
        final = Path(final_dir)
        recover_leftovers(final)
        tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        self._staged.append((final, tmp))
        return tmp

    def commit(self) -> List[Path]:
        done = [swap_in(tmp, final) for final, tmp in self._staged]
        self._staged = []
        return done

    def abort(self) -> None:
        for _, tmp in self._staged:
            shutil.rmtree(tmp, ignore_errors=True)
        self._staged = []

    def __enter__(self) -> "AtomicBuild":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False


@contextmanager
def atomic_build(final_dir) -> Iterator[Path]:
    """Build one folder atomically: yields the temporary folder to write into (see module doc)."""
    with AtomicBuild() as build:
        yield build.stage(final_dir)
