"""Options shared by the ReDial and INSPIRED builders."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Optional, Union

DEFAULT_SEED = 2024


@dataclass
class BuildOptions:
    """How a dataset is built.

    Attributes:
        valid_fraction: ReDial only: share of the train pool carved out as valid.
        seed: seed of that carve (``random.Random(seed).shuffle``).
        limit: cap on conversations per split, applied AFTER the carve (an int for every
            split or ``{"train": 150, ...}``); ``None`` keeps everything. The first
            conversations of each split (file order) are kept.
        conceptnet_csv: a ConceptNet assertions dump for the word graph (else TRAIN PMI).
        word_top_k / word_min_pair_count: PMI word-graph settings (see ``word_graph``).
        concept_min_count: TRAIN occurrences a concept word needs.
        compact_kg: keep only the 1-hop KG around the dialogues' entities, re-indexed
            compactly, and write ``entity_id_map.json`` (the embedded sample does this).
        min_items: with ``compact_kg``, fail if fewer items remain (CRSLab ranks top 50).
    """
    valid_fraction: float = 0.1
    seed: int = DEFAULT_SEED
    limit: Optional[Union[int, Dict[str, int]]] = None
    conceptnet_csv: Optional[Path] = None
    word_top_k: int = 10
    word_min_pair_count: int = 3
    concept_min_count: int = 2
    compact_kg: bool = False
    min_items: int = 50

    def split_limit(self, split: str) -> Optional[int]:
        if self.limit is None or isinstance(self.limit, int):
            return self.limit
        return self.limit.get(split)

    def as_dict(self) -> dict:
        values = asdict(self)
        values["conceptnet_csv"] = str(self.conceptnet_csv) if self.conceptnet_csv else None
        return values
