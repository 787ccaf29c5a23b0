"""Some rows of the fused entity table, as a training step computes them.

A training step reads few rows of the [n_entity, H] table (the context entities, plus every
item when it scores items): :meth:`PromptCRS.entity_table` with ``rows`` computes only those
and returns them as :class:`EntityRows`. Looking up an entity that was not computed is an
error, never a silent zero row.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch
import torch.nn.functional as F

from crslab_mscrs.model.row_index import position_index


@dataclass
class EntityRows:
    """``values[i]`` is the table row of entity ``rows[i]``.

    Attributes:
        values: ``[k, H]`` the computed rows.
        rows: ``[k]`` their entity ids, sorted and unique.
        position: ``[n_entity]`` index of each entity in ``values``; -1 where not computed.
    """

    values: torch.Tensor
    rows: torch.Tensor
    position: torch.Tensor

    @classmethod
    def from_rows(cls, values: torch.Tensor, rows: torch.Tensor, n_entity: int) -> "EntityRows":
        return cls(values, rows, position_index(rows, n_entity))

    @property
    def dtype(self) -> torch.dtype:
        return self.values.dtype

    def gather(self, entity_ids: torch.Tensor) -> torch.Tensor:
        """``table[entity_ids]`` (any shape of ids) from the computed rows."""
        local = self.position[entity_ids]
        if bool((local < 0).any()):
            missing = entity_ids[local < 0].unique()[:5].tolist()
            raise KeyError(f"entity ids {missing} were not computed in this step's table rows "
                           f"(PromptCRS.step_rows decides which rows a step needs).")
        return F.embedding(local, self.values)


def gather_rows(table: Union[torch.Tensor, EntityRows], entity_ids: torch.Tensor) -> torch.Tensor:
    """``table[entity_ids]`` for a full [n_entity, H] table or :class:`EntityRows`."""
    if isinstance(table, EntityRows):
        return table.gather(entity_ids)
    return F.embedding(entity_ids, table)


def rows_read(task: str, entity_ids: torch.Tensor, item_ids: torch.Tensor) -> Optional[torch.Tensor]:
    """Entity ids a ``task`` step reads from the table: the context entities, and every item
    for "rec" (scored); ``None`` (all rows) for "pretrain", which scores every entity."""
    if task == "pretrain":
        return None
    rows = entity_ids.reshape(-1).to(item_ids.device)
    return torch.cat([rows, item_ids]) if task == "rec" else rows
