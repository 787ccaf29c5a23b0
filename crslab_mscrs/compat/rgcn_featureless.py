"""R-GCN over featureless nodes without materialising one weight matrix per relation.

KBRD (``crslab/model/crs/kbrd/kbrd.py:127``) and KGSF (``crslab/model/crs/kgsf/kgsf.py``)
call ``torch_geometric.nn.RGCNConv(n_entity, dim, n_relation, num_bases)`` with ``x=None``:
every entity is its own one-hot input, so relation ``r`` maps entity ``u`` to
``W_r[u] = sum_b a_rb V_b[u]`` (basis decomposition, Schlichtkrull et al., 2018, eq. 3).
PyG materialises all ``W_r`` (relations x entities x dim: 1.8 GB on ReDial) and indexes
``W_r[arange(n)]`` once per relation; on CPU the backward of that indexing dominates a
KBRD step (about 85 s of a 90 s step on ReDial, one thread; ``benchmarks/rgcn_cost.py``).

The replacement computes the same layer (eq. 2, mean over each relation's in-edges,
plus the self-connection and bias) edge-wise: each edge ``u -r-> v`` carries
``sum_b a_rb V_b[u]``, gathered from the bases only for the edges' source entities. The
parameters, their initialisation and the result are PyG's (equal up to float summation
order, tested against the original); any other call (node features, block decomposition,
sparse adjacency) goes to the original forward.
"""
from __future__ import annotations

import torch

from ._patching import is_marked, mark

_original_forward = None


def featureless_basis_forward(conv, edge_index: torch.Tensor, edge_type: torch.Tensor) -> torch.Tensor:
    """``RGCNConv`` output for one-hot node inputs with basis decomposition, edge-wise.

    ``edge_index`` is (2, E) ``[source; target]``, ``edge_type`` is (E,) relation ids.
    Returns (num_nodes, out_channels).
    """
    num_nodes = conv.in_channels_l
    source, target = edge_index[0], edge_index[1]
    coefficients = conv.comp[edge_type]                                   # (E, B)
    bases_at_source = conv.weight[:, source, :]                           # (B, E, D)
    messages = torch.einsum("eb,bed->ed", coefficients, bases_at_source)  # (E, D)
    # mean aggregation per (relation, target), as PyG's per-relation propagate does
    slot = edge_type * num_nodes + target
    in_degree = torch.zeros(conv.num_relations * num_nodes, device=slot.device,
                            dtype=messages.dtype).index_add_(0, slot, torch.ones_like(slot, dtype=messages.dtype))
    messages = messages / in_degree[slot].unsqueeze(1)
    out = torch.zeros(num_nodes, conv.out_channels, device=messages.device, dtype=messages.dtype)
    out = out.index_add(0, target, messages)
    if conv.root is not None:
        out = out + conv.root
    if conv.bias is not None:
        out = out + conv.bias
    return out


def forward(self, x, edge_index, edge_type=None):
    """``RGCNConv.forward``: the edge-wise path for ``x=None`` + bases, else PyG's own."""
    if (x is None and self.num_bases is not None and self.num_blocks is None
            and isinstance(edge_index, torch.Tensor) and edge_type is not None):
        return featureless_basis_forward(self, edge_index, edge_type)
    return _original_forward(self, x, edge_index, edge_type)


mark(forward, "rgcn_featureless")


def install() -> None:
    global _original_forward
    from torch_geometric.nn import RGCNConv

    if is_marked(RGCNConv.forward):
        return
    _original_forward = RGCNConv.forward
    RGCNConv.forward = forward
