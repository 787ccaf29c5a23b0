"""Padding of token-id lists into the batch tensors of the model contract."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch


def pad_ids(rows: Sequence[Sequence[int]], pad_id: int, left: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(ids [B, L], attention_mask [B, L])``; LEFT padding puts every row's last real token
    in the last column (needed for the last-token rec readout and for generation)."""
    length = max(1, max((len(r) for r in rows), default=1))
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        if not row:
            continue
        values = torch.as_tensor(list(row), dtype=torch.long)
        if left:
            ids[i, length - len(row):] = values
            mask[i, length - len(row):] = 1
        else:
            ids[i, :len(row)] = values
            mask[i, :len(row)] = 1
    return ids, mask


def pad_labels(rows: Sequence[Sequence[int]], length: int, ignore_index: int) -> torch.Tensor:
    """Right-padded label matrix filled with ``ignore_index``."""
    labels = torch.full((len(rows), length), ignore_index, dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            labels[i, :len(row)] = torch.as_tensor(list(row), dtype=torch.long)
    return labels


def pad_entities(rows: Sequence[Sequence[int]], pad_entity: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(entity_ids [B, Le], entity_mask [B, Le] bool)``, right padded with ``pad_entity``."""
    ids, mask = pad_ids(rows, pad_entity, left=False)
    return ids, mask.bool()


def stack_labels(labels: List[int]) -> torch.Tensor:
    return torch.as_tensor(labels, dtype=torch.long)
