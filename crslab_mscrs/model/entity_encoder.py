"""Multimodal entity encoder of MSCRS (SIGIR 2025, section 3.3-3.4); UniCRS's when all graphs are off.

::

    e0 = RGCN(E) + E                              (KG, :class:`RGCNKGEncoder`)
    c  = LightGCN_cooc(e0)                        (all entities)
    t  = LightGCN_text(e0[items]),  v = LightGCN_image(e0[items])   (item rows only)
    h  = e0 + c + [items] (lambda_t * t + lambda_v * v)          (fusion "sum", the paper's)
    h  = that sum / (1 + 1 + [items] (lambda_t + lambda_v))       (fusion "mean")
    out = Linear(h + MLP(h))                      (residual MLP, then d -> LM hidden)

``fusion: mean`` divides each row by the total weight of the views it received, so the
fused table keeps the scale of e0 whatever graphs are on: with "sum", the three extra views
make MSCRS's initial item logits about 2.7 times UniCRS's (score std 11.7 vs 4.4, initial
rec loss 44 vs 17 with SmolLM2 on INSPIRED; docs/results.md). With every graph off both
modes are e0, i.e. UniCRS.

Each graph is optional (``None`` = switched off, an ablation). With all three off this is
exactly UniCRS's entity encoder (R-GCN + residual, residual MLP, linear). The fused table is
meant to be computed ONCE per training step and shared by the prompt and the scorer
(bug 6 of the authors' code computes it twice).

A training step reads few rows of the table: the batch's context entities, plus every item
when it scores items. ``forward(rows=...)`` computes exactly those rows: e0 only on their
receptive field (the rows, their L-hop neighbourhoods in the co-occurrence graph and, for
item rows, in the item graphs), each semantic graph on that node subset, and the MLP and
projection only on the rows. The values equal the full table's rows (tested). At ReDial
scale e0 is then computed for about 7.6k of the 64k entities (the items and the
co-occurrence graph's entities; 46k of 168k R-GCN pairs), and the MLP and projection for
about 250 rows (conversation batch of 8) or 7.2k (recommendation: every item);
``benchmarks/step_cost.py`` times both ways.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from crslab_mscrs.model.entity_rows import EntityRows
from crslab_mscrs.model.rgcn_kg_encoder import RGCNKGEncoder
from crslab_mscrs.model.row_index import position_index
from crslab_mscrs.model.semantic_graph_propagation import LightGCNPropagation


FUSION_MODES = ("sum", "mean")


class ResidualMLP(nn.Module):
    """x + W2 ReLU(W1 x): UniCRS's ``*_proj1`` blocks."""

    def __init__(self, dim: int, hidden: Optional[int] = None):
        super().__init__()
        hidden = hidden or dim // 2 or 1
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class MultimodalEntityEncoder(nn.Module):
    """Fuse KG, co-occurrence, text and image graph views of the entities; project to LM size.

    Args:
        kg_encoder: the R-GCN encoder giving e0 [n_entity, d].
        item_ids: ``[n_items]`` entity ids of the recommendable items.
        output_dim: LM hidden size.
        cooccurrence: propagation over the entity co-occurrence graph (entity space) or None.
        text, image: propagation over the item kNN graphs (item positions) or None.
        lambda_text, lambda_image: fusion weights of t and v.
        fusion: "sum" (paper, section 3.4) or "mean" (the sum over the total view weight).
    """

    def __init__(self, kg_encoder: RGCNKGEncoder, item_ids: torch.Tensor, output_dim: int,
                 cooccurrence: Optional[LightGCNPropagation] = None,
                 text: Optional[LightGCNPropagation] = None,
                 image: Optional[LightGCNPropagation] = None,
                 lambda_text: float = 1.0, lambda_image: float = 1.0, fusion: str = "sum"):
        super().__init__()
        if fusion not in FUSION_MODES:
            raise ValueError(f"config key 'fusion': {fusion!r} is not one of {list(FUSION_MODES)}")
        self.fusion = fusion
        self.kg_encoder = kg_encoder
        self.cooccurrence, self.text, self.image = cooccurrence, text, image
        self.lambda_text, self.lambda_image = float(lambda_text), float(lambda_image)
        self.register_buffer("item_ids", item_ids.long(), persistent=False)
        self.register_buffer("item_position", position_index(self.item_ids, kg_encoder.n_entity), persistent=False)
        # fusion "mean": each row's total view weight, fixed by the graphs that are on
        row_weight = 1.0 + (1.0 if cooccurrence is not None else 0.0)
        item_weight = (self.lambda_text if text is not None else 0.0) + \
            (self.lambda_image if image is not None else 0.0)
        view_weight = None
        if fusion == "mean" and (row_weight != 1.0 or item_weight != 0.0):
            view_weight = torch.full((kg_encoder.n_entity, 1), row_weight)
            view_weight[self.item_ids] += item_weight
        self.register_buffer("view_weight", view_weight, persistent=False)
        dim = kg_encoder.dim
        self.fusion_mlp = ResidualMLP(dim)
        self.output_projection = nn.Linear(dim, output_dim)

    @property
    def uses_graphs(self) -> dict:
        return {"cooccurrence": self.cooccurrence is not None, "text": self.text is not None,
                "image": self.image is not None}

    def fused_embeddings(self, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """h = e0 + c + item rows (lambda_t t + lambda_v v), before the MLP: [n_entity, d]
        (or [len(rows), d] for sorted unique entity ids ``rows``).

        With ``fusion="mean"`` every row is divided by the total weight of its views.
        """
        if rows is not None:
            return self._fused_rows(rows)
        e0 = self.kg_encoder()
        fused = e0
        if self.cooccurrence is not None:
            fused = fused + self.cooccurrence(e0)
        if self.text is not None or self.image is not None:
            item_rows = e0.index_select(0, self.item_ids)
            item_extra = torch.zeros_like(item_rows)
            if self.text is not None:
                item_extra = item_extra + self.lambda_text * self.text(item_rows)
            if self.image is not None:
                item_extra = item_extra + self.lambda_image * self.image(item_rows)
            fused = fused.index_add(0, self.item_ids, item_extra)
        if self.view_weight is not None:  # fusion "mean"
            fused = fused / self.view_weight.to(fused.dtype)
        return fused

    def _fused_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """:meth:`fused_embeddings` at ``rows`` only, from e0 on their receptive field."""
        n_entity = self.kg_encoder.n_entity
        needed = torch.zeros(n_entity, dtype=torch.bool, device=rows.device)
        needed[rows] = True
        if self.cooccurrence is not None:
            needed = self.cooccurrence.receptive_field(needed)
        item_graphs = [(graph, weight) for graph, weight in ((self.text, self.lambda_text),
                                                            (self.image, self.lambda_image)) if graph is not None]
        row_item = self.item_position[rows]  # position of each row among the items, -1: not an item
        item_nodes = None
        if item_graphs and bool((row_item >= 0).any()):
            asked = torch.zeros(self.item_ids.numel(), dtype=torch.bool, device=rows.device)
            asked[row_item[row_item >= 0]] = True
            field = torch.zeros_like(asked)
            for graph, _ in item_graphs:
                field |= graph.receptive_field(asked)
            item_nodes = field.nonzero().squeeze(1)  # item positions, sorted
            needed[self.item_ids[item_nodes]] = True
        nodes = needed.nonzero().squeeze(1)
        e0 = self.kg_encoder(rows=nodes)  # [len(nodes), d]
        local = position_index(nodes, n_entity)
        at_rows = local[rows]
        fused = e0.index_select(0, at_rows)
        if self.cooccurrence is not None:
            fused = fused + self.cooccurrence(e0, nodes=nodes).index_select(0, at_rows)
        if item_nodes is not None:
            item_rows = e0.index_select(0, local[self.item_ids[item_nodes]])
            item_extra = sum(weight * graph(item_rows, nodes=item_nodes) for graph, weight in item_graphs)
            item_local = position_index(item_nodes, self.item_ids.numel())  # item position -> place in item_nodes
            is_item = (row_item >= 0).nonzero().squeeze(1)
            fused = fused.index_add(0, is_item, item_extra.index_select(0, item_local[row_item[is_item]]))
        if self.view_weight is not None:  # fusion "mean"
            fused = fused / self.view_weight.index_select(0, rows).to(fused.dtype)
        return fused

    def rows_table(self, entity_ids: torch.Tensor) -> EntityRows:
        """The table at ``entity_ids`` (any shape, repeats allowed) as :class:`EntityRows`."""
        rows = torch.unique(entity_ids.reshape(-1).to(self.item_ids.device))  # sorted
        return EntityRows.from_rows(self(rows=rows), rows, self.kg_encoder.n_entity)

    def forward(self, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The fused entity table in LM hidden size: [n_entity, output_dim], always float32.

        ``rows``: sorted unique entity ids; then only those rows are computed and returned
        ([len(rows), output_dim]), with the same values as in the full table.

        Autocast is switched off here: the graph layers mix sparse products and
        ``index_add`` with dense layers, and under bf16 autocast (CUDA runs) the dense
        outputs would come back in bf16 while the sparse ones stay float32. The table
        costs little next to the LM, so it is computed in full precision.
        """
        with torch.autocast(device_type=self.item_ids.device.type, enabled=False):
            return self.output_projection(self.fusion_mlp(self.fused_embeddings(rows)))
