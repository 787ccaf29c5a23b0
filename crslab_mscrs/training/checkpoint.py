"""Run folder, checkpoints and RNG state: a killed run resumes from its last finished epoch.

Layout of ``<save_dir>/<run_name>/``:

- ``last.pth``: written atomically after EVERY epoch, inside an epoch every
  ``<stage>.checkpoint_every_min`` minutes (with the batches done and the random state of
  the epoch's start, which draws its batch order) and after every finished stage:
  trainable model weights, optimizer, LR scheduler, Python/NumPy/torch RNG states, the
  stage progress (epoch, best validation value) and the results so far;
- ``last.prev.pth``: the ``last.pth`` before the latest one, kept for when ``last.pth`` is
  unreadable (truncated, a disk that filled up): the resume falls back to it and says so;
- ``<stage>_best.pth``: trainable weights of the epoch chosen on the validation split;
- ``rankings.jsonl`` / ``metrics.json``: test outputs (copies of ``rankings_out`` /
  ``metrics_out``);
- ``test_generation.journal.jsonl``: the test replies generated so far, while that pass
  runs (see ``generation_journal.py``); ``test_replies.jsonl`` once it is done.

Only weights that train are stored: the frozen LM and text encoder are rebuilt from
their spec, which keeps checkpoints small. ``last.pth`` holds a
:class:`~crslab_mscrs.training.run_state.RunCheckpoint` as plain types and tensors (version
2; version 1 kept NumPy RNG arrays and is refused with a message), so it loads with
``torch.load(weights_only=True)``. Every checkpoint is opened that way: a file that holds
other Python objects (which an unpickler would run code to rebuild) is refused with a
:class:`CheckpointError` naming it.
"""
from __future__ import annotations

import os
import pickle
import random
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from loguru import logger

from crslab_mscrs.atomic_files import replacing
from crslab_mscrs.training import distributed
from crslab_mscrs.training.run_state import RunCheckpoint

CHECKPOINT_VERSION = 2
PREVIOUS_SUFFIX = ".prev"
"""``last.pth`` -> ``last.prev.pth``: the run checkpoint before the latest."""


class CheckpointError(RuntimeError):
    """A checkpoint that is refused (could run code, other version) or unreadable; names the file."""

    def __init__(self, path: Path, reason: str, unreadable: bool = False):
        super().__init__(f"{path}: {reason}")
        self.path, self.unreadable = Path(path), unreadable


def frozen_parameter_names(model: torch.nn.Module) -> set:
    return {name for name, p in model.named_parameters() if not p.requires_grad}


