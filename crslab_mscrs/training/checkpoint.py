"""Run folder, checkpoints and RNG state: a killed run resumes from its last finished epoch.

Layout of ``<save_dir>/<run_name>/``:

- ``last.pth``: written atomically after EVERY epoch, inside an epoch every
  ``<stage>.checkpoint_every_min`` minutes (with the batches done and the random state of
  the epoch's start, which draws its batch order) and after every finished stage:
  trainable model weights, optimizer, LR scheduler, Python/NumPy/torch RNG states, the
  stage progress (epoch, best validation value) and the results so far;
- ``<stage>_best.pth``: trainable weights of the epoch chosen on the validation split;
- ``rankings.jsonl`` / ``metrics.json``: test outputs (copies of ``rankings_out`` /
  ``metrics_out``);
- ``test_generation.journal.jsonl``: the test replies generated so far, while that pass
  runs (see ``generation_journal.py``); ``test_replies.jsonl`` once it is done.

Only weights that train are stored: the frozen LM and text encoder are rebuilt from
their spec, which keeps checkpoints small.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

CHECKPOINT_VERSION = 1


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


def capture_rng() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename: a kill never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> Optional[dict]:
    path = Path(path)
    if not path.is_file():
        return None
    # our own file: it holds RNG states (numpy arrays, tuples), so not weights_only
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise RuntimeError(f"{path}: checkpoint version {ckpt.get('version')} is not {CHECKPOINT_VERSION}")
    return ckpt
