"""``ReduceLROnPlateau`` without the removed ``verbose`` argument.

Fixes ``crslab/system/utils/lr_scheduler.py:118``: CRSLab's wrapper passes its arguments to
``torch.optim.lr_scheduler.ReduceLROnPlateau`` positionally, ``verbose`` fifth; torch 2.x
removed ``verbose``, so the call raises TypeError (the KBRD/KGSF conversation stages use
this scheduler). The replacement ``__init__`` keeps CRSLab's signature and passes every
supported argument by keyword; ``verbose`` is accepted and ignored (torch logs nothing anyway).
"""
from __future__ import annotations

from torch import optim

from ._patching import is_marked, mark


def _init(self, optimizer, mode='min', factor=0.1, patience=10, verbose=False, threshold=0.0001,
          threshold_mode='rel', cooldown=0, min_lr=0, eps=1e-08, warmup_steps=0):
    from crslab.system.utils.lr_scheduler import LRScheduler

    LRScheduler.__init__(self, optimizer, warmup_steps)
    self.scheduler = optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode=mode, factor=factor, patience=patience, threshold=threshold,
        threshold_mode=threshold_mode, cooldown=cooldown, min_lr=min_lr, eps=eps)


def install() -> None:
    from crslab.system.utils import lr_scheduler

    if not is_marked(lr_scheduler.ReduceLROnPlateau.__init__):
        lr_scheduler.ReduceLROnPlateau.__init__ = mark(_init, "lr_scheduler")
