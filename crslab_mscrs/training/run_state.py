"""Typed state of a run: stage progress, mid-epoch position, random state, ``last.pth``.

These are what a killed run needs to go on exactly where it stopped (see
:mod:`.checkpoint` for the file layout). Each class turns into plain Python types and
tensors only (:meth:`to_plain`), so checkpoints load with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch


@dataclass(frozen=True)
class RngState:
    """Python, NumPy, torch (and CUDA) generator states; NumPy's key as an int64 tensor."""

    python: Tuple[Any, ...]
    numpy_key: torch.Tensor
    numpy_pos: int
    numpy_has_gauss: int
    numpy_cached_gaussian: float
    torch: torch.Tensor
    cuda: Tuple[torch.Tensor, ...] = ()

    @classmethod
    def capture(cls) -> "RngState":
        kind, key, pos, has_gauss, cached = np.random.get_state()
        assert kind == "MT19937", kind
        cuda = tuple(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else ()
        return cls(random.getstate(), torch.from_numpy(key.astype(np.int64)), int(pos), int(has_gauss),
                   float(cached), torch.get_rng_state(), cuda)

    def restore(self) -> None:
        random.setstate(self.python)
        np.random.set_state(("MT19937", self.numpy_key.numpy().astype(np.uint32), self.numpy_pos,
                             self.numpy_has_gauss, self.numpy_cached_gaussian))
        torch.set_rng_state(self.torch)
        if self.cuda and torch.cuda.is_available() and len(self.cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(list(self.cuda))

    def to_plain(self) -> dict:
        return {"python": self.python, "numpy_key": self.numpy_key, "numpy_pos": self.numpy_pos,
                "numpy_has_gauss": self.numpy_has_gauss, "numpy_cached_gaussian": self.numpy_cached_gaussian,
                "torch": self.torch, "cuda": list(self.cuda)}

    @classmethod
    def from_plain(cls, data: dict) -> "RngState":
        python = data["python"]
        python = (python[0], tuple(python[1]), python[2])
        return cls(python, data["numpy_key"], int(data["numpy_pos"]), int(data["numpy_has_gauss"]),
                   float(data["numpy_cached_gaussian"]), data["torch"], tuple(data.get("cuda") or ()))


@dataclass(frozen=True)
class PartialEpoch:
    """Where a mid-epoch checkpoint left an epoch (``<stage>.checkpoint_every_min``)."""

    epoch: int
    batches_done: int
    epoch_rng: RngState      # random state of the epoch's start: it draws the batch order
    seconds: float           # training seconds of the epoch so far
    batch_size: int
    grad_accum: int

    def to_plain(self) -> dict:
        return {"epoch": self.epoch, "batches_done": self.batches_done, "epoch_rng": self.epoch_rng.to_plain(),
                "seconds": self.seconds, "batch_size": self.batch_size, "grad_accum": self.grad_accum}

    @classmethod
    def from_plain(cls, data: dict) -> "PartialEpoch":
        return cls(int(data["epoch"]), int(data["batches_done"]), RngState.from_plain(data["epoch_rng"]),
                   float(data["seconds"]), int(data["batch_size"]), int(data["grad_accum"]))


@dataclass(frozen=True)
class EpochRecord:
    """One line of a stage's ``valid_history`` in ``metrics.json``."""

    epoch: int
    valid: Optional[float]           # None: validation off
    time_limit_reached: bool = False
    batches: Optional[int] = None    # training batches of this epoch (None: not recorded, older runs)

    def to_plain(self) -> dict:
        out = {"epoch": self.epoch, "valid": self.valid}
        if self.time_limit_reached:
            out["time_limit_reached"] = True
        if self.batches is not None:
            out["batches"] = self.batches
        return out

    @classmethod
    def from_plain(cls, data: dict) -> "EpochRecord":
        batches = data.get("batches")
        return cls(int(data["epoch"]), data["valid"], bool(data.get("time_limit_reached", False)),
                   int(batches) if batches is not None else None)


@dataclass
class StageProgress:
    """Progress of the stage being trained (mutable: updated after every epoch)."""

    stage: str
    epoch_done: int = -1                     # last finished epoch (-1: none)
    best_value: Optional[float] = None       # validation value of the chosen epoch
    best_epoch: Optional[int] = None
    history: List[EpochRecord] = field(default_factory=list)
    train_seconds: float = 0.0               # train + valid passes
    partial: Optional[PartialEpoch] = None   # set in mid-epoch checkpoints only

    def improves(self, value: Optional[float], maximise: bool) -> bool:
        """Whether ``value`` beats the best so far (None, validation off: always)."""
        if value is None or self.best_value is None:
            return True
        return value > self.best_value if maximise else value < self.best_value

    def describe(self) -> str:
        where = f"stage {self.stage}: {self.epoch_done + 1} epoch(s) done"
        if self.partial is not None:
            where += f", then {self.partial.batches_done} batches of epoch {self.partial.epoch}"
        return where

    def to_plain(self) -> dict:
        return {"stage": self.stage, "epoch_done": self.epoch_done, "best_value": self.best_value,
                "best_epoch": self.best_epoch, "history": [h.to_plain() for h in self.history],
                "train_seconds": self.train_seconds,
                "partial": self.partial.to_plain() if self.partial is not None else None}

    @classmethod
    def from_plain(cls, data: dict) -> "StageProgress":
        partial = data.get("partial")
        return cls(data["stage"], int(data["epoch_done"]), data["best_value"], data["best_epoch"],
                   [EpochRecord.from_plain(h) for h in data["history"]], float(data.get("train_seconds", 0.0)),
                   PartialEpoch.from_plain(partial) if partial is not None else None)


@dataclass
class RunCheckpoint:
    """Contents of ``last.pth``: everything a killed run needs to go on."""

    completed: List[str]                         # finished stages
    current: Optional[StageProgress]             # the stage in progress (None: between stages)
    model: Dict[str, torch.Tensor]               # trainable weights
    optimizer: Optional[dict]                    # state dicts of the stage in progress
    scheduler: Optional[dict]
    global_step: int
    rng: RngState
    results: Dict[str, dict]                     # metrics.json ``stages`` so far
    device: str = ""                             # device type that wrote it ("": not recorded)
    cpu_threads: int = 0                         # torch CPU threads of the writer (0: not recorded)

    def describe(self) -> str:
        return (f"finished stages {self.completed}, "
                + (self.current.describe() if self.current is not None else "between stages"))

    def inexact_reasons(self, device: str, timed_stages: Sequence[str] = ()) -> List[str]:
        """Why resuming on ``device`` (a device type) cannot give the uninterrupted run's results;
        ``timed_stages``: stages still to train that have a ``time_limit_min``."""
        reasons = []
        if device == "cpu" and self.cpu_threads and self.cpu_threads != torch.get_num_threads():
            reasons.append(f"written with {self.cpu_threads} CPU thread(s), resumed with {torch.get_num_threads()} "
                           "(float sums split differently: results differ in the last digits)")
        if self.device and self.device != device:
            reasons.append(f"written on {self.device}, resumed on {device} (other kernels and random streams)")
        n_cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if self.rng.cuda and len(self.rng.cuda) != n_cuda:
            reasons.append(f"saved the random state of {len(self.rng.cuda)} CUDA device(s), {n_cuda} visible now")
        if timed_stages:
            reasons.append(f"stage(s) {', '.join(timed_stages)} bounded by time_limit_min: how many batches they "
                           "train depends on the wall clock (and a resumed stage starts a new time budget)")
        return reasons

    def to_plain(self) -> dict:
        return {"completed": list(self.completed),
                "current": self.current.to_plain() if self.current is not None else None,
                "model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler,
                "global_step": self.global_step, "rng": self.rng.to_plain(), "results": self.results,
                "device": self.device, "cpu_threads": self.cpu_threads}

    @classmethod
    def from_plain(cls, data: dict) -> "RunCheckpoint":
        current = data.get("current")
        return cls(list(data["completed"]), StageProgress.from_plain(current) if current else None, data["model"],
                   data.get("optimizer"), data.get("scheduler"), int(data.get("global_step", 0)),
                   RngState.from_plain(data["rng"]), data.get("results", {}), str(data.get("device", "")),
                   int(data.get("cpu_threads", 0)))
