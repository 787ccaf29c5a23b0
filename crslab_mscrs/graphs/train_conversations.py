"""Training conversations as inputs of the co-occurrence graph.

The normal input is a built CRSLab-format split, ``<data_root>/dataset/<name>/nltk/
train_data.json``: a list of ``{"conv_id", "dialog": [{"movies": [uri], "entity": [uri], ...}]}``.

Until that exists, two small adapters read the raw TRAIN files directly and yield the same
shape (with only the fields the graph needs):

- :func:`inspired_raw_train` reads INSPIRED's official ``train_data_dbpedia.jsonl``
  (``movie_link`` and ``entity_link`` per turn are DBpedia URIs): same content as the
  built split's train part.
- :func:`redial_raw_train` reads ReDial's ``train_pool.jsonl``: ``@<movieId>`` mentions
  and ``movieMentions`` mapped to entity URIs through ``id2entity`` (unlinked movies keep
  their movieId, which is their entity "URI" in this KG). It yields ITEMS ONLY: non-item
  entities need the dataset builder's entity linking. Conversations listed in
  ``exclude_conv_ids`` (for instance the validation conversations carved out of the
  pool) are skipped, so validation never feeds the graph either.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Optional

from crslab_mscrs.data.jsonl import iter_jsonl

_MENTION = re.compile(r"@(\d+)")


def load_crslab_train(path) -> list:
    """Conversations of a built CRSLab-format ``train_data.json``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"train conversations not found: {path}")
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of conversations")
    for n, conv in enumerate(data[:50]):
        if not isinstance(conv, dict) or "dialog" not in conv:
            raise ValueError(f"{path}: conversation #{n} lacks a 'dialog' list")
    return data


def inspired_raw_train(path) -> list:
    """INSPIRED raw train dialogues -> CRSLab-shaped conversations (movies + entities)."""
    conversations = []
    for line_no, turns in iter_jsonl(path):
        if not isinstance(turns, list):
            raise ValueError(f"{path}:{line_no}: expected a list of turns")
        dialog = [{"movies": list(t.get("movie_link") or []), "entity": list(t.get("entity_link") or [])}
                  for t in turns]
        conversations.append({"conv_id": f"inspired-train-{line_no}", "dialog": dialog})
    return conversations


def redial_raw_train(path, id2entity: dict, exclude_conv_ids: Optional[Iterable] = None) -> list:
    """ReDial raw train-pool conversations -> CRSLab-shaped conversations (items only)."""
    excluded = {str(c) for c in (exclude_conv_ids or ())}
    conversations = []
    for line_no, raw in iter_jsonl(path):
        conv_id = str(raw.get("conversationId", f"pool-{line_no}"))
        if conv_id in excluded:
            continue
        movie_ids = set(raw.get("movieMentions") or {})
        for message in raw.get("messages", []):
            movie_ids.update(_MENTION.findall(message.get("text", "")))
        uris = sorted({id2entity.get(mid) or mid for mid in movie_ids})
        conversations.append({"conv_id": conv_id, "dialog": [{"movies": uris, "entity": []}]})
    return conversations
