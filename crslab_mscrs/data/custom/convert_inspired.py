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

import json
from pathlib import Path
from typing import Optional

from crslab_mscrs.data.custom.format import ENTITIES_FILE, ITEMS_FILE, KG_FILE, SPLIT_FILES
from crslab_mscrs.data.inspired_kg import SELF_LOOP_NAMES, InspiredKG
from crslab_mscrs.data.jsonl import iter_jsonl


def inspired_to_user_format(source_root, out_folder, limit: Optional[int] = None) -> Path:
    """Write ``<source_root>/inspired`` (raw + kg) as a user dataset folder; ``limit`` conversations per split."""
    from crslab_mscrs.features.catalogue import title_from_uri

    source_root, out_folder = Path(source_root), Path(out_folder)
    kg = InspiredKG.load(source_root / "inspired" / "kg")
    e2i = kg.entity2id
    id2uri = {idx: uri for uri, idx in e2i.items()}
    splits = {}
    for split, file_name in SPLIT_FILES.items():
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
        splits[file_name] = conversations
    labelled = {e2i[u] for convs in splits.values() for conv in convs for m in conv["messages"]
                for u in m.get("items", [])}
    item_ids = list(dict.fromkeys(kg.item_ids)) + sorted(labelled - set(kg.item_ids))
    out_folder.mkdir(parents=True, exist_ok=True)
    with (out_folder / ITEMS_FILE).open("w", encoding="utf-8") as handle:
        for idx in item_ids:
            uri = id2uri[idx]
            handle.write(json.dumps({"id": uri, "uri": uri, "name": title_from_uri(uri)[0] or uri},
                                    ensure_ascii=False) + "\n")
    (out_folder / ENTITIES_FILE).write_text("".join(f"{id2uri[i]}\n" for i in sorted(id2uri)), encoding="utf-8")
    with (out_folder / KG_FILE).open("w", encoding="utf-8") as handle:
        for head, edges in kg.subkg.items():
            for rel, tail in edges:
                if kg.relation_names[rel] not in SELF_LOOP_NAMES:
                    handle.write(f"{id2uri[int(head)]}\t{kg.relation_names[rel]}\t{id2uri[int(tail)]}\n")
    for file_name, conversations in splits.items():
        with (out_folder / file_name).open("w", encoding="utf-8") as handle:
            for conv in conversations:
                handle.write(json.dumps(conv, ensure_ascii=False) + "\n")
    return out_folder
