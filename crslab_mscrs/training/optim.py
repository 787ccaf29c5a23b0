"""AdamW with linear warmup and linear decay (the schedule of UniCRS / MSCRS's code).

One optimizer per stage section (``pretrain:``, ``rec:``, ``conv:``): ``optimizer: {name:
AdamW, lr, weight_decay}`` and ``warmup_steps``. Biases and normalisation weights (1-d
tensors) get no weight decay, as in the authors' code.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch.optim.lr_scheduler import LambdaLR

from crslab_mscrs.training.settings import StageSettings


def build_optimizer(model: torch.nn.Module, stage: StageSettings, total_steps: int
                    ) -> Tuple[torch.optim.Optimizer, LambdaLR]:
    """AdamW over the trainable parameters + linear warmup/decay over ``total_steps``."""
    settings = stage.optimizer
    if settings.name != "AdamW":
        raise ValueError(f"config key '{stage.name}.optimizer.name': '{settings.name}' is not supported by MSCRS "
                         "(use AdamW)")
    lr, weight_decay = settings.lr, settings.weight_decay
    decay, no_decay = [], []
    for _, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters")
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, **dict(settings.extra))
    return optimizer, linear_warmup_decay(optimizer, stage.warmup_steps, total_steps)


def linear_warmup_decay(optimizer, warmup_steps: int, total_steps: int) -> LambdaLR:
    """LR factor rises linearly 0 -> 1 over ``warmup_steps`` then falls linearly to 0 at
    ``total_steps`` (``transformers.get_linear_schedule_with_warmup``)."""
    total_steps = max(total_steps, 1)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return float(step + 1) / float(max(1, warmup_steps))
        return max(0.0, float(total_steps - step) / float(max(1, total_steps - warmup_steps)))

    return LambdaLR(optimizer, factor)
