"""What a run trained, per stage, as a share of the paper's recipe (so an undertrained row cannot
be read as a result).

The recipe is the packaged config of the model and dataset without the run's overrides
(``mscrs/inspired``: the authors' INSPIRED epochs, pretrain 5 / rec 20 / conv 10; ``mscrs/redial``
and ``mscrs/base``: the authors' ReDial epochs, 5 / 5 / 10). What was trained comes from the run's
``metrics.json``: per stage, ``valid_history`` (one line per epoch run, with its ``batches``) and
``budget`` (the configured epochs and the batches of a full epoch), written by
:mod:`crslab_mscrs.training.loop`; for CRSLab's own KBRD/KGSF loops, which train whole epochs,
the epochs counted by :mod:`crslab_mscrs.compat.epoch_count` (``full_epochs``). An epoch's share is counted in batches of the run's own batch
size, i.e. in training rows seen, whatever that size is.

    rec 9 % of 1 of 20 epochs (0.4 % of the recipe)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

STAGES = ("pretrain", "rec", "conv")


@dataclass(frozen=True)
class StageBudget:
    """One stage of one run against the recipe's epochs."""
    stage: str
    recipe_epochs: Optional[int]             # None: recipe unknown
    epochs_run: int                          # 0: the stage was not run
    batches_trained: Tuple[Optional[int], ...]   # per epoch run (None: not recorded)
    batches_per_epoch: Optional[int]         # a full epoch at the run's batch size (None: not recorded)
    full_epochs: bool = False                # the loop trains whole epochs only (CRSLab's KBRD/KGSF)

    @property
    def epoch_share(self) -> Optional[float]:
        """Mean share of a full epoch trained per epoch run (None when not recorded)."""
        if self.full_epochs and self.epochs_run:
            return 1.0
        if not self.epochs_run or self.batches_per_epoch in (None, 0) or None in self.batches_trained:
            return None
        return sum(self.batches_trained) / (self.epochs_run * self.batches_per_epoch)

    @property
    def recipe_share(self) -> Optional[float]:
        """Training rows seen / rows of the recipe (all its epochs)."""
        share = self.epoch_share
        if self.recipe_epochs is None:
            return None
        if self.epochs_run == 0:
            return 0.0
        return None if share is None else share * self.epochs_run / self.recipe_epochs

    def describe(self) -> str:
        of = f" of {self.recipe_epochs}" if self.recipe_epochs is not None else ""
        if self.epochs_run == 0:
            return f"{self.stage} not run (recipe{of} epochs)"
        share = self.epoch_share
        head = f"{self.stage} {_percent(share)} of {self.epochs_run}{of} epochs" if share is not None else \
            f"{self.stage} {self.epochs_run}{of} epochs (batches not recorded)"
        total = self.recipe_share
        return head + (f" ({_percent(total)} of the recipe)" if total is not None and total < 1 else "")


def _percent(value: float) -> str:
    percent = 100 * value
    return f"{percent:.0f} %" if percent >= 10 or percent == 0 else f"{percent:.1f} %" if percent >= 0.1 \
        else f"{percent:.2f} %"


def recipe_epochs(model: str, dataset: str) -> Dict[str, int]:
    """``{stage: epochs}`` of the packaged config ``<model>/<dataset>`` (no overrides); ``{}`` if none."""
    from crslab_mscrs.config import resolve

    try:
        opt = resolve(f"{model.lower()}/{dataset.lower()}").opt
    except Exception:  # noqa: BLE001 - an unknown model/dataset has no recipe to compare with
        return {}
    return {stage: int(opt[stage]["epoch"]) for stage in STAGES if isinstance(opt.get(stage), Mapping)
            and opt[stage].get("epoch") is not None}


def run_budget(metrics: Mapping, recipe: Mapping[str, int], stages: Sequence[str] = STAGES) -> List[StageBudget]:
    """Per stage, what the run behind ``metrics`` (a ``metrics.json``) trained against ``recipe``."""
    out = []
    for stage in stages:
        summary = (metrics.get("stages") or {}).get(stage)
        if summary is None:
            out.append(StageBudget(stage, recipe.get(stage), 0, (), None))
            continue
        history = summary.get("valid_history") or []
        budget = summary.get("budget") or {}
        out.append(StageBudget(stage, recipe.get(stage), len(history), tuple(h.get("batches") for h in history),
                               budget.get("batches_per_epoch"), bool(budget.get("full_epochs"))))
    return out


def describe_run(metrics_path: Path, model: str, dataset: str) -> str:
    """``"pretrain 100 % of 5 of 5 epochs, rec 9 % of 1 of 20 epochs (...), conv not run ..."``."""
    metrics = json.loads(Path(metrics_path).read_text(encoding="utf-8"))
    if "stages" not in metrics:
        return "not recorded (no per-stage history in metrics.json)"
    recipe = recipe_epochs(model, dataset)
    return ", ".join(b.describe() for b in run_budget(metrics, recipe)
                     if b.epochs_run or b.recipe_epochs is not None or not recipe)  # KBRD: no pretrain stage
