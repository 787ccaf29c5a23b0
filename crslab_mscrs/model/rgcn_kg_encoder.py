"""One R-GCN layer over the DBpedia knowledge graph, with a residual connection.

Schlichtkrull et al., "Modeling Relational Data with Graph Convolutional Networks" (ESWC 2018),
as used by UniCRS (KDD 2022) and MSCRS (SIGIR 2025, section 3.2)::

    e0 = RGCN(E) + E,    RGCN(E)_i = E_i W_root + sum_r mean_{j in N_r(i)} E_j W_r,
    W_r = sum_b a_rb V_b   (basis decomposition, ``num_bases`` bases)

``E`` is a learned entity table [n_entity, d] (no one-hot input over all entities: the
authors' code feeds an identity matrix, bug 9 of the design). Relation ids are remapped to
0..R-1 and the layer has exactly R relations (the authors' ids start at 1 while
num_relations = R, dropping the last relation: bug 3).
"""
from __future__ import annotations

from typing import Iterable, Sequence, Tuple

import torch
from torch import nn
from torch_geometric.nn import RGCNConv


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


class RGCNKGEncoder(nn.Module):
    """Learned entity table refined by one basis-decomposed R-GCN layer, with residual.

    Args:
        n_entity: number of entities (rows of the table; id 0 is the padding entity).
        dim: entity embedding size d (paper code: LM hidden // 2).
        edge_index: ``[2, E]`` KG edges (head -> tail).
        edge_type: ``[E]`` relation ids in 0..num_relations-1.
        num_relations: R.
        num_bases: number of bases of the decomposition (paper: 8).
    """

    def __init__(self, n_entity: int, dim: int, edge_index: torch.Tensor, edge_type: torch.Tensor,
                 num_relations: int, num_bases: int = 8):
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
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.entity_embedding, std=self.dim ** -0.5)
        self.conv.reset_parameters()

    def forward(self) -> torch.Tensor:
        """Return e0 = RGCN(E) + E, shape [n_entity, dim]."""
        table = self.entity_embedding
        return self.conv(table, self.edge_index, self.edge_type) + table

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(n_entity={self.n_entity}, dim={self.dim}, "
                f"num_relations={self.num_relations}, num_bases={self.conv.num_bases}, "
                f"edges={self.edge_index.size(1)})")
