"""Run only some training stages of CRSLab's own systems (config key ``stages``).

CRSLab's KBRD / KGSF systems always run every stage in ``fit()``: KGSF ``pretrain`` ->
``train_recommender`` -> ``train_conversation``. On a CPU the conversation stage of the
real datasets takes hours, so ``stages: [pretrain, rec]`` (or ``--set 'stages=[rec]'``)
replaces the methods of the stages left out with a logged no-op on the system instance.
The stages that run are untouched, and their test evaluation happens as usual.
"""
from __future__ import annotations

from typing import Iterable

from loguru import logger

#: stage name -> method of CRSLab's systems that runs it
STAGE_METHODS = {"pretrain": "pretrain", "rec": "train_recommender", "conv": "train_conversation"}


def select_stages(system, stages: Iterable[str]) -> list:
    """Disable the stages of ``system`` not in ``stages``; returns the names skipped."""
    stages = list(stages)
    unknown = [s for s in stages if s not in STAGE_METHODS]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown} in config key 'stages'; known: {list(STAGE_METHODS)}")
    skipped = []
    for stage, method in STAGE_METHODS.items():
        if stage not in stages and hasattr(system, method):
            setattr(system, method, _skip(stage))
            skipped.append(stage)
    return skipped


def _skip(stage: str):
    def skipped(*args, **kwargs):
        logger.info(f"[Stage {stage} skipped: not in config key 'stages']")

    return skipped
