"""The shared INSPIRED KG files and their CRSLab ``nltk`` rendering."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

from crslab_mscrs.data.crslab_format import read_json, write_json

SELF_LOOP_NAMES = {"self_loop", "SELF_LOOP"}


@dataclass
class InspiredKG:
    """``<source>/inspired/kg``: entity ids, ``{head: [[rel, tail]]}``, items, relation names."""
    entity2id: Dict[str, int]
    subkg: Dict[str, List[List[int]]]
    item_ids: List[int]
    relation_names: Dict[int, str]

    @classmethod
    def load(cls, kg_dir: Path) -> "InspiredKG":
        kg_dir = Path(kg_dir)

        def load(name):
            return read_json(kg_dir / name)

        relation2id = load("relation2id.json")
        return cls(load("entity2id.json"), load("dbpedia_subkg.json"), load("item_ids.json"),
                   {idx: rel for rel, idx in relation2id.items()})


def write_inspired_kg(kg: InspiredKG, out_dir: Path) -> dict:
    """``entity2id.json``, ``movie_ids.json`` and ``dbpedia_subkg.txt``
    (``head_uri\\trelation\\ttail_uri``; self loops left to CRSLab's loader). Returns counts."""
    id2entity = {idx: uri for uri, idx in kg.entity2id.items()}
    write_json(out_dir / "entity2id.json", kg.entity2id)
    write_json(out_dir / "movie_ids.json", kg.item_ids)
    edges = 0
    relations = set()
    with (Path(out_dir) / "dbpedia_subkg.txt").open("w", encoding="utf-8") as handle:
        for head, pairs in kg.subkg.items():
            for rel, tail in pairs:
                name = kg.relation_names.get(rel)
                if name is None:
                    raise KeyError(f"INSPIRED dbpedia_subkg.json: head {head} uses relation id {rel} "
                                   "missing from relation2id.json")
                if name in SELF_LOOP_NAMES:
                    continue
                handle.write(f"{id2entity[int(head)]}\t{name}\t{id2entity[int(tail)]}\n")
                edges += 1
                relations.add(name)
    if edges == 0:
        raise ValueError("INSPIRED KG has no edge left to write (CRSLab's R-GCN needs edges)")
    return {"edges_written": edges, "relations": len(relations)}