def trainable_tensors(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """``state_dict`` without the frozen parameters: the model's own tensors, no copies."""
    frozen = frozen_parameter_names(model)
    return {k: v for k, v in model.state_dict().items() if k not in frozen}


def trainable_state(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """:func:`trainable_tensors` as detached CPU copies (what checkpoints store)."""
    return {k: v.detach().cpu().clone() for k, v in trainable_tensors(model).items()}


def load_trainable_state(model: torch.nn.Module, state: Dict[str, torch.Tensor], source: str = "") -> None:
    """Load a :func:`trainable_state`; every trainable tensor must be present."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    frozen = frozen_parameter_names(model)
    really_missing = [k for k in missing if k not in frozen]
    if really_missing or unexpected:
        raise RuntimeError(f"checkpoint {source} does not match the model: missing {really_missing[:5]}, "
                           f"unexpected {list(unexpected)[:5]} (was it made with another config?)")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` to a uniquely named temporary file, then rename: a kill never leaves half a file.
    Under torchrun only rank 0 writes; every rank waits until the file is there."""
    if not distributed.is_writer():
        distributed.barrier()
        return
    with replacing(path) as tmp:
        torch.save(obj, tmp)
    distributed.barrier()


def previous_path(path: Path) -> Path:
    """``last.pth`` -> ``last.prev.pth``."""
    path = Path(path)
    return path.with_name(path.stem + PREVIOUS_SUFFIX + path.suffix)


def save_run_checkpoint(checkpoint: RunCheckpoint, path: Path) -> None:
    """Write ``last.pth`` atomically; the ``last.pth`` it replaces becomes ``last.prev.pth``
    (a kill between the two renames leaves ``last.prev.pth`` alone, which :func:`load_checkpoint` reads).
    Under torchrun only rank 0 writes; every rank waits until the file is there."""
    if not distributed.is_writer():
        distributed.barrier()
        return
    path = Path(path)
    with replacing(path) as tmp:
        torch.save({"version": CHECKPOINT_VERSION, **checkpoint.to_plain()}, tmp)
        if path.is_file():
            os.replace(path, previous_path(path))
    distributed.barrier()


WEIGHTS_VERSIONS = (1, CHECKPOINT_VERSION)
"""Versions of weight files (``*_best.pth``, ``final.pth``) that load: their layout is unchanged."""


def _load_versioned(path: Path, versions=(CHECKPOINT_VERSION,)) -> dict:
    """``torch.load(weights_only=True)`` of a checkpoint of one of ``versions``, else a :class:`CheckpointError`."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # weights_only refused an object: never unpickled
        detail = str(err).strip().splitlines()
        raise CheckpointError(path, f"not a checkpoint of version {CHECKPOINT_VERSION}: refused to open it, it holds "
                              "Python objects other than tensors and plain types, which unpickling could turn into "
                              "running code (a version-1 file of an older crslab-mscrs, or a file that is not ours; "
                              f"torch.load weights_only=True: {detail[0] if detail else type(err).__name__}). "
                              "Delete it, start a new run or use another run_name") from None
    except Exception as err:  # truncated, empty, not a torch file
        raise CheckpointError(path, f"unreadable checkpoint ({type(err).__name__}: {str(err).strip()[:200]}); "
                              "truncated, or not a torch file", unreadable=True) from err
    if not isinstance(data, dict) or data.get("version") not in versions:
        version = data.get("version") if isinstance(data, dict) else None
        raise CheckpointError(path, f"checkpoint version {version} is not {CHECKPOINT_VERSION}; start a new run "
                              "or use another run_name")
    return data


def load_checkpoint(path: Path) -> Optional[RunCheckpoint]:
    """``last.pth`` as a :class:`RunCheckpoint`, or None when neither it nor ``last.prev.pth``
    exists. An unreadable ``last.pth`` (or none, after a kill between two renames) falls back to
    ``last.prev.pth``, with a warning; a refused one (:class:`CheckpointError`) does not."""
    path = Path(path)
    previous = previous_path(path)
    try:
        if path.is_file():
            return RunCheckpoint.from_plain(_load_versioned(path))
        if not previous.is_file():
            return None
        why = "is missing (the run was killed while replacing it)"
    except CheckpointError as error:
        if not (error.unreadable and previous.is_file()):
            raise
        kept = path.with_name(path.stem + ".unreadable" + path.suffix)
        if distributed.is_writer() and path.is_file():
            os.replace(path, kept)  # so that the next save does not make it last.prev.pth
        why = f"is unreadable ({error}; kept as {kept.name})"
    checkpoint = RunCheckpoint.from_plain(_load_versioned(previous))
    logger.warning(f"[{path} {why}: resuming from the previous checkpoint {previous} "
                   f"({checkpoint.describe()})]")
    return checkpoint


def save_weights(path: Path, model: torch.nn.Module, **info) -> None:
    """``<stage>_best.pth`` / ``final.pth``: trainable weights plus ``info`` (stage, epoch, valid)."""
    atomic_save({"version": CHECKPOINT_VERSION, **info, "model": trainable_state(model)}, path)


def load_checkpoint_weights(path: Path) -> Optional[Dict[str, torch.Tensor]]:
    """The trainable weights saved by :func:`save_weights`, or None when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return None
    return _load_versioned(path, WEIGHTS_VERSIONS)["model"]


@contextmanager
def temporary_weights(model: torch.nn.Module, path: Path):
    """Use the weights saved at ``path`` inside the block (yields False, weights unchanged,
    when the file does not exist); the model's own weights come back afterwards."""
    weights = load_checkpoint_weights(path)
    if weights is None:
        yield False
        return
    current = trainable_state(model)
    load_trainable_state(model, weights, str(path))
    try:
        yield True
    finally:
        load_trainable_state(model, current, "in-memory weights")
