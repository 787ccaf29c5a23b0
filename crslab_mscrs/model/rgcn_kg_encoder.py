"""One R-GCN layer over the DBpedia knowledge graph, with a residual connection.

Schlichtkrull et al., "Modeling Relational Data with Graph Convolutional Networks" (ESWC 2018),
as used by UniCRS (KDD 2022) and MSCRS (SIGIR 2025, section 3.2)::

    e0 = RGCN(E) + E,    RGCN(E)_i = E_i W_root + sum_r mean_{j in N_r(i)} E_j W_r,
    W_r = sum_b a_rb V_b   (basis decomposition, ``num_bases`` bases)

``E`` is a learned entity table [n_entity, d] (no one-hot input over all entities: the
authors' code feeds an identity matrix, bug 9, docs/model.md). Relation ids are remapped to
0..R-1 and the layer has exactly R relations (the authors' ids start at 1 while
num_relations = R, dropping the last relation: bug 3).

Parameters live in a PyG ``RGCNConv`` (same layout, same initialisation). Its forward
multiplies ALL n rows by W_r for every relation (R dense [n, d] x [d, d] products: about
660 GFLOP per step for ReDial's 64k entities and 35 relations). The default forward
(``row_sparse=True``) computes the same function but transforms only the (relation, target)
pairs that receive messages (168k rows for ReDial, ~13x fewer FLOPs); it is tested equal to
``RGCNConv.forward``, which stays available with ``row_sparse=False``.

``forward(rows=...)`` returns e0 for some rows only (the row-sparse path): only the
(relation, target) pairs whose target is asked for are aggregated and transformed.
"""
from __future__ import annotations

from typing import Iterable, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch_geometric.nn import RGCNConv

from crslab_mscrs.model.row_index import position_index


def kg_edges_to_tensors(edges: Iterable[Sequence[int]], n_entity: int
                        ) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """Turn CRSLab's ``side_data['entity_kg']['edge']`` triples into PyG tensors.

    Args:
        edges: ``(head, tail, relation)`` triples (any integer relation ids).
        n_entity: number of entities; every head/tail must be in ``[0, n_entity)``.
    Returns:
        ``edge_index [2, E]`` (source = head, target = tail), ``edge_type [E]`` with relation ids
        remapped to 0..R-1 (sorted order of the original ids) and ``R``.
    """
    triples = torch.as_tensor([tuple(edge)[:3] for edge in edges], dtype=torch.long)
    if triples.numel() == 0:
        raise ValueError("side_data['entity_kg']['edge'] is empty: the R-GCN needs at least one edge.")
    if triples.dim() != 2 or triples.size(1) != 3:
        raise ValueError("side_data['entity_kg']['edge'] must hold (head, tail, relation) triples.")
    nodes = triples[:, :2]
    if nodes.min() < 0 or nodes.max() >= n_entity:
        raise ValueError(f"KG edge entity id out of range [0, {n_entity}): "
                         f"min {int(nodes.min())}, max {int(nodes.max())} (check vocab['n_entity']).")
    relation_ids, edge_type = torch.unique(triples[:, 2], sorted=True, return_inverse=True)
    return triples[:, :2].t().contiguous(), edge_type, int(relation_ids.numel())


