"""Parameter-free LightGCN propagation over a semantic graph (MSCRS, section 3.3).

He et al., "LightGCN" (SIGIR 2020)::

    A_hat = D^-1/2 (A + I) D^-1/2,     X_{l+1} = A_hat X_l,     out = mean(X_0, ..., X_L)

Self loops (weight 1) are added before the symmetric normalisation, as docs/model.md describes
(PyG's ``LGConv`` does not add them: :func:`normalized_adjacency` with self loops equals
``LGConv`` applied to the graph with explicit self loops, see tests). Edge weights (e.g.
co-occurrence counts) enter A; the normalisation is over weighted degrees. The normalised
adjacency is precomputed once as a sparse matrix (a non-persistent buffer: the graph comes
from the data, not from training), so each step costs L sparse matmuls.

A training step that reads only some rows of the output (the entities of a batch) can ask
:meth:`LightGCNPropagation.receptive_field` for the L-hop neighbourhood those rows depend on
and run :meth:`LightGCNPropagation.forward` on that node subset only (``nodes=``): the
sub-adjacency keeps the full graph's normalisation, so the rows asked for are exact.
"""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import nn

from crslab_mscrs.model.row_index import position_index


def normalized_adjacency(edge_index: torch.Tensor, num_nodes: int,
                         edge_weight: Optional[torch.Tensor] = None,
                         add_self_loops: bool = True) -> torch.Tensor:
    """Sparse COO ``D^-1/2 (A [+ I]) D^-1/2`` of shape [num_nodes, num_nodes].

    Message flow is source -> target (row = target), as in PyG. Duplicate edges are summed.
    """
    edge_index = edge_index.long()
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        raise ValueError(f"edge_index has node ids outside [0, {num_nodes}).")
    if edge_weight is None:
        edge_weight = torch.ones(edge_index.size(1), dtype=torch.float32)
    edge_weight = edge_weight.float()
    if add_self_loops:
        loops = torch.arange(num_nodes, dtype=torch.long)
        edge_index = torch.cat([edge_index, torch.stack([loops, loops])], dim=1)
        edge_weight = torch.cat([edge_weight, torch.ones(num_nodes)])
    source, target = edge_index
    degree = torch.zeros(num_nodes).index_add_(0, target, edge_weight)
    inv_sqrt = degree.pow(-0.5)
    inv_sqrt[torch.isinf(inv_sqrt)] = 0.0
    values = inv_sqrt[source] * edge_weight * inv_sqrt[target]
    # Indices were range-checked above: opt in to the invariant check explicitly (cheap, once).
    return torch.sparse_coo_tensor(torch.stack([target, source]), values, (num_nodes, num_nodes),
                                   check_invariants=True).coalesce()


class LightGCNPropagation(nn.Module):
    """Mean of ``num_layers`` LightGCN propagations (layer 0 = the input) over one fixed graph.

    Args:
        edge_index: ``[2, E]`` edges in the LOCAL node space of the rows it will be applied to.
        num_nodes: number of rows of the input.
        edge_weight: optional ``[E]`` non-negative weights.
        num_layers: L (paper code: 2).
        add_self_loops: add weight-1 self loops before normalising (default True).
    """

    def __init__(self, edge_index: torch.Tensor, num_nodes: int,
                 edge_weight: Optional[torch.Tensor] = None, num_layers: int = 2,
                 add_self_loops: bool = True):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1 (got {num_layers}).")
        self.num_nodes, self.num_layers = num_nodes, num_layers
        self.num_edges = int(edge_index.size(1))
        adjacency = normalized_adjacency(edge_index, num_nodes, edge_weight, add_self_loops)
        self.register_buffer("adjacency", adjacency, persistent=False)

    def receptive_field(self, mask: torch.Tensor) -> torch.Tensor:
        """Nodes whose input rows the output rows in ``mask`` depend on ([num_nodes] bool, L hops)."""
        target, source = self.adjacency.indices()
        for _ in range(self.num_layers):
            grown = mask.clone()
            grown[source[mask[target]]] = True
            mask = grown
        return mask

    def _sub_adjacency(self, nodes: torch.Tensor) -> torch.Tensor:
        """The normalised adjacency restricted to ``nodes`` (sorted ids), in their local order."""
        position = position_index(nodes, self.num_nodes)
        target, source = self.adjacency.indices()
        keep = (position[target] >= 0) & (position[source] >= 0)
        # a monotone renumbering of a coalesced (sorted, unique) matrix stays coalesced
        return torch.sparse_coo_tensor(torch.stack([position[target[keep]], position[source[keep]]]),
                                       self.adjacency.values()[keep], (nodes.numel(), nodes.numel()),
                                       is_coalesced=True, check_invariants=False)

    def forward(self, x: torch.Tensor, nodes: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Propagate ``x`` [num_nodes, d]; or, with ``nodes`` (sorted unique ids), ``x`` holds
        only those rows and so does the output.

        With ``nodes``, an output row is exact when the node's L-hop neighbourhood lies in
        ``nodes`` (use :meth:`receptive_field`); rows at the border are not.
        """
        return (x + sum(self.layers(x, nodes))) / (self.num_layers + 1)

    def layers(self, x: torch.Tensor, nodes: Optional[torch.Tensor] = None) -> List[torch.Tensor]:
        """The propagated layers ``[A_hat x, A_hat^2 x, ..., A_hat^L x]`` (layer 0 = ``x`` NOT
        included), for fusions that weight the layers themselves (``fusion: authors``,
        :class:`~crslab_mscrs.model.entity_encoder.MultimodalEntityEncoder`). ``nodes`` as in
        :meth:`forward`."""
        expected = self.num_nodes if nodes is None else nodes.numel()
        if x.size(0) != expected:
            raise ValueError(f"expected {expected} rows, got {x.size(0)}.")
        adjacency = self.adjacency if nodes is None else self._sub_adjacency(nodes)
        adjacency = adjacency.to(dtype=x.dtype)
        out, layer = [], x
        for _ in range(self.num_layers):
            layer = torch.sparse.mm(adjacency, layer)
            out.append(layer)
        return out

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(num_nodes={self.num_nodes}, edges={self.num_edges}, "
                f"num_layers={self.num_layers})")
