"""Saving and loading graphs and item features, with a manifest that detects stale files.

Files (in ``<data_root>/features/<dataset>/``, see :func:`crslab_mscrs.paths.features_dir`):

- graphs ``{cooccurrence,text_knn,image_knn}_graph.pt``: ``{"edge_index": IntTensor[2, E],
  "edge_weight": FloatTensor[E], "num_nodes": int}`` in the ENTITY id space
  (``num_nodes = n_entity``), loadable with ``torch.load(path, weights_only=True)``; the
  index is int32 when ``num_nodes`` fits (int64 otherwise and in older files), and
  :func:`load_graph` gives int64;
- ``text_features.pt``: ``{"item_ids": LongTensor[N], "features": FloatTensor[N, d]}``;
- ``image_features.pt``: the same plus ``"missing_mask": BoolTensor[N]``;
- ``manifest.json``: one entry per file name with ``sha256`` of the file, ``kind``,
  ``parameters``, ``encoder``, ``counts`` and ``inputs`` (sha256 of every input the file
  was computed from, see :mod:`crslab_mscrs.features.hashing`).

``load_graph(path, expected_inputs=...)`` / ``load_features`` recompute the input hashes
and raise :class:`StaleArtifactError` naming what changed (or only warn with
``on_stale="warn"``); they also refuse a file whose bytes no longer match the manifest.

Graphs record the fingerprints of the dataset they were built from (:data:`DATASET_INPUTS`:
the train split file, ``entity2id.json`` and the item list); ``load_graph(path,
dataset_dir=..., item_ids=...)`` checks them against the dataset a model trains on
(:func:`check_dataset_inputs`), so a graph built from other train conversations is refused
even when the graph file itself is intact.
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Mapping, Optional

import torch
from loguru import logger

from crslab_mscrs.atomic_files import replacing
from crslab_mscrs.features.hashing import compare_hashes, hash_inputs, sha256_file
from crslab_mscrs.graphs.cooccurrence import Graph, index_dtype

MANIFEST_NAME = "manifest.json"


class StaleArtifactError(RuntimeError):
    """A saved graph/feature file does not match its manifest or its current inputs."""


def _atomic_torch_save(obj, path: Path) -> None:
    with replacing(path) as tmp:
        torch.save(obj, tmp)


def read_manifest(folder) -> dict:
    """The folder's manifest (``{}`` when absent)."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def update_manifest(folder, file_name: str, entry: dict) -> None:
    """Set ``manifest[file_name] = entry`` (atomic rewrite of manifest.json)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    manifest[file_name] = entry
    with replacing(folder / MANIFEST_NAME) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True, ensure_ascii=False)


def _entry(path: Path, kind: str, inputs: Optional[Mapping], parameters: Optional[dict], encoder: Optional[dict],
           counts: Optional[dict]) -> dict:
    return {"file": path.name, "kind": kind, "sha256": sha256_file(path),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "inputs": hash_inputs(inputs or {}), "parameters": parameters or {}, "encoder": encoder or {},
            "counts": counts or {}}


def check_artifact(path, expected_inputs: Optional[Mapping] = None, on_stale: str = "raise") -> dict:
    """Validate ``path`` against its manifest entry; return the entry.

    Problems: no manifest entry, file bytes changed since it was saved, or any input in
    ``expected_inputs`` (name -> path or object) hashing differently from when it was built.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    entry = read_manifest(path.parent).get(path.name)
    problems = []
    if entry is None:
        problems.append(f"no entry for {path.name} in {path.parent / MANIFEST_NAME}")
    else:
        if entry.get("sha256") != sha256_file(path):
            problems.append(f"{path.name} was modified after its manifest entry was written")
        if expected_inputs:
            problems += compare_hashes(entry.get("inputs", {}), hash_inputs(expected_inputs))
    if problems:
        message = f"stale or unverifiable artefact {path}: " + "; ".join(problems) + \
                  " -- rebuild it (data_prep/features.py)"
        if on_stale == "raise":
            raise StaleArtifactError(message)
        logger.warning(message)
    return entry or {}


# --------------------------------------------------------------------------- dataset inputs

#: graph inputs that come from the built dataset folder (checked at model load)
DATASET_INPUTS = ("train_conversations", "entity2id", "item_ids")


def item_list(item_ids) -> list:
    """The canonical form of an item list in a manifest: sorted unique int entity ids."""
    return sorted({int(i) for i in item_ids})


def dataset_inputs(dataset_dir, item_ids=None) -> dict:
    """:data:`DATASET_INPUTS` of a built dataset folder (files that exist there, and the items)."""
    folder = Path(dataset_dir)
    inputs = {name: folder / file for name, file in (("train_conversations", "train_data.json"),
                                                      ("entity2id", "entity2id.json")) if (folder / file).is_file()}
    if item_ids is not None:
        inputs["item_ids"] = item_list(item_ids)
    return inputs


