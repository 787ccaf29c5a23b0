"""The embedded sample: small, attributed, copied out of the package, loadable by CRSLab."""
import json
import shutil
from pathlib import Path

import pytest

import crslab_mscrs  # noqa: F401  (compat + path redirection first)
from crslab_mscrs import paths
from crslab_mscrs.data.sample import HASH_STAMP, SAMPLE_DIR, sample_data_root, sample_files
from crslab_mscrs.data.sample_builder import MAX_SAMPLE_BYTES
from crslab_mscrs.data.sample_features import SHIPPED_FILES

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LOADER_OPT = {"context_truncate": 64, "response_truncate": 20, "entity_truncate": 16, "word_truncate": 16}


@pytest.fixture
def sample_root(tmp_path):
    """A fresh sample copy as CRSLab's data root for one test."""
    previous = paths.data_root()
    root = sample_data_root(tmp_path / "sample")
    paths.set_data_root(root)
    yield root
    paths.set_data_root(previous)


def test_sample_is_small_attributed_and_has_no_images():
    files = sample_files()
    size = sum((SAMPLE_DIR / f).stat().st_size for f in files)
    assert size <= MAX_SAMPLE_BYTES <= 3.5 * 1024 * 1024
    assert not [f for f in files if f.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"}]
    attribution = (SAMPLE_DIR / "ATTRIBUTION.md").read_text()
    for phrase in ("CC BY 4.0", "CC BY-SA", "INSPIRED", "entity_id_map.json", "NON-LEARNED", "NOT shipped"):
        assert phrase in attribution
    for dataset in ("redial", "inspired"):
        assert (SAMPLE_DIR / "dataset" / dataset / "nltk" / "entity_id_map.json").is_file()
        assert (SAMPLE_DIR / "dataset" / dataset / "nltk" / "item_names.json").is_file()
        shipped = sorted(f.name for f in files if f.parts[:2] == ("features", dataset))
        assert shipped == sorted(SHIPPED_FILES)  # graphs + manifest only: no feature tensors


@pytest.mark.parametrize("dataset", ["redial", "inspired"])
def test_sample_ships_semantic_graphs_the_model_loads(dataset, tmp_path):
    """The copied sample's graphs pass the model's loader and match the sample's own ids and files."""
    import torch

    from crslab_mscrs.features.hashing import sha256_object
    from crslab_mscrs.graphs.storage import StaleArtifactError, load_graph, read_manifest
    from crslab_mscrs.model.graph_files import GRAPH_FILES, check_entity_space, read_graph_file, to_item_space

    root = sample_data_root(tmp_path / "sample")
    data_dir = paths.dataset_dir(dataset, "nltk", root)
    features = paths.features_dir(dataset, root)
    entity2id = json.loads((data_dir / "entity2id.json").read_text())
    item_ids = torch.tensor(sorted(json.loads((data_dir / "movie_ids.json").read_text())))
    n_entity = max(entity2id.values()) + 1
    for key, name in GRAPH_FILES.items():
        graph = check_entity_space(read_graph_file(features / name, key), n_entity)
        assert graph["num_nodes"] == n_entity and graph["edge_index"].shape[1] > 100
        if name != "cooccurrence_graph.pt":
            assert to_item_space(graph, item_ids)["num_nodes"] == len(item_ids)
    # stale detection still works: the recorded inputs are the sample's own files / item ids
    load_graph(features / "cooccurrence_graph.pt", expected_inputs={
        "entity2id": data_dir / "entity2id.json", "train_conversations": data_dir / "train_data.json"})
    manifest = read_manifest(features)
    assert manifest["text_knn_graph.pt"]["inputs"]["features"] == manifest["text_features.pt"]["sha256"]
    assert manifest["text_features.pt"]["inputs"]["item_ids"] == sha256_object(item_ids.tolist())
    (data_dir / "train_data.json").write_text("[]")
    with pytest.raises(StaleArtifactError, match="train_conversations"):
        load_graph(features / "cooccurrence_graph.pt", expected_inputs={
            "train_conversations": data_dir / "train_data.json"})


def test_sample_data_root_copies_once_and_refreshes_when_stale(tmp_path):
    source = tmp_path / "pkg_sample"
    shutil.copytree(SAMPLE_DIR, source)
    for marker in source.rglob(".built"):
        marker.unlink()  # as if the installer dropped dot-files
    dest = sample_data_root(tmp_path / "copy", sample_dir=source)
    assert (dest / "dataset/redial/nltk/.built").read_text().split("\n")[1] == "0.31"
    assert (dest / "dataset/inspired/nltk/.built").read_text().split("\n")[1] == "0.3"
    assert (dest / "model/kgsf/ReDial/.built").read_text().split("\n")[1] == "0.2"
    assert (dest / "model/kgsf/Inspired/.built").read_text().split("\n")[1] == "0.1"
    stamp = (dest / HASH_STAMP).read_text()
    token_file = dest / "dataset/redial/nltk/token2id.json"
    mtime = token_file.stat().st_mtime_ns
    assert sample_data_root(dest, sample_dir=source) == dest and token_file.stat().st_mtime_ns == mtime

    (source / "ATTRIBUTION.md").write_text("changed")
    sample_data_root(dest, sample_dir=source)
    assert (dest / "ATTRIBUTION.md").read_text() == "changed" and (dest / HASH_STAMP).read_text() != stamp

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("x")
    with pytest.raises(FileExistsError):
        sample_data_root(foreign, sample_dir=source)


def _labelled_and_items(dataset):
    labelled = {i for split in ("train", "valid", "test") for s in getattr(dataset, f"{split}_data")
                for i in s["items"]}
    return labelled, set(dataset.side_data["item_entity_ids"])


@pytest.mark.parametrize("name", ["ReDial", "Inspired"])
def test_sample_loads_in_crslab_with_kgsf_model(name, sample_root, no_download):
    import torch
    from crslab.data.dataloader.kgsf import KGSFDataLoader
    from crslab.data.dataset.inspired.inspired import InspiredDataset
    from crslab.data.dataset.redial.redial import ReDialDataset
    from crslab.model.crs.kgsf.kgsf import KGSFModel

    dataset = {"ReDial": ReDialDataset, "Inspired": InspiredDataset}[name]({}, "nltk")
    manifest = json.loads((sample_root / "MANIFEST.json").read_text())
    limits = manifest["slices"][name.lower()]
    built = {s: json.loads((sample_root / f"dataset/{name.lower()}/nltk/{s}_data.json").read_text())
             for s in limits}
    assert {s: len(c) for s, c in built.items()} == limits
    labelled, items = _labelled_and_items(dataset)
    assert len(items) >= 50 and labelled <= items
    assert min(dataset.vocab["entity2id"].values()) == 1  # pad_entity 0 belongs to no entity
    kg = dataset.side_data["entity_kg"]
    assert kg["n_relation"] > 0 and kg["edge"]

    loader = KGSFDataLoader(LOADER_OPT, dataset.train_data, dataset.vocab)
    batch = next(iter(loader.get_rec_data(4, shuffle=False)))
    assert batch[2].shape == (4, dataset.vocab["n_entity"])

    opt = {"dataset": name, "token_emb_dim": 16, "kg_emb_dim": 16, "num_bases": 2, "n_heads": 2,
           "n_layers": 1, "ffn_size": 16, "dropout": 0.0, "attention_dropout": 0.0, "relu_dropout": 0.0,
           "learn_positional_embeddings": True, "embeddings_scale": True, "reduction": False,
           "n_positions": 128, "response_truncate": 20}
    model = KGSFModel(opt, torch.device("cpu"), dataset.vocab, dataset.side_data)
    assert model.copy_mask.shape == (dataset.vocab["vocab_size"],)


@pytest.mark.realdata
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data not found at {SHARED}")
@pytest.mark.parametrize("name", ["redial", "inspired"])
def test_sample_entity_id_map_points_at_original_ids(name):
    folder = SAMPLE_DIR / "dataset" / name / "nltk"
    sample_ids = json.loads((folder / "entity2id.json").read_text())
    id_map = {int(k): v for k, v in json.loads((folder / "entity_id_map.json").read_text()).items()}
    original = json.loads((SHARED / name / "kg" / "entity2id.json").read_text())
    assert len(id_map) == len(sample_ids)
    assert all(id_map[idx] == original[uri] for uri, idx in sample_ids.items())
