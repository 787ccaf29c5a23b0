"""Collaborative (co-occurrence) graph over entities and items (MSCRS section 3.3).

Two entities (items or non-item KG entities) are linked when both are mentioned in the
same TRAINING conversation; the edge weight is the number of training conversations in
which the pair co-occurs (a conversation counts once per pair, however often the two are
repeated). Pairs seen in fewer than ``min_count`` conversations are dropped. The graph is
undirected (both directions stored), without self loops, in the entity id space.

Only the training conversations may be passed: the authors ship a precomputed file whose
provenance is unclear; building it from valid/test would leak the test targets into the
graph the model propagates over (docs/model.md, "Deviations from the authors' code").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np
import torch


def index_dtype(count: int) -> torch.dtype:
    """int32 for indices into ``count`` nodes or rows where they fit (half the memory of int64), else int64."""
    return torch.int32 if int(count) <= torch.iinfo(torch.int32).max else torch.long


@dataclass
class Graph:
    """Weighted graph in COO form over ``num_nodes`` entity ids."""

    edge_index: torch.Tensor  # [2, E] int64 (int32 from the kNN union; load_graph gives int64)
    edge_weight: torch.Tensor  # FloatTensor [E]
    num_nodes: int
    stats: dict = field(default_factory=dict)

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    def degree(self) -> torch.Tensor:
        return torch.bincount(self.edge_index[0], minlength=self.num_nodes)

    def degree_summary(self, nodes: Optional[Sequence[int]] = None) -> dict:
        """Degree statistics over ``nodes`` (default: nodes with at least one edge)."""
        deg = self.degree()
        deg = deg[torch.as_tensor(list(nodes), dtype=torch.long)] if nodes is not None else deg[deg > 0]
        if deg.numel() == 0:
            return {"nodes": 0}
        deg = deg.float()
        return {"nodes": int(deg.numel()), "isolated": int((deg == 0).sum()), "mean": round(float(deg.mean()), 3),
                "median": float(deg.median()), "max": int(deg.max())}


def conversation_entities(conversation, entity2id: dict, on_unknown: str = "error",
                          unknown_counter: Optional[dict] = None) -> list:
    """Sorted unique entity ids mentioned anywhere in one conversation.

    ``conversation`` is a CRSLab-format dict (``dialog[*].movies`` / ``dialog[*].entity``
    as URIs or ids) or a plain iterable of URIs/ids. Unknown URIs raise (``on_unknown``
    ``"error"``) or are counted in ``unknown_counter`` and skipped (``"skip"``).
    """
    if isinstance(conversation, dict):
        mentions = []
        for turn in conversation.get("dialog", []):
            mentions.extend(turn.get("movies", []) or [])
            mentions.extend(turn.get("entity", []) or [])
        label = conversation.get("conv_id", "?")
    else:
        mentions, label = list(conversation), "?"
    n_entity = max(entity2id.values()) + 1 if entity2id else 0
    ids = set()
    for mention in mentions:
        if isinstance(mention, (int, np.integer)):
            if not 0 <= int(mention) < n_entity:
                raise ValueError(f"conversation {label}: entity id {mention} outside [0, {n_entity})")
            ids.add(int(mention))
        elif mention in entity2id:
            ids.add(entity2id[mention])
        elif on_unknown == "skip":
            if unknown_counter is not None:
                unknown_counter[mention] = unknown_counter.get(mention, 0) + 1
        else:
            raise ValueError(f"conversation {label}: unknown entity {mention!r} (not in entity2id); "
                             "pass on_unknown='skip' to ignore such mentions")
    return sorted(ids)


def build_cooccurrence_graph(train_conversations: Iterable, entity2id: dict, min_count: int = 1,
                             on_unknown: str = "error") -> Graph:
    """Co-occurrence graph from the TRAIN conversations only (see module docstring).

    Args:
        train_conversations: CRSLab-format train conversations (or lists of URIs/ids).
        entity2id: URI -> entity id; ``num_nodes = max id + 1`` (CRSLab's ``n_entity``).
        min_count: minimum number of conversations a pair must share to become an edge.
        on_unknown: ``"error"`` or ``"skip"`` for mentions missing from ``entity2id``.
    """
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    num_nodes = max(entity2id.values()) + 1 if entity2id else 0
    unknown: dict = {}
    codes, n_conversations, n_with_pairs = [], 0, 0
    for conversation in train_conversations:
        n_conversations += 1
        ids = np.asarray(conversation_entities(conversation, entity2id, on_unknown, unknown), dtype=np.int64)
        if len(ids) < 2:
            continue
        n_with_pairs += 1
        src, dst = np.triu_indices(len(ids), k=1)
        codes.append(ids[src] * num_nodes + ids[dst])
    if codes:
        pair_codes, counts = np.unique(np.concatenate(codes), return_counts=True)
        keep = counts >= min_count
        pair_codes, counts = pair_codes[keep], counts[keep]
    else:
        pair_codes, counts = np.zeros(0, np.int64), np.zeros(0, np.int64)
    src, dst = pair_codes // max(num_nodes, 1), pair_codes % max(num_nodes, 1)
    edge_index = torch.from_numpy(np.stack([np.concatenate([src, dst]), np.concatenate([dst, src])]))
    edge_weight = torch.from_numpy(np.concatenate([counts, counts]).astype(np.float32))
    edge_index, edge_weight = sort_edges(edge_index, edge_weight, num_nodes)
    stats = {"conversations": n_conversations, "conversations_with_pairs": n_with_pairs,
             "undirected_pairs": int(len(counts)), "min_count": min_count,
             "unknown_mentions": int(sum(unknown.values())), "unknown_entities_sample": list(unknown)[:10]}
    return Graph(edge_index.long(), edge_weight, num_nodes, stats)


def sort_edges(edge_index: torch.Tensor, edge_weight: torch.Tensor, num_nodes: int) -> tuple:
    """Edges sorted by (source, target), for deterministic files."""
    if edge_index.numel() == 0:
        return edge_index.reshape(2, 0).long(), edge_weight.reshape(0).float()
    order = torch.argsort(edge_index[0].long() * max(num_nodes, 1) + edge_index[1].long())
    return edge_index[:, order].long(), edge_weight[order].float()
