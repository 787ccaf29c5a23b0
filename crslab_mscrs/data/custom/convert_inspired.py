"""INSPIRED's raw files -> the bring-your-own-data format: a worked converter and the format's reality check.

Building the result with the generic builder must give the conversations, turns and labels
the INSPIRED builder gives (``tests/test_own_data_inspired_roundtrip.py``). The mapping:

* ``items.jsonl``: the KG's ``item_ids.json`` then every movie the dialogues link that the
  KG knows but does not list (as the INSPIRED builder adds them), id = uri = the DBpedia URI,
  name from the URI;
* ``entities.txt``: ``entity2id.json`` in id order; ``kg.tsv``: ``dbpedia_subkg.json`` with
  relation names, self loops left out (CRSLab adds its own);
* conversations: one message per turn, ``items`` = the turn's ``movie_link`` known to the KG,
  ``entities`` = its ``entity_link`` known to the KG (unknown links are what the INSPIRED
  builder counts and drops), ``conv_id`` left to the default ``<split>-<index>``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from crslab_mscrs.data.custom.format import SPLIT_FILES, write_uri_dataset
from crslab_mscrs.data.inspired_kg import InspiredKG, named_triples
from crslab_mscrs.data.jsonl import iter_jsonl


def inspired_to_user_format(source_root, out_folder, limit: Optional[int] = None) -> Path:
    """Write ``<source_root>/inspired`` (raw + kg) as a user dataset folder; ``limit`` conversations per split."""
    source_root, out_folder = Path(source_root), Path(out_folder)
    kg = InspiredKG.load(source_root / "inspired" / "kg")
    e2i = kg.entity2id
    id2uri = {idx: uri for uri, idx in e2i.items()}
    splits = {}
    for split in SPLIT_FILES:
        path = source_root / "inspired" / "raw" / f"{split}_data_dbpedia.jsonl"
        conversations = []
        for _, turns in iter_jsonl(path, limit):
            messages = []
            for turn in turns:
                message = {"role": str(turn.get("role", "")).lower(), "text": turn.get("text") or ""}
                items = [u for u in dict.fromkeys(turn.get("movie_link") or []) if u in e2i]
                entities = [u for u in dict.fromkeys(turn.get("entity_link") or []) if u in e2i]
                if items:
                    message["items"] = items
                if entities:
                    message["entities"] = entities
                messages.append(message)
            conversations.append({"messages": messages})
        splits[split] = conversations
    labelled = {e2i[u] for convs in splits.values() for conv in convs for m in conv["messages"]
                for u in m.get("items", [])}
    item_ids = list(dict.fromkeys(kg.item_ids)) + sorted(labelled - set(kg.item_ids))
    return write_uri_dataset(out_folder, id2uri, [id2uri[idx] for idx in item_ids],
                             named_triples(id2uri, kg.subkg, kg.relation_names), splits)
