"""R-GCN over featureless nodes without materialising one weight matrix per relation.

KBRD (``crslab/model/crs/kbrd/kbrd.py:127``) and KGSF (``crslab/model/crs/kgsf/kgsf.py``)
call ``torch_geometric.nn.RGCNConv(n_entity, dim, n_relation, num_bases)`` with ``x=None``:
every entity is its own one-hot input, so relation ``r`` maps entity ``u`` to
``W_r[u] = sum_b a_rb V_b[u]`` (basis decomposition, Schlichtkrull et al., 2018, eq. 3).
PyG materialises all ``W_r`` (relations x entities x dim: 1.8 GB on ReDial) and indexes
``W_r[arange(n)]`` once per relation; on CPU the backward of that indexing dominates a
KBRD step (ReDial KG, one thread: 50 s for this layer's forward + backward, 3.1 s with
this patch; ``benchmarks/rgcn_cost.py``).

The replacement computes the same layer (eq. 2, mean over each relation's in-edges,
plus the self-connection and bias) from the bases: every (relation r, target v) pair
averages ``V_b[u]`` over its sources u (one sparse matmul for all bases, the aggregation
matrix built once per graph) and mixes the averages with ``a_r``. The
parameters, their initialisation and the result are PyG's (equal up to float summation
order, tested against the original); any other call (node features, block decomposition,
sparse adjacency) goes to the original forward.
"""
from __future__ import annotations

import torch

from ._patching import is_marked, mark

_original_forward = None


def _cached_pairs(conv, edge_index: torch.Tensor, edge_type: torch.Tensor):
    """The (relation, target) mean aggregation, built once per graph (KBRD/KGSF pass the same KG every step)."""
    from crslab_mscrs.model.rgcn_kg_encoder import relation_target_pairs

    key = (edge_index.data_ptr(), edge_type.data_ptr(), tuple(edge_index.shape), str(edge_index.device),
           int(edge_index.sum()), int(edge_type.sum()))
    cached = getattr(conv, "_crslab_mscrs_pairs", None)
    if cached is None or cached[0] != key:
        cached = (key, relation_target_pairs(edge_index, edge_type, conv.in_channels_l))
        conv._crslab_mscrs_pairs = cached
    return cached[1]


def featureless_basis_forward(conv, edge_index: torch.Tensor, edge_type: torch.Tensor) -> torch.Tensor:
    """``RGCNConv`` output for one-hot node inputs with basis decomposition.

    ``edge_index`` is (2, E) ``[source; target]``, ``edge_type`` is (E,) relation ids.
    Each (relation r, target v) pair averages the bases at its sources once (one sparse
    matmul for all bases), then mixes them with ``a_r``. Returns (num_nodes, out_channels).
    """
    num_nodes, num_bases, dim = conv.in_channels_l, conv.num_bases, conv.out_channels
    aggregation, pair_relation, pair_target = _cached_pairs(conv, edge_index, edge_type)
    bases = conv.weight.permute(1, 0, 2).reshape(num_nodes, num_bases * dim)        # [n, B*D]
    averaged = torch.sparse.mm(aggregation.to(bases.dtype), bases).view(-1, num_bases, dim)  # [pairs, B, D]
    messages = torch.einsum("pb,pbd->pd", conv.comp[pair_relation], averaged)        # [pairs, D]
    out = torch.zeros(num_nodes, dim, device=messages.device, dtype=messages.dtype)
    out = out.index_add(0, pair_target, messages)
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
