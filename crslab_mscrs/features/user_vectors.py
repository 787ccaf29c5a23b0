"""Item vectors computed elsewhere (your own text or image encoder) -> MSCRS's text / image kNN graph.

Input (docs/own_data.md, "Your own item embeddings"), one of

* a JSON object ``{"<key>": [float, ...], ...}``;
* a ``.npy`` matrix ``[N, d]`` plus an ids file: ``.json`` list of N keys or ``.txt``
  with one key per line (row i of the matrix belongs to key i).

Keys are, by ``key`` kind: ``item_id`` (the catalogue ids of a user dataset,
``item_id_map.json`` of the built folder), ``entity_id`` (the built dataset's integer
entity ids) or ``uri`` (the keys of its ``entity2id.json``, e.g. DBpedia URIs).

Every vector must have the same size, be finite and non-zero, and name an item of the
built dataset (``movie_ids.json``); any violation is an error naming the file and the line
(``.txt`` ids / ``.json`` list position) or the key. Items without a vector are kept with
``missing_mask`` set, so the kNN graph leaves them out (:mod:`crslab_mscrs.graphs.knn`), and
are counted in the coverage report. Outputs (:mod:`crslab_mscrs.graphs.storage`, with
manifest entries recording the sha256 of every input): ``<modality>_features.pt`` and
``<modality>_knn_graph.pt`` in the dataset's features folder; :func:`check_user_vectors`
refuses them once any input changed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional

import numpy as np
import torch

from crslab_mscrs.graphs import storage

KEY_KINDS = ("item_id", "entity_id", "uri")
MODALITIES = ("text", "image")


class VectorFormatError(ValueError):
    """An embeddings file breaks the format; the message names the file and line or key."""


@dataclass
class VectorTable:
    keys: List[str]
    vectors: np.ndarray            # [N, d] float32
    where: List[str]               # per row: "FILE:LINE" or "FILE[key]"
    files: List[Path]              # the files read (recorded as inputs)


def read_vectors(path, ids_path=None, dim: Optional[int] = None) -> VectorTable:
    """Read a JSON object or a ``.npy`` matrix + ids file (see module doc); ``dim`` checks the size."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    if path.suffix == ".npy":
        if ids_path is None:
            raise VectorFormatError(f"{path}: a .npy matrix needs an ids file (.json list or .txt, one key a line)")
        matrix = np.load(path, allow_pickle=False)
        if matrix.ndim != 2:
            raise VectorFormatError(f"{path}: expected a [N, d] matrix, got shape {matrix.shape}")
        keys, where = _read_ids(Path(ids_path))
        if len(keys) != matrix.shape[0]:
            raise VectorFormatError(f"{ids_path}: {len(keys)} ids for the {matrix.shape[0]} rows of {path}")
        table = VectorTable(keys, matrix.astype(np.float32), where, [path, Path(ids_path)])
    else:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise VectorFormatError(f"{path}:{err.lineno}: malformed JSON ({err.msg})") from None
        if not isinstance(data, dict) or not data:
            raise VectorFormatError(f"{path}: expected a non-empty JSON object {{key: [float, ...]}}")
        keys, rows, where = [], [], []
        width = None
        for key, vector in data.items():
            if not isinstance(vector, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                       for v in vector):
                raise VectorFormatError(f"{path}[{key!r}]: expected a list of numbers")
            if width is None:
                width = len(vector)
            elif len(vector) != width:
                raise VectorFormatError(f"{path}[{key!r}]: vector of size {len(vector)}, the first one has {width}")
            keys.append(str(key))
            rows.append(vector)
            where.append(f"{path}[{key!r}]")
        table = VectorTable(keys, np.asarray(rows, dtype=np.float32), where, [path])
    if dim is not None and table.vectors.shape[1] != dim:
        raise VectorFormatError(f"{table.where[0]}: vectors of size {table.vectors.shape[1]}, expected {dim}")
    bad = ~np.isfinite(table.vectors).all(axis=1) | ~np.any(table.vectors != 0, axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise VectorFormatError(f"{table.where[first]}: vector is zero or not finite ({int(bad.sum())} such rows)")
    return table


def _read_ids(ids_path: Path):
    if not ids_path.is_file():
        raise FileNotFoundError(f"{ids_path}: not found")
    if ids_path.suffix == ".json":
        ids = json.loads(ids_path.read_text(encoding="utf-8"))
        if not isinstance(ids, list):
            raise VectorFormatError(f"{ids_path}: expected a JSON list of keys")
        return [str(i) for i in ids], [f"{ids_path}[{n}]" for n in range(len(ids))]
    keys, where = [], []
    for line_no, line in enumerate(ids_path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            keys.append(line.strip())
            where.append(f"{ids_path}:{line_no}")
    return keys, where


@dataclass
class DatasetIds:
    """The id spaces of a built dataset folder."""
    directory: Path
    entity2id: Dict[str, int]
    item_ids: List[int]
    item_id_map: Dict[str, int] = field(default_factory=dict)   # user datasets only

    @classmethod
    def load(cls, directory) -> "DatasetIds":
        directory = Path(directory)
        for name in ("entity2id.json", "movie_ids.json"):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"{directory / name}: not found (build the dataset first)")
        item_map = directory / "item_id_map.json"
        return cls(directory, json.loads((directory / "entity2id.json").read_text(encoding="utf-8")),
                   json.loads((directory / "movie_ids.json").read_text(encoding="utf-8")),
                   json.loads(item_map.read_text(encoding="utf-8")) if item_map.is_file() else {})

    @property
    def n_entity(self) -> int:
        return max(self.entity2id.values()) + 1

    def resolver(self, key: str) -> Callable[[str], Optional[int]]:
        """Key -> entity id (``None`` when unknown) for a key kind of :data:`KEY_KINDS`."""
        if key == "item_id":
            if not self.item_id_map:
                raise ValueError(f"{self.directory}: no item_id_map.json (not a user dataset): use key uri or entity_id")
            return self.item_id_map.get
        if key == "uri":
            return self.entity2id.get
        if key == "entity_id":
            known = set(self.entity2id.values())
            return lambda k: int(k) if k.lstrip("-").isdigit() and int(k) in known else None
        raise ValueError(f"key must be one of {KEY_KINDS}, got {key!r}")


def align_to_items(table: VectorTable, entity_of: Callable[[str], Optional[int]], ids: DatasetIds,
                   what: str = "key", skip_unknown: bool = False) -> tuple:
    """``(features [n_items, d], missing_mask [n_items], coverage)`` in ``movie_ids`` order.

    Unknown keys and keys of non-items raise (or, with ``skip_unknown``, are counted)."""
    items = list(ids.item_ids)
    position = {entity: i for i, entity in enumerate(items)}
    features = np.zeros((len(items), table.vectors.shape[1]), dtype=np.float32)
    missing = np.ones(len(items), dtype=bool)
    taken: Dict[int, str] = {}
    unknown, not_items = [], []
    for key, vector, where in zip(table.keys, table.vectors, table.where):
        entity = entity_of(key)
        if entity is None:
            if not skip_unknown:
                raise VectorFormatError(f"{where}: {what} {key!r} is not in the dataset {ids.directory}")
            unknown.append(key)
            continue
        if entity not in position:
            if not skip_unknown:
                raise VectorFormatError(f"{where}: {what} {key!r} is entity {entity}, not an item of "
                                        f"{ids.directory / 'movie_ids.json'}")
            not_items.append(key)
            continue
        if entity in taken:
            raise VectorFormatError(f"{where}: {what} {key!r} maps to entity {entity}, already given by {taken[entity]}")
        taken[entity] = where
        features[position[entity]] = vector
        missing[position[entity]] = False
    id2entity = {i: e for e, i in ids.entity2id.items()}
    absent = [id2entity.get(items[i], items[i]) for i in np.flatnonzero(missing)]
    coverage = {"vectors_read": len(table.keys), "dim": int(table.vectors.shape[1]), "items": len(items),
                "items_matched": int((~missing).sum()), "items_without_vector": int(missing.sum()),
                "items_without_vector_examples": absent[:10],
                "keys_not_in_dataset": len(unknown), "keys_not_in_dataset_examples": unknown[:10],
                "keys_not_items": len(not_items), "keys_not_items_examples": not_items[:10]}
    if not (~missing).any():
        raise VectorFormatError(f"{table.where[0]}: no vector matches an item of {ids.directory}")
    return torch.from_numpy(features), torch.from_numpy(missing), coverage


def save_vectors_and_graph(features: torch.Tensor, missing: torch.Tensor, coverage: dict, ids: DatasetIds,
                           out_dir, modality: str, inputs: Mapping, encoder: dict, k: int = 20,
                           block_memory_mb: float = 256.0, method: str = "auto") -> dict:
    """Write ``<modality>_features.pt`` and its kNN graph ``<modality>_knn_graph.pt``; returns a report."""
    from crslab_mscrs.graphs.knn import build_knn_graph

    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    out_dir = Path(out_dir)
    feat_path = out_dir / f"{modality}_features.pt"
    # the graph is computed before anything is written: a failure leaves the previous pair untouched
    graph = build_knn_graph(features, ids.item_ids, ids.n_entity, k, missing_mask=missing,
                            block_memory_mb=block_memory_mb, method=method, show_progress=False)
    recorded = {name: str(value) if isinstance(value, Path) else value for name, value in inputs.items()}
    storage.save_features(feat_path, ids.item_ids, features, missing,
                          inputs={**inputs, "entity2id": ids.directory / "entity2id.json",
                                  "item_ids": ids.directory / "movie_ids.json"},
                          parameters={"source_files": recorded, "dataset_dir": str(ids.directory)},
                          encoder=encoder, counts=coverage)
    graph_path = out_dir / f"{modality}_knn_graph.pt"
    storage.save_graph(graph, graph_path,  # dataset inputs: checked against the trained dataset at model load
                       inputs={"features": feat_path, "item_ids": storage.item_list(ids.item_ids),
                               "entity2id": ids.directory / "entity2id.json"},
                       parameters={"k": k, "weight": "cosine", "min_similarity": 0.0,
                                   **{key: graph.stats[key] for key in ("method", "nprobe", "nlist", "cells")}},
                       encoder=encoder)
    return {"features": str(feat_path), "graph": str(graph_path), "coverage": coverage,
            "graph_edges": graph.num_edges, "items_in_graph": graph.stats.get("items_used")}


def import_user_vectors(vectors, dataset_dir, out_dir, modality: str, key: str, ids_file=None,
                        dim: Optional[int] = None, k: int = 20, encoder_name: str = "user-supplied") -> dict:
    """Path 2 of docs/own_data.md: read, align and save user vectors as features + kNN graph."""
    table = read_vectors(vectors, ids_file, dim)
    ids = DatasetIds.load(dataset_dir)
    features, missing, coverage = align_to_items(table, ids.resolver(key), ids, what=key)
    inputs = {"vectors": table.files[0], **({"ids": table.files[1]} if len(table.files) > 1 else {})}
    encoder = {"name": encoder_name, "source": "user-supplied vectors", "key": key}
    return save_vectors_and_graph(features, missing, coverage, ids, out_dir, modality, inputs, encoder, k=k)


def check_user_vectors(out_dir, modality: str) -> dict:
    """Refuse (``StaleArtifactError``) features or a graph whose inputs changed since they were built."""
    out_dir = Path(out_dir)
    feat_path, graph_path = out_dir / f"{modality}_features.pt", out_dir / f"{modality}_knn_graph.pt"
    entry = storage.read_manifest(out_dir).get(feat_path.name)
    if entry is None:
        raise FileNotFoundError(f"{out_dir / storage.MANIFEST_NAME}: no entry for {feat_path.name}")
    params = entry.get("parameters", {})
    if "source_files" not in params:
        raise ValueError(f"{feat_path} was not made from user vectors (encoder "
                         f"{entry.get('encoder', {}).get('name') or entry.get('encoder', {}).get('model')}); "
                         "the feature pipeline checks its own files (data_prep/features.py)")
    dataset_dir = Path(params.get("dataset_dir", ""))
    expected = {name: Path(p) for name, p in params.get("source_files", {}).items()}
    expected.update({"entity2id": dataset_dir / "entity2id.json", "item_ids": dataset_dir / "movie_ids.json"})
    missing = [str(p) for p in expected.values() if not Path(p).is_file()]
    if missing:
        raise storage.StaleArtifactError(f"{feat_path}: input file(s) {missing} no longer exist")
    storage.load_features(feat_path, expected_inputs=expected)
    storage.load_graph(graph_path, expected_inputs={"features": feat_path})
    return entry


def entity_ids_by_uri(their_entity2id: Mapping[str, int], ours: Mapping[str, int]) -> Dict[str, int]:
    """Their entity id (as str) -> our entity id, joined on the URI (the authors' importer)."""
    return {str(idx): ours[uri] for uri, idx in their_entity2id.items() if uri in ours}


__all__ = ["KEY_KINDS", "MODALITIES", "VectorFormatError", "VectorTable", "DatasetIds", "read_vectors",
           "align_to_items", "save_vectors_and_graph", "import_user_vectors", "check_user_vectors",
           "entity_ids_by_uri"]

