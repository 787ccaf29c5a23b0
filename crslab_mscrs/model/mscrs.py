"""CRSLab wrappers: ``MSCRSModel`` and ``UniCRSModel`` around :class:`PromptCRS`.

CRSLab builds models as ``Model_register_table[name](opt, device, vocab, side_data)``; the base
class calls ``build_model()`` from its ``__init__``, so attributes are set before that call.
``UniCRSModel`` is the same model with every semantic graph forced off (UniCRS, KDD 2022).

``forward(batch, mode)`` dispatches on ``mode``: ``"pretrain"``, ``"rec"``, ``"conv"`` (training /
validation losses) or ``"generate"`` (decoding); ``entity_table`` may be passed in to reuse the
fused table computed once per step. ``recommend(batch, mode)`` / ``converse(batch, mode)`` follow
CRSLab's BaseModel API (``mode`` = train/valid/test is not used by the model).
"""
from __future__ import annotations

from typing import Mapping, Optional

import torch
from crslab.model.base import BaseModel

from crslab_mscrs.model.prompt_crs import ConvOutput, PromptCRS, RecOutput

MODES = ("pretrain", "rec", "conv", "generate")


class MSCRSModel(BaseModel):
    """MSCRS (SIGIR 2025): UniCRS-style prompt learning over multimodal semantic graphs."""

    force_graphs_off = False

    def __init__(self, opt: Mapping, device, vocab: Mapping, side_data: Mapping):
        self.vocab, self.side_data = vocab, side_data
        super().__init__(opt, device)

    def build_model(self) -> None:
        self.crs = PromptCRS.from_opt(self.opt, self.vocab, self.side_data, self.device,
                                      force_graphs_off=self.force_graphs_off)

    @property
    def item_ids(self) -> torch.Tensor:
        return self.crs.item_ids

    def entity_table(self, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.crs.entity_table(rows)

    def step_rows(self, batch: Mapping, task: str) -> Optional[torch.Tensor]:
        return self.crs.step_rows(batch, task)

    def forward(self, batch: Mapping, mode: str, entity_table: Optional[torch.Tensor] = None, **generate_kwargs):
        if mode == "pretrain":
            return self.crs.pretrain(batch, entity_table)
        if mode == "rec":
            return self.crs.recommend(batch, entity_table)
        if mode == "conv":
            return self.crs.converse(batch, entity_table)
        if mode == "generate":
            return self.crs.generate(batch, entity_table=entity_table, **generate_kwargs)
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")

    def recommend(self, batch: Mapping, mode: str = "train") -> RecOutput:
        return self.crs.recommend(batch)

    def converse(self, batch: Mapping, mode: str = "train") -> ConvOutput:
        return self.crs.converse(batch)


class UniCRSModel(MSCRSModel):
    """UniCRS (KDD 2022): MSCRS with the co-occurrence, text and image graphs forced off."""

    force_graphs_off = True


def register() -> None:
    """Add ``MSCRS`` and ``UniCRS`` to CRSLab's model registry (idempotent, mutates in place)."""
    from crslab.model import Model_register_table

    Model_register_table["MSCRS"] = MSCRSModel
    Model_register_table["UniCRS"] = UniCRSModel