def check_dataset_inputs(path, entry: dict, dataset_dir, item_ids=None) -> None:
    """Raise :class:`StaleArtifactError` when graph ``path`` recorded other dataset inputs than
    ``dataset_dir`` (and ``item_ids``) has; the message names the graph, the input and the
    command that rebuilds it. Inputs the entry did not record (older files) are not checked."""
    recorded = entry.get("inputs", {})
    expected = {name: value for name, value in dataset_inputs(dataset_dir, item_ids).items() if name in recorded}
    problems = compare_hashes(recorded, hash_inputs(expected))
    if problems:
        folder = Path(dataset_dir)
        root, name = folder.parents[2] if len(folder.parents) > 2 else folder, folder.parent.name
        command = ("python data_prep/build_sample.py" if root.name == "sample" else
                   f"python data_prep/features.py all --dataset {name} --data-root {root}")
        raise StaleArtifactError(f"graph {path} was built from another dataset than {folder}: "
                                 + "; ".join(problems) + f" -- rebuild it: {command}")


# --------------------------------------------------------------------------- graphs

def save_graph(graph: Graph, path, inputs: Optional[Mapping] = None, parameters: Optional[dict] = None,
               encoder: Optional[dict] = None) -> dict:
    """Save ``graph`` and record its manifest entry (returned)."""
    path = Path(path)
    index = graph.edge_index  # int32 when the ids fit (half the file and no int64 copy), else int64
    index = index.to(index_dtype(graph.num_nodes))
    _atomic_torch_save({"edge_index": index.contiguous(),
                        "edge_weight": graph.edge_weight.float().contiguous(),
                        "num_nodes": int(graph.num_nodes)}, path)
    counts = {"num_nodes": int(graph.num_nodes), "num_edges": graph.num_edges, **graph.stats}
    entry = _entry(path, "graph", inputs, parameters, encoder, counts)
    update_manifest(path.parent, path.name, entry)
    return entry


def load_graph(path, expected_inputs: Optional[Mapping] = None, on_stale: str = "raise",
               dataset_dir=None, item_ids=None) -> Graph:
    """Load a graph saved by :func:`save_graph`, checking its manifest first and, with
    ``dataset_dir``, the dataset it was built from (:func:`check_dataset_inputs`)."""
    entry = check_artifact(path, expected_inputs, on_stale)
    if dataset_dir is not None:
        check_dataset_inputs(path, entry, dataset_dir, item_ids)
    if entry.get("parameters", {}).get("possible_test_leakage"):  # docs/own_data.md (authors' co-occurrence)
        logger.warning(f"{path}: {entry['parameters'].get('leakage_note', 'may have been built from test labels')}")
    data = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("edge_index", "edge_weight", "num_nodes"):
        if key not in data:
            raise ValueError(f"{path}: missing key {key!r}")
    return Graph(data["edge_index"].long(), data["edge_weight"], int(data["num_nodes"]), entry.get("counts", {}))


# --------------------------------------------------------------------------- features

def save_features(path, item_ids, features: torch.Tensor, missing_mask: Optional[torch.Tensor] = None,
                  inputs: Optional[Mapping] = None, parameters: Optional[dict] = None,
                  encoder: Optional[dict] = None, counts: Optional[dict] = None) -> dict:
    """Save ``{item_ids, features[, missing_mask]}`` and its manifest entry."""
    path = Path(path)
    item_ids = torch.as_tensor(list(item_ids), dtype=torch.long)
    if features.shape[0] != len(item_ids):
        raise ValueError(f"{len(item_ids)} item ids but {features.shape[0]} feature rows")
    payload = {"item_ids": item_ids, "features": features.float().contiguous()}
    if missing_mask is not None:
        payload["missing_mask"] = missing_mask.bool().contiguous()
    _atomic_torch_save(payload, path)
    counts = {"items": len(item_ids), "dim": int(features.shape[1]) if features.dim() == 2 else 0,
              **({"missing": int(missing_mask.sum())} if missing_mask is not None else {}), **(counts or {})}
    entry = _entry(path, "features", inputs, parameters, encoder, counts)
    update_manifest(path.parent, path.name, entry)
    return entry


def load_features(path, expected_inputs: Optional[Mapping] = None, on_stale: str = "raise") -> dict:
    """Load a features file (dict of tensors) after checking its manifest."""
    check_artifact(path, expected_inputs, on_stale)
    data = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("item_ids", "features"):
        if key not in data:
            raise ValueError(f"{path}: missing key {key!r}")
    return data
