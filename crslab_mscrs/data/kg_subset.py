"""Restricting a DBpedia sub-KG to the neighbourhood of some entities, with compact ids.

Used for the embedded sample: the KG keeps the entities the sample's dialogues mention
(seeds) plus everything one *outgoing* edge away from a seed (``{head: [[rel, tail]]}``
as stored; CRSLab's loaders add the reverse direction themselves). Following incoming
edges too would pull in thousands of movies through hubs such as a genre or a country.
Kept entities are re-indexed ``1..n`` (0 stays CRSLab's ``pad_entity``, owned by no
entity) in original-id order, and ``entity_id_map.json`` records ``sample id -> original
id`` so features keyed by the original ids can be looked up.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Set


@dataclass
class CompactKG:
    entity2id: Dict[str, int]
    subkg: Dict[str, List[List[int]]]
    movie_ids: List[int]
    new_to_old: Dict[int, int]


def kg_degree(subkg: Mapping[str, List[List[int]]]) -> Counter:
    """Number of edges touching each entity id (both ends counted)."""
    degree: Counter = Counter()
    for head, edges in subkg.items():
        degree[int(head)] += len(edges)
        for _, tail in edges:
            degree[int(tail)] += 1
    return degree


def one_hop_out(subkg: Mapping[str, List[List[int]]], seeds: Iterable[int]) -> Set[int]:
    """``seeds`` plus the tails of their outgoing edges."""
    keep = set(seeds)
    for seed in list(keep):
        for _, tail in subkg.get(str(seed), ()):
            keep.add(int(tail))
    return keep


def compact_kg(entity2id: Mapping[str, int], subkg: Mapping[str, List[List[int]]],
               movie_ids: Iterable[int], keep: Set[int], start: int = 1) -> CompactKG:
    """Keep only ``keep`` (and edges with both ends in it) under ids ``start..``."""
    id2entity = {idx: uri for uri, idx in entity2id.items()}
    missing = sorted(i for i in keep if i not in id2entity)
    if missing:
        raise KeyError(f"entity ids {missing[:5]} are not in entity2id")
    old_to_new = {old: new for new, old in enumerate(sorted(keep), start=start)}
    new_entity2id = {id2entity[old]: new for old, new in old_to_new.items()}
    new_subkg: Dict[str, List[List[int]]] = {}
    for head, edges in subkg.items():
        h = int(head)
        if h not in old_to_new:
            continue
        kept_edges = [[rel, old_to_new[int(t)]] for rel, t in edges if int(t) in old_to_new]
        if kept_edges:
            new_subkg[str(old_to_new[h])] = kept_edges
    new_movies = [old_to_new[m] for m in movie_ids if m in old_to_new]
    return CompactKG(new_entity2id, new_subkg, new_movies, {n: o for o, n in old_to_new.items()})
