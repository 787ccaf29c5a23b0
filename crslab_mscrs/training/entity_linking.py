"""Link entities typed by a user in ``interact`` to KG entity ids (exact n-gram match).

A user line is split into lower-case alphanumeric pieces; every n-gram (n <= 6) is looked
up in a table of entity surface names (DBpedia titles without their disambiguation
suffix, :func:`~crslab_mscrs.batches.text.entity_surface_name`). Longer matches win
and consume their words; on a name shared by several entities an item is preferred.
Single-word names shorter than 4 characters are skipped (too ambiguous: "it", "up").
"""
from __future__ import annotations

import re
from typing import Dict, Iterable, List

from crslab_mscrs.batches.text import entity_surface_name

_PIECE = re.compile(r"[a-z0-9]+")
MAX_NGRAM = 6
MIN_SINGLE_WORD = 4


class EntityLinker:
    def __init__(self, entity2id: Dict[str, int], item_ids: Iterable[int] = ()):
        items = set(int(i) for i in item_ids)
        self.table: Dict[str, int] = {}
        for uri, entity_id in entity2id.items():
            pieces = _PIECE.findall(entity_surface_name(uri).lower())
            if not pieces or len(pieces) > MAX_NGRAM or (len(pieces) == 1 and len(pieces[0]) < MIN_SINGLE_WORD):
                continue
            key = " ".join(pieces)
            if key not in self.table or (int(entity_id) in items and self.table[key] not in items):
                self.table[key] = int(entity_id)

    def link(self, text: str) -> List[int]:
        pieces = _PIECE.findall(text.lower())
        found, i = [], 0
        while i < len(pieces):
            for n in range(min(MAX_NGRAM, len(pieces) - i), 0, -1):
                entity = self.table.get(" ".join(pieces[i:i + n]))
                if entity is not None:
                    if entity not in found:
                        found.append(entity)
                    i += n
                    break
            else:
                i += 1
        return found
