"""Position lookups for row subsets (used where a step computes only some rows of a table)."""
from __future__ import annotations

import torch


def position_index(ids: torch.Tensor, size: int) -> torch.Tensor:
    """``[size]`` long tensor: the position of each id in ``ids`` (unique ids), -1 for the others."""
    position = torch.full((size,), -1, dtype=torch.long, device=ids.device)
    position[ids] = torch.arange(ids.numel(), device=ids.device)
    return position
