"""One process per run folder: ``<run dir>/run.lock`` names the process that trains in it.

The lock file holds the owner's PID, host and process start time (:class:`LockOwner`). A
second run on the same folder is refused (:class:`RunFolderLocked`, naming the folder and
the PID) while that process lives. A lock left by a process that no longer runs (killed,
machine rebooted; or its PID now belongs to a process started later) is stale: it is taken
over, with a warning. A lock from another host cannot be checked and is refused; the message
says to delete it if that run is gone. In a distributed run only rank 0 locks (``RANK``).
Training (``MSCRSSystem.fit``) holds the lock; interactive mode only reads the folder.
"""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from loguru import logger

from crslab_mscrs.atomic_files import process_alive, temporary_sibling
from crslab_mscrs.training import distributed

LOCK_NAME = "run.lock"


class RunFolderLocked(RuntimeError):
    """Another live process trains in this run folder."""


def process_start_time(pid: int) -> Optional[int]:
    """Start time of ``pid`` in clock ticks since boot (Linux ``/proc``), None elsewhere or if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[19])  # field 22, after "pid (comm) "


@dataclass(frozen=True)
class LockOwner:
    """What ``run.lock`` says about the process holding it."""

    pid: int
    host: str
    start_time: Optional[int] = None   # process_start_time, to tell a reused PID
    since: str = ""

    @classmethod
    def this_process(cls) -> "LockOwner":
        return cls(os.getpid(), socket.gethostname(), process_start_time(os.getpid()),
                   time.strftime("%Y-%m-%d %H:%M:%S %Z"))

    @classmethod
    def read(cls, path: Path) -> Optional["LockOwner"]:
        """The owner recorded in ``path``; None when the file is missing or unreadable."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(int(data["pid"]), str(data["host"]), data.get("start_time"), str(data.get("since", "")))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def is_alive(self) -> bool:
        """Whether this process still runs (a PID reused by a later process does not count)."""
        if not process_alive(self.pid):
            return False
        now = process_start_time(self.pid)
        return self.start_time is None or now is None or now == self.start_time

    def describe(self) -> str:
        return f"process {self.pid} on {self.host}" + (f" (since {self.since})" if self.since else "")


def live_owner(folder: Path) -> Optional[LockOwner]:
    """The live process that holds ``folder``'s lock (one on another host counts as live), or None."""
    owner = LockOwner.read(Path(folder) / LOCK_NAME)
    if owner is None:
        return None
    if owner.host != socket.gethostname() or owner.is_alive():
        return owner
    return None


class RunLock:
    """``with RunLock(run_dir):`` holds ``run_dir/run.lock`` for the block (see the module docstring)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.owner = LockOwner.this_process()
        self.held = False

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _refuse(self, owner: LockOwner, hint: str) -> RunFolderLocked:
        return RunFolderLocked(f"run folder {self.folder} is in use by {owner.describe()}: {self.path} "
                               f"names PID {owner.pid}. {hint}")

    def acquire(self) -> None:
        if not distributed.is_writer():  # torchrun: rank 0 holds the folder for the job
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps(asdict(self.owner))
        tmp = temporary_sibling(self.path)
        tmp.write_text(text, encoding="utf-8")
        try:
            os.link(tmp, self.path)  # creates the lock, contents and all, only if there is none
        except FileExistsError:
            self._take_over_if_stale(text)
        except OSError:  # no hard links on this file system: exclusive create, then write
            try:
                with open(self.path, "x", encoding="utf-8") as handle:
                    handle.write(text)
            except FileExistsError:
                self._take_over_if_stale(text)
        finally:
            tmp.unlink(missing_ok=True)
        self.held = True

    def _take_over_if_stale(self, text: str) -> None:
        owner = LockOwner.read(self.path)
        if owner is not None:
            if owner.host != self.owner.host:
                raise self._refuse(owner, f"That host cannot be checked from here: if the run there is gone, "
                                          f"delete {self.path}")
            if owner.is_alive():
                raise self._refuse(owner, "Wait for it to finish or stop it; a second process would overwrite "
                                          "its checkpoints and outputs")
        tmp = temporary_sibling(self.path)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path)
        if LockOwner.read(self.path) != self.owner:  # another process took it over at the same moment
            raise self._refuse(LockOwner.read(self.path) or owner, "It took over the same stale lock first")
        left = owner.describe() + ", which no longer runs" if owner else "an unreadable lock"
        logger.warning(f"[{self.path}: stale lock of {left} (killed?): taken over by process {self.owner.pid}]")

    def release(self) -> None:
        """Remove the lock if this process still holds it."""
        if self.held and LockOwner.read(self.path) == self.owner:
            self.path.unlink(missing_ok=True)
        self.held = False
