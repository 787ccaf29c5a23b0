"""How many epochs CRSLab's own training loops ran, per stage (for the run's budget).

CRSLab 0.1.2's systems (``crslab/system/kbrd.py``, ``kgsf.py``) train whole epochs and may
stop early (``early_stop`` / ``impatience``); each epoch starts with a log line such as
``[Recommendation epoch 2]``. :class:`EpochCounter` is a loguru sink that counts those lines
while ``system.fit()`` runs, so ``metrics.json`` records what was trained, not what was
configured (:mod:`crslab_mscrs.evaluation.budget`).
"""
from __future__ import annotations

import re
from typing import Dict, Optional

EPOCH_LINE = re.compile(r"\[(Pretrain|Recommendation|Conversation) epoch (\d+)\]")
STAGE_OF = {"Pretrain": "pretrain", "Recommendation": "rec", "Conversation": "conv"}


class EpochCounter:
    """``with EpochCounter() as counter: system.fit()`` then ``counter.epochs`` = ``{stage: n}``."""

    def __init__(self):
        self.epochs: Dict[str, int] = {}
        self._sink: Optional[int] = None

    def observe(self, message: str) -> None:
        for name, epoch in EPOCH_LINE.findall(str(message)):
            stage = STAGE_OF[name]
            self.epochs[stage] = max(self.epochs.get(stage, 0), int(epoch) + 1)

    def __enter__(self) -> "EpochCounter":
        from loguru import logger

        self._sink = logger.add(lambda message: self.observe(message.record["message"]), level="INFO",
                                format="{message}")
        return self

    def __exit__(self, *exc) -> None:
        from loguru import logger

        if self._sink is not None:
            logger.remove(self._sink)
            self._sink = None

    def stages_summary(self, configured: Dict[str, Optional[int]]) -> Dict[str, dict]:
        """``{stage: {"budget": {...}, "valid_history": [...]}}`` in the shape of our own
        systems' ``metrics.json`` stages: whole epochs (``full_epochs``), no batch counts."""
        out = {}
        for stage, n in self.epochs.items():
            out[stage] = {"budget": {"epochs": configured.get(stage), "full_epochs": True},
                          "valid_history": [{"epoch": e, "batches": None} for e in range(n)]}
        return out


def backfill(run_dir) -> Dict[str, int]:
    """Add the epochs counted in ``run_dir/run.log`` to ``run_dir/metrics.json`` (runs written
    before the counter existed); stages already recorded are left alone. Returns the counts.

        python -m crslab_mscrs.compat.epoch_count results/.../runs/kbrd/inspired/seed0
    """
    import json
    from pathlib import Path

    run_dir = Path(run_dir)
    counter = EpochCounter()
    with (run_dir / "run.log").open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            counter.observe(line)
    path = run_dir / "metrics.json"
    metrics = json.loads(path.read_text(encoding="utf-8"))
    stages = metrics.setdefault("stages", {})
    for stage, summary in counter.stages_summary({}).items():
        if "valid_history" not in stages.get(stage, {}):
            stages.setdefault(stage, {}).update(summary)
    path.write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    return counter.epochs


if __name__ == "__main__":
    import sys

    for folder in sys.argv[1:]:
        print(folder, backfill(folder))
