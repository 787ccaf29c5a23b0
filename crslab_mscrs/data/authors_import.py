"""The MSCRS authors' released data folder -> our features and graphs, or a dataset of its own.

The authors' code (MSCRS-main, ``rec/src/dataset_dbpedia.py``: ``DBpedia``, ``Co_occurrence``,
``text_sim``, ``image_sim``; ``rec/src/dataset_rec.py``) reads, per dataset folder:

* ``id_embeddings_text.json`` / ``id_embeddings_image.json``: ``{"<entity id>": [768 floats]}``
  (GPT-4o descriptions encoded by RoBERTa; ViT image features), ids in the folder's
  ``entity2id.json`` space;
* ``edge_index_c.pt``: a ``LongTensor[2, E]`` of co-occurring entity pairs, no weights
  (``Co_occurrence``: pairs seen 1-4 times dropped), provenance (which splits) unknown;
* ``dbpedia_subkg.json`` (``{head id: [[relation id, tail id]]}``), ``entity2id.json``,
  ``relation2id.json``, ``item_ids.json``;
* UniCRS-style turn records ``{split}_data_*.jsonl``: ``{"context": [str], "resp": str,
  "rec": [entity id], "entity": [entity id]}``, one per turn.

:func:`import_authors_features` maps their entity ids to a BUILT dataset's ids through the
URIs (coverage reported: items matched, items without a vector, their ids unknown to us),
writes ``text``/``image`` features + kNN graphs (:mod:`crslab_mscrs.features.user_vectors`)
and the co-occurrence graph: rebuilt from OUR train split by default; their
``edge_index_c.pt`` only on request, loaded with ``weights_only=True`` (never unpickles code)
and flagged ``possible_test_leakage`` in the manifest (every load then logs a warning).

:func:`authors_folder_to_user_format` turns their KG + turn records into the
bring-your-own-data format (:mod:`crslab_mscrs.data.custom.format`), so the generic builder
makes a dataset with exactly their splits. Turn records carry no roles: the authors' code
labels context position ``i`` ``User`` when ``i`` is even and ``System`` otherwise, and so do
we (``Seeker`` / ``Recommender``).
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import torch

from crslab_mscrs.data.custom.format import SPLIT_FILES, write_uri_dataset
from crslab_mscrs.data.inspired_kg import named_triples
from crslab_mscrs.data.jsonl import iter_jsonl
from crslab_mscrs.features import user_vectors as uv

TEXT_FILE, IMAGE_FILE, COOCCURRENCE_FILE = "id_embeddings_text.json", "id_embeddings_image.json", "edge_index_c.pt"
AUTHORS_DIM = 768
TURN_FILE_CANDIDATES = ("{split}_data_processed.jsonl", "{split}_data_train.jsonl",
                        "{split}_data_processed_retrieval_random.jsonl")
LEAKAGE_NOTE = ("co-occurrence graph imported from the MSCRS authors' edge_index_c.pt, whose source splits are "
                "unknown: it may contain valid/test co-occurrences (test labels); do not report these numbers "
                "as a clean test result")


def _load_json(path: Path, what: str):
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found ({what})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: malformed JSON ({err.msg})") from None


def load_authors_cooccurrence(path: Path) -> torch.Tensor:
    """``edge_index_c.pt`` as ``LongTensor[2, E]``; ``weights_only=True``: tensors only, no code."""
    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle errors come in many types
        raise ValueError(f"{path}: not a plain tensor file loadable with weights_only=True ({err})") from err
    if isinstance(value, dict):
        value = value.get("edge_index_c", value.get("edge_index"))
    if not isinstance(value, torch.Tensor) or value.dim() != 2 or value.shape[0] != 2:
        raise ValueError(f"{path}: expected a LongTensor [2, E] (or {{'edge_index_c': ...}}), "
                         f"got {type(value).__name__} {tuple(getattr(value, 'shape', ()))}")
    return value.long()


def map_authors_cooccurrence(edge_index: torch.Tensor, mapping: Dict[str, int], n_entity: int):
    """Their edge list in our entity ids (unmapped endpoints dropped and counted), weight 1, deduplicated."""
    from crslab_mscrs.graphs.cooccurrence import Graph, sort_edges

    lookup = torch.full((int(edge_index.max()) + 1 if edge_index.numel() else 1,), -1, dtype=torch.long)
    for their, ours in mapping.items():
        if int(their) < lookup.numel():
            lookup[int(their)] = ours
    mapped = lookup[edge_index]
    keep = (mapped >= 0).all(dim=0) & (mapped[0] != mapped[1])
    pairs = torch.unique(mapped[:, keep], dim=1)
    edge_index, weight = sort_edges(pairs, torch.ones(pairs.shape[1]), n_entity)
    stats = {"authors_edges": int(keep.numel()), "edges_mapped": int(keep.sum()),
             "edges_dropped_unmapped": int((~keep).sum()), "possible_test_leakage": True}
    return Graph(edge_index, weight, n_entity, stats)


def import_authors_features(authors_dir, dataset_dir, out_dir, k: int = 20, cooccurrence: str = "rebuild",
                            modalities=("text", "image"), dataset: Optional[str] = None, data_root=None) -> dict:
    """Import the authors' vectors (and, on request, co-occurrence) for a BUILT dataset (see module doc).

    Args:
        authors_dir: their dataset folder (``entity2id.json`` + the files above).
        dataset_dir: our built dataset folder (``<data_root>/dataset/<name>/nltk``).
        out_dir: our features folder (``<data_root>/features/<name>``).
        cooccurrence: ``"rebuild"`` (from our train split), ``"authors"`` (their file, flagged) or ``"skip"``.
    """
    authors_dir, dataset_dir, out_dir = Path(authors_dir), Path(dataset_dir), Path(out_dir)
    if cooccurrence not in ("rebuild", "authors", "skip"):
        raise ValueError(f"cooccurrence must be rebuild, authors or skip, got {cooccurrence!r}")
    their_e2i_path = authors_dir / "entity2id.json"
    their_e2i = _load_json(their_e2i_path, "the authors' entity ids")
    ids = uv.DatasetIds.load(dataset_dir)
    mapping = uv.entity_ids_by_uri(their_e2i, ids.entity2id)
    report: dict = {"authors_dir": str(authors_dir), "dataset_dir": str(dataset_dir),
                    "entities_joined_on_uri": len(mapping), "their_entities": len(their_e2i)}
    out_dir.mkdir(parents=True, exist_ok=True)
    for modality in modalities:
        path = authors_dir / (TEXT_FILE if modality == "text" else IMAGE_FILE)
        if not path.is_file():
            report[modality] = f"absent: {path}"
            continue
        table = uv.read_vectors(path, dim=AUTHORS_DIM)
        features, missing, coverage = uv.align_to_items(table, mapping.get, ids, what="authors' entity id",
                                                        skip_unknown=True)
        encoder = {"name": f"MSCRS authors' {modality} features",
                   "source": "GPT-4o descriptions encoded by RoBERTa" if modality == "text" else "ViT image features",
                   "file": path.name}
        report[modality] = uv.save_vectors_and_graph(features, missing, coverage, ids, out_dir, modality,
                                                     {"vectors": path, "authors_entity2id": their_e2i_path},
                                                     encoder, k=k)
    if cooccurrence == "authors":
        from crslab_mscrs.graphs import storage

        path = authors_dir / COOCCURRENCE_FILE
        graph = map_authors_cooccurrence(load_authors_cooccurrence(path), mapping, ids.n_entity)
        storage.save_graph(graph, out_dir / "cooccurrence_graph.pt",
                           inputs={"authors_cooccurrence": path, "authors_entity2id": their_e2i_path,
                                   "entity2id": dataset_dir / "entity2id.json",
                                   "item_ids": storage.item_list(ids.item_ids)},
                           parameters={"source": f"authors {COOCCURRENCE_FILE}", "possible_test_leakage": True,
                                       "leakage_note": LEAKAGE_NOTE})
        report["cooccurrence"] = {"source": f"authors {COOCCURRENCE_FILE}", "num_edges": graph.num_edges,
                                  **graph.stats, "warning": LEAKAGE_NOTE}
    elif cooccurrence == "rebuild":
        from crslab_mscrs.features.pipeline import FeaturePipeline

        name = dataset or dataset_dir.parent.name
        root = Path(data_root) if data_root else dataset_dir.parents[2]
        pipeline = FeaturePipeline(name, {"inputs": {"allow_raw_fallback": False}}, data_root=root, out_dir=out_dir)
        report["cooccurrence"] = pipeline.build_graphs(which=("cooccurrence",))["cooccurrence"]
    return report


# --------------------------------------------------------------------------- their dialogues + KG

def _turn_file(authors_dir: Path, split: str, pattern: Optional[str]) -> Path:
    candidates = [pattern] if pattern else list(TURN_FILE_CANDIDATES)
    for candidate in candidates:
        path = authors_dir / candidate.format(split=split)
        if path.is_file():
            return path
    raise FileNotFoundError(f"{authors_dir}: no turn records for split {split!r} (looked for "
                            f"{[c.format(split=split) for c in candidates]})")


def conversations_from_turns(path: Path, id2uri: Dict[int, str], item_set: set) -> List[dict]:
    """Turn records -> conversations of the user format (see module doc for the role rule).

    A record continues the previous conversation when its context starts with the previous
    context plus the previous response; otherwise it starts a new one."""
    conversations: List[dict] = []
    current: Optional[dict] = None
    previous: Optional[List[str]] = None
    for line_no, record in iter_jsonl(path):
        if not isinstance(record, dict) or not {"context", "resp"} <= set(record):
            raise ValueError(f"{path}:{line_no}: expected a turn record with 'context' and 'resp'")
        context = [str(c) for c in record["context"]]
        for key in ("rec", "entity"):
            unknown = [i for i in record.get(key) or [] if int(i) not in id2uri]
            if unknown:
                raise ValueError(f"{path}:{line_no}: key '{key}' names entity ids {unknown[:5]} missing from "
                                 "the folder's entity2id.json")
        if current is None or len(context) < len(previous) or context[:len(previous)] != previous:
            current = {"conv_id": f"{path.stem}-{line_no}", "texts": list(context), "mentions": {}}
            conversations.append(current)
        position = len(context)
        current["texts"] = context + [str(record["resp"])]
        current["mentions"][position] = [id2uri[int(i)] for i in record.get("rec") or []]
        previous = current["texts"]
    out = []
    for conv in conversations:
        messages = []
        for position, text in enumerate(conv["texts"]):
            if position == 0 and text == "":
                continue  # UniCRS's empty first context slot
            mentioned = conv["mentions"].get(position, [])
            message = {"role": "seeker" if position % 2 == 0 else "recommender", "text": text}
            items = [uri for uri in dict.fromkeys(mentioned) if uri in item_set]
            entities = [uri for uri in dict.fromkeys(mentioned) if uri not in item_set]
            if items:
                message["items"] = items
            if entities:
                message["entities"] = entities
            messages.append(message)
        if messages:
            out.append({"conv_id": conv["conv_id"], "messages": messages})
    return out


def authors_folder_to_user_format(authors_dir, out_folder, turns_pattern: Optional[str] = None) -> Path:
    """Write their KG + turn records as a bring-your-own-data folder (items, kg.tsv, entities.txt, splits)."""
    authors_dir, out_folder = Path(authors_dir), Path(out_folder)
    entity2id = _load_json(authors_dir / "entity2id.json", "entity ids")
    relation2id = _load_json(authors_dir / "relation2id.json", "relation ids")
    subkg = _load_json(authors_dir / "dbpedia_subkg.json", "KG")
    item_ids = _load_json(authors_dir / "item_ids.json", "item ids")
    id2uri = {int(i): uri for uri, i in entity2id.items()}
    id2rel = {int(i): rel for rel, i in relation2id.items()}
    subkg = {head: [[int(rel), int(tail)] for rel, tail in edges] for head, edges in subkg.items()}
    unknown_items = [i for i in item_ids if int(i) not in id2uri]
    if unknown_items:
        raise ValueError(f"{authors_dir / 'item_ids.json'}: ids {unknown_items[:5]} are not in entity2id.json")
    item_uris = [id2uri[int(i)] for i in dict.fromkeys(item_ids)]
    splits = {split: conversations_from_turns(_turn_file(authors_dir, split, turns_pattern), id2uri, set(item_uris))
              for split in SPLIT_FILES}
    return write_uri_dataset(out_folder, id2uri, item_uris,
                             named_triples(id2uri, subkg, id2rel, str(authors_dir / "dbpedia_subkg.json")), splits)


def build_dataset_from_authors(authors_dir, data_root, name: str, options=None, turns_pattern=None, echo=True):
    """Their dialogues + KG -> a dataset under ``name`` with exactly their splits (generic builder)."""
    from crslab_mscrs.data.custom import build_custom

    work = Path(tempfile.mkdtemp(prefix="authors_user_format_"))
    try:
        authors_folder_to_user_format(authors_dir, work, turns_pattern)
        note = (f"converted from the MSCRS authors' folder {Path(authors_dir).resolve()} (turn records; roles by "
                "context position parity, as the authors' code)")
        return build_custom(work, data_root, name, options, echo=echo, source_label=str(Path(authors_dir).resolve()),
                            notes=[note])
    finally:
        shutil.rmtree(work, ignore_errors=True)