def relation_target_pairs(edge_index: torch.Tensor, edge_type: torch.Tensor, n_entity: int
                          ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sparse mean aggregation per (relation, target) pair.

    Returns ``aggregation [pairs, n_entity]`` (row p = mean over the sources of pair p) and
    the relation and target entity of each pair (pairs sorted by relation, then target).
    Also used by the compat layer's KBRD/KGSF R-GCN (:mod:`crslab_mscrs.compat.rgcn_featureless`).
    """
    source, target = edge_index
    pair_key = edge_type * n_entity + target
    pair_keys, pair_row = torch.unique(pair_key, sorted=True, return_inverse=True)
    degree = torch.bincount(pair_row, minlength=pair_keys.numel()).float()
    values = 1.0 / degree[pair_row]
    aggregation = torch.sparse_coo_tensor(torch.stack([pair_row, source]), values,
                                          (pair_keys.numel(), n_entity), check_invariants=True).coalesce()
    return aggregation, pair_keys // n_entity, pair_keys % n_entity


class RGCNKGEncoder(nn.Module):
    """Learned entity table refined by one basis-decomposed R-GCN layer, with residual.

    Args:
        n_entity: number of entities (rows of the table; id 0 is the padding entity).
        dim: entity embedding size d (paper code: LM hidden // 2).
        edge_index: ``[2, E]`` KG edges (head -> tail).
        edge_type: ``[E]`` relation ids in 0..num_relations-1.
        num_relations: R.
        num_bases: number of bases of the decomposition (paper: 8).
        row_sparse: use the row-sparse forward (same function as ``RGCNConv``, fewer FLOPs).
    """

    def __init__(self, n_entity: int, dim: int, edge_index: torch.Tensor, edge_type: torch.Tensor,
                 num_relations: int, num_bases: int = 8, row_sparse: bool = True):
        super().__init__()
        if edge_type.numel() and (int(edge_type.min()) < 0 or int(edge_type.max()) >= num_relations):
            raise ValueError(f"edge_type must lie in 0..{num_relations - 1} (got "
                             f"{int(edge_type.min())}..{int(edge_type.max())}); use kg_edges_to_tensors.")
        self.n_entity, self.dim, self.num_relations = n_entity, dim, num_relations
        self.entity_embedding = nn.Parameter(torch.empty(n_entity, dim))
        self.conv = RGCNConv(dim, dim, num_relations=num_relations, num_bases=num_bases)
        # Graph structure comes from the data, not from training: kept out of the state_dict.
        self.register_buffer("edge_index", edge_index.long(), persistent=False)
        self.register_buffer("edge_type", edge_type.long(), persistent=False)
        self.row_sparse = row_sparse
        aggregation, pair_relation, pair_target = relation_target_pairs(
            edge_index.long(), edge_type.long(), n_entity)
        self.register_buffer("aggregation", aggregation, persistent=False)
        self.register_buffer("pair_relation", pair_relation, persistent=False)
        self.register_buffer("pair_target", pair_target, persistent=False)
        self.relation_counts = torch.bincount(pair_relation, minlength=num_relations).tolist()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.entity_embedding, std=self.dim ** -0.5)
        self.conv.reset_parameters()

    def forward(self, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Return e0 = RGCN(E) + E, shape [n_entity, dim]; with ``rows`` (sorted unique entity
        ids) only those rows, shape [len(rows), dim] (same values as the full table's rows)."""
        table = self.entity_embedding
        if rows is None:
            if not self.row_sparse:
                return self.conv(table, self.edge_index, self.edge_type) + table
            return self._row_sparse_conv(table) + table
        own = table.index_select(0, rows)  # one gather for the root term and the residual
        return self._row_sparse_conv(table, rows, own) + own

    def _row_sparse_conv(self, x: torch.Tensor, rows: Optional[torch.Tensor] = None,
                         x_rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``RGCNConv.forward`` (mean aggregation, root weight, bias), transforming only rows with messages
        (and, with ``rows``, only the pairs whose target is one of them; ``x_rows`` = x[rows])."""
        conv = self.conv
        weight = (conv.comp @ conv.weight.view(conv.num_bases, -1)).view(self.num_relations, self.dim, -1)
        out = (x if rows is None else x_rows) @ conv.root
        if conv.bias is not None:
            out = out + conv.bias
        aggregation, pair_target, counts = self.aggregation, self.pair_target, self.relation_counts
        if rows is not None:
            aggregation, pair_target, counts = self._pairs_targeting(rows)
        if not any(counts):
            return out
        aggregated = torch.sparse.mm(aggregation.to(x.dtype), x)  # [pairs, d]: mean_{j in N_r(i)} x_j
        # split and unbind (not slicing, not weight[r]): their backward concatenates / stacks the
        # gradients instead of scattering each into a zero tensor of the full size
        chunks = aggregated.split(counts)
        transformed = torch.cat([chunk @ relation_weight
                                 for chunk, relation_weight, count in zip(chunks, weight.unbind(0), counts)
                                 if count])
        return out.index_add(0, pair_target, transformed)

    def _pairs_targeting(self, rows: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, List[int]]:
        """Aggregation rows, local targets and per-relation counts of the pairs whose target is in ``rows``."""
        position = position_index(rows, self.n_entity)
        keep_pair = position[self.pair_target] >= 0
        new_pair = torch.cumsum(keep_pair, 0) - 1
        pair_row, source = self.aggregation.indices()
        keep = keep_pair[pair_row]
        n_pairs = int(keep_pair.sum())
        # a monotone renumbering of a coalesced matrix stays coalesced
        aggregation = torch.sparse_coo_tensor(torch.stack([new_pair[pair_row[keep]], source[keep]]),
                                              self.aggregation.values()[keep], (n_pairs, self.n_entity),
                                              is_coalesced=True, check_invariants=False)
        counts = torch.bincount(self.pair_relation[keep_pair], minlength=self.num_relations).tolist()
        return aggregation, position[self.pair_target[keep_pair]], counts

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(n_entity={self.n_entity}, dim={self.dim}, "
                f"num_relations={self.num_relations}, num_bases={self.conv.num_bases}, "
                f"edges={self.edge_index.size(1)})")
