"""Multimodal entity encoder of MSCRS (SIGIR 2025, section 3.3-3.4); UniCRS's when all graphs are off.

::

    e0 = RGCN(E) + E                              (KG, :class:`RGCNKGEncoder`)
    c  = LightGCN_cooc(e0)                        (all entities)
    t  = LightGCN_text(e0[items]),  v = LightGCN_image(e0[items])   (item rows only)
    h  = e0 + c + [items] (lambda_t * t + lambda_v * v)          (fusion "sum", the paper's)
    h  = that sum / (1 + 1 + [items] (lambda_t + lambda_v))       (fusion "mean")
    out = Linear(h + MLP(h))                      (residual MLP, then d -> LM hidden)

``fusion: authors`` is what the authors' code runs (BIAOBIAO12138/MSCRS-main,
``rec/src/model_prompt.py``, ``MMPrompt_inspired.get_entity_embeds``), not the paper's
equation: with the co-occurrence propagation built with K = ``cooccurrence_layers`` layers
and the item graphs with L = ``lightgcn_layers``::

    C_k = P_c^k s   (s = e0; s = E with ``cooccurrence_input: embedding``, ``MMPrompt``, ReDial)
    h   = (e0 + C_1 + ... + C_K) / (K + 1)
    t   = (T_1 + ... + T_L) / L,  T_l = P_t^l e0[items]   (layer 0 excluded), v likewise
    h[items] += (lambda_t t + lambda_v v) / (number of item graphs on)   (authors: (t + v) / 2)

The authors ignore edge weights (``CustomGCNConv``): ``graph_edge_weights`` (built in
:func:`crslab_mscrs.model.prompt_crs.build_entity_encoder`). docs/model.md lists each choice.

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


FUSION_MODES = ("sum", "mean", "authors")
COOCCURRENCE_INPUTS = ("e0", "embedding")


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
        fusion: "sum" (paper, section 3.4), "mean" (the sum over the total view weight) or
            "authors" (the authors' code, see the module docstring).
        cooccurrence_input: "e0" (default, authors' INSPIRED code) or "embedding" (the raw table
            E, authors' ReDial code): what the co-occurrence graph propagates.
    """

    def __init__(self, kg_encoder: RGCNKGEncoder, item_ids: torch.Tensor, output_dim: int,
                 cooccurrence: Optional[LightGCNPropagation] = None,
                 text: Optional[LightGCNPropagation] = None,
                 image: Optional[LightGCNPropagation] = None,
                 lambda_text: float = 1.0, lambda_image: float = 1.0, fusion: str = "sum",
                 cooccurrence_input: str = "e0"):
        super().__init__()
        if fusion not in FUSION_MODES:
            raise ValueError(f"config key 'fusion': {fusion!r} is not one of {list(FUSION_MODES)}")
        if cooccurrence_input not in COOCCURRENCE_INPUTS:
            raise ValueError(f"config key 'cooccurrence_input': {cooccurrence_input!r} is not one of "
                             f"{list(COOCCURRENCE_INPUTS)}")
        self.fusion, self.cooccurrence_input = fusion, cooccurrence_input
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
        """h before the MLP: [n_entity, d] (or [len(rows), d] for sorted unique entity ids ``rows``).

        ``sum``: e0 + c + item rows (lambda_t t + lambda_v v); ``mean``: that sum divided, row by
        row, by the total weight of its views; ``authors``: see the module docstring.
        """
        if rows is not None:
            return self._fused_rows(rows)
        e0 = self.kg_encoder()
        fused = e0
        if self.cooccurrence is not None:
            fused = self._with_cooccurrence(e0, e0, self._cooccurrence_input(e0), None)
        if self.text is not None or self.image is not None:
            item_extra = self._item_views(e0.index_select(0, self.item_ids), None)
            fused = fused.index_add(0, self.item_ids, item_extra)
        if self.view_weight is not None:  # fusion "mean"
            fused = fused / self.view_weight.to(fused.dtype)
        return fused

    def _cooccurrence_input(self, e0: torch.Tensor, nodes: Optional[torch.Tensor] = None) -> torch.Tensor:
        """What the co-occurrence graph propagates: e0 (default), or the raw table E
        (``cooccurrence_input: embedding``, the authors' ReDial ``MMPrompt``), at ``nodes``."""
        if self.cooccurrence_input == "e0":
            return e0
        table = self.kg_encoder.entity_embedding
        return table if nodes is None else table.index_select(0, nodes)

    def _with_cooccurrence(self, e0_rows: torch.Tensor, e0: torch.Tensor, source: torch.Tensor,
                           nodes: Optional[torch.Tensor], at_rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Rows of e0 fused with the co-occurrence view: ``e0 + c`` (sum, mean) or
        ``(e0 + C_1 + ... + C_K) / (K + 1)`` (authors); ``at_rows`` picks the rows of the node subset."""
        def pick(x: torch.Tensor) -> torch.Tensor:
            return x if at_rows is None else x.index_select(0, at_rows)
        if self.fusion != "authors":
            return e0_rows + pick(self.cooccurrence(source, nodes=nodes))
        layers = self.cooccurrence.layers(source, nodes)
        return (e0_rows + sum(pick(layer) for layer in layers)) / (len(layers) + 1)

    def _item_views(self, item_rows: torch.Tensor, item_nodes: Optional[torch.Tensor]) -> torch.Tensor:
        """What item rows receive from the text / image graphs: ``lambda_t t + lambda_v v`` with
        t = mean(X_0..X_L) (sum, mean), or the average of ``lambda t`` over the graphs that are on
        with t = mean(X_1..X_L), layer 0 excluded (authors: ``(t + v) / 2``)."""
        views = []
        for graph, weight in ((self.text, self.lambda_text), (self.image, self.lambda_image)):
            if graph is None:
                continue
            if self.fusion == "authors":
                layers = graph.layers(item_rows, item_nodes)
                views.append(weight * sum(layers) / len(layers))
            else:
                views.append(weight * graph(item_rows, nodes=item_nodes))
        total = sum(views)
        return total / len(views) if self.fusion == "authors" else total

    def _fused_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """:meth:`fused_embeddings` at ``rows`` only, from e0 on their receptive field."""
        n_entity = self.kg_encoder.n_entity
        needed = torch.zeros(n_entity, dtype=torch.bool, device=rows.device)
        needed[rows] = True
        if self.cooccurrence is not None:
            needed = self.cooccurrence.receptive_field(needed)
        item_graphs = [graph for graph in (self.text, self.image) if graph is not None]
        row_item = self.item_position[rows]  # position of each row among the items, -1: not an item
        item_nodes = None
        if item_graphs and bool((row_item >= 0).any()):
            asked = torch.zeros(self.item_ids.numel(), dtype=torch.bool, device=rows.device)
            asked[row_item[row_item >= 0]] = True
            field = torch.zeros_like(asked)
            for graph in item_graphs:
                field |= graph.receptive_field(asked)
            item_nodes = field.nonzero().squeeze(1)  # item positions, sorted
            needed[self.item_ids[item_nodes]] = True
        nodes = needed.nonzero().squeeze(1)
        e0 = self.kg_encoder(rows=nodes)  # [len(nodes), d]
        local = position_index(nodes, n_entity)
        at_rows = local[rows]
        fused = e0.index_select(0, at_rows)
        if self.cooccurrence is not None:
            fused = self._with_cooccurrence(fused, e0, self._cooccurrence_input(e0, nodes), nodes, at_rows)
        if item_nodes is not None:
            item_rows = e0.index_select(0, local[self.item_ids[item_nodes]])
            item_extra = self._item_views(item_rows, item_nodes)
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
