"""Your own item embeddings (docs/own_data.md, path 2): vectors -> features + kNN graph, with errors
and the stale-input check; the MSCRS authors' folder (path 1) in their formats, made here."""
import json

import numpy as np
import pytest
import torch

import crslab_mscrs  # noqa: F401
from crslab_mscrs.data.authors_import import (LEAKAGE_NOTE, build_dataset_from_authors, import_authors_features,
                                              load_authors_cooccurrence)
from crslab_mscrs.data.custom import build_custom, custom_dataset_dir
from crslab_mscrs.features.user_vectors import VectorFormatError, check_user_vectors, import_user_vectors
from crslab_mscrs.graphs.storage import StaleArtifactError, load_graph
from crslab_mscrs.model.graph_files import read_graph_file, to_item_space

from test_own_data_dataset import OPTIONS, tiny_dataset


@pytest.fixture
def built(tmp_path):
    build_custom(tiny_dataset(tmp_path / "src"), tmp_path / "root", "VecShop", OPTIONS, echo=False)
    return custom_dataset_dir(tmp_path / "root", "VecShop")


def _vectors(n, dim=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def test_json_vectors_by_item_id_become_a_knn_graph_the_model_reads(built, tmp_path):
    vectors = _vectors(8)  # items m0..m7: m8 has no vector
    path = tmp_path / "emb.json"
    path.write_text(json.dumps({f"m{i}": vectors[i].tolist() for i in range(8)}))
    out = tmp_path / "features"
    report = import_user_vectors(path, built, out, "text", key="item_id", k=3)
    assert report["coverage"]["items_matched"] == 8 and report["coverage"]["items_without_vector"] == 1
    assert report["coverage"]["items_without_vector_examples"] == ["item:m8"]
    graph = read_graph_file(out / "text_knn_graph.pt", "use_text_graph")
    item_ids = torch.tensor(json.loads((built / "movie_ids.json").read_text()))
    local = to_item_space(graph, item_ids)
    assert local["edge_index"].numel() and 8 not in local["edge_index"].unique().tolist()  # m8 is isolated
    features = torch.load(out / "text_features.pt", weights_only=True)
    assert features["missing_mask"].tolist() == [False] * 8 + [True]
    assert torch.allclose(features["features"][2], torch.from_numpy(vectors[2]))
    check_user_vectors(out, "text")  # inputs unchanged: accepted

    path.write_text(json.dumps({f"m{i}": (vectors[i] + 1).tolist() for i in range(8)}))
    with pytest.raises(StaleArtifactError, match="input 'vectors' changed"):
        check_user_vectors(out, "text")


def test_npy_with_ids_by_uri_and_entity_id(built, tmp_path):
    entity2id = json.loads((built / "entity2id.json").read_text())
    np.save(tmp_path / "img.npy", _vectors(3))
    (tmp_path / "ids.txt").write_text("item:m0\nitem:m4\nitem:m5\n")
    report = import_user_vectors(tmp_path / "img.npy", built, tmp_path / "f", "image", key="uri",
                                 ids_file=tmp_path / "ids.txt", k=2)
    assert report["coverage"]["items_matched"] == 3
    (tmp_path / "ids.json").write_text(json.dumps([entity2id["item:m0"], entity2id["item:m1"], entity2id["item:m2"]]))
    report = import_user_vectors(tmp_path / "img.npy", built, tmp_path / "f", "image", key="entity_id",
                                 ids_file=tmp_path / "ids.json", k=2)
    assert report["graph_edges"] > 0 and load_graph(tmp_path / "f" / "image_knn_graph.pt").num_nodes == \
        max(entity2id.values()) + 1


@pytest.mark.parametrize("content, ids, key, message", [
    ({"m0": [1.0, 2.0], "m1": [1.0]}, None, "item_id", r"emb.json\['m1'\]: vector of size 1, the first one has 2"),
    ({"m0": [1.0, 2.0], "zz": [1.0, 0.5]}, None, "item_id", r"emb.json\['zz'\]: item_id 'zz' is not in the dataset"),
    ({"genre:Comedy": [1.0, 2.0]}, None, "uri", r"uri 'genre:Comedy' is entity \d+, not an item"),
    ({"m0": [0.0, 0.0]}, None, "item_id", r"emb.json\['m0'\]: vector is zero or not finite"),
    (np.ones((2, 2)), ["item:m0"], "uri", r"ids.txt: 1 ids for the 2 rows"),
    (np.ones((2, 2)), ["item:m0", "item:nope"], "uri", r"ids.txt:2: uri 'item:nope' is not in the dataset"),
])
def test_bad_vectors_name_file_and_key(built, tmp_path, content, ids, key, message):
    if isinstance(content, dict):
        path = tmp_path / "emb.json"
        path.write_text(json.dumps(content))
        ids_file = None
    else:
        path, ids_file = tmp_path / "emb.npy", tmp_path / "ids.txt"
        np.save(path, content)
        ids_file.write_text("".join(f"{i}\n" for i in ids))
    with pytest.raises(VectorFormatError, match=message):
        import_user_vectors(path, built, tmp_path / "f", "text", key=key, ids_file=ids_file)
    assert not (tmp_path / "f" / "text_knn_graph.pt").exists()


# ------------------------------------------------------------------ the authors' folder (path 1)

RAN = []


def _run_on_load():
    RAN.append(True)


class CodeOnLoad:
    """Pickles to a call of ``_run_on_load``: what a full unpickle would execute."""

    def __reduce__(self):
        return _run_on_load, ()


def authors_folder(folder, our_entity2id):
    """A tiny folder in the MSCRS authors' formats, in THEIR id space (shuffled against ours)."""
    folder.mkdir()
    uris = sorted(our_entity2id, key=lambda u: -our_entity2id[u])  # reversed order: other ids
    uris.append("<http://dbpedia.org/resource/Only_Theirs>")
    their = {uri: i for i, uri in enumerate(uris)}
    (folder / "entity2id.json").write_text(json.dumps(their))
    items = [their[f"item:m{i}"] for i in range(9)] + [their["<http://dbpedia.org/resource/Only_Theirs>"]]
    (folder / "item_ids.json").write_text(json.dumps(items))
    rng = np.random.default_rng(1)
    text = {str(their[f"item:m{i}"]): rng.normal(size=768).tolist() for i in range(7)}  # m7, m8: no vector
    text[str(their["<http://dbpedia.org/resource/Only_Theirs>"])] = rng.normal(size=768).tolist()
    (folder / "id_embeddings_text.json").write_text(json.dumps(text))
    torch.save(torch.tensor([[their["item:m0"], their["item:m1"], their["item:m0"]],
                             [their["item:m1"], their["item:m0"], their["<http://dbpedia.org/resource/Only_Theirs>"]]]),
               folder / "edge_index_c.pt")
    (folder / "relation2id.json").write_text(json.dumps({"genre": 0, "self_loop": 1}))
    (folder / "dbpedia_subkg.json").write_text(json.dumps(
        {str(their["item:m0"]): [[0, their["genre:Comedy"]], [1, their["item:m0"]]],
         str(their["item:m1"]): [[0, their["genre:Drama"]]]}))
    for split, start in (("train", 0), ("valid", 4), ("test", 6)):
        rows = []
        for c in range(start, start + (4 if split == "train" else 2)):
            a, b = their[f"item:m{c % 9}"], their[f"item:m{(c + 1) % 9}"]
            turns = [("hello there, any ghost stories?", []), (f"try film {c}, a spooky mansion", [a]),
                     ("spooky mansion sounds great, i saw ghost stories", [b, their["genre:Comedy"]])]
            context = [""]
            for resp, rec in turns:
                rows.append({"context": list(context), "resp": resp, "rec": rec, "entity": []})
                context.append(resp)
        (folder / f"{split}_data_processed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return their


def test_authors_vectors_are_joined_on_uris_with_coverage(built, tmp_path):
    ours = json.loads((built / "entity2id.json").read_text())
    authors = tmp_path / "authors"
    authors_folder(authors, ours)
    out = tmp_path / "features"
    report = import_authors_features(authors, built, out, k=3)
    text = report["text"]["coverage"]
    assert text["dim"] == 768 and text["items_matched"] == 7 and text["items_without_vector"] == 2
    assert text["keys_not_in_dataset"] == 1  # their Only_Theirs item
    assert report["image"].startswith("absent")
    assert report["cooccurrence"]["source"] == "crslab-train"  # rebuilt from OUR train split by default
    features = torch.load(out / "text_features.pt", weights_only=True)
    their = json.loads((authors / "entity2id.json").read_text())
    vectors = json.loads((authors / "id_embeddings_text.json").read_text())
    row = features["item_ids"].tolist().index(ours["item:m3"])
    assert torch.allclose(features["features"][row], torch.tensor(vectors[str(their["item:m3"])]))
    check_user_vectors(out, "text")


def test_authors_cooccurrence_only_on_request_flagged_and_never_unpickled(built, tmp_path, caplog):
    ours = json.loads((built / "entity2id.json").read_text())
    authors = tmp_path / "authors"
    authors_folder(authors, ours)
    out = tmp_path / "features"
    report = import_authors_features(authors, built, out, cooccurrence="authors", modalities=())
    assert report["cooccurrence"]["possible_test_leakage"] is True
    assert report["cooccurrence"]["edges_dropped_unmapped"] == 1 and report["cooccurrence"]["num_edges"] == 2
    from loguru import logger

    messages = []
    handler = logger.add(lambda m: messages.append(str(m)), level="WARNING")
    try:
        graph = load_graph(out / "cooccurrence_graph.pt")
    finally:
        logger.remove(handler)
    assert sorted(graph.edge_index.t().tolist()) == sorted([[ours["item:m0"], ours["item:m1"]],
                                                            [ours["item:m1"], ours["item:m0"]]])
    assert any(LEAKAGE_NOTE in m for m in messages)

    torch.save({"edge_index_c": CodeOnLoad()}, authors / "edge_index_c.pt")
    with pytest.raises(ValueError, match="weights_only=True"):
        load_authors_cooccurrence(authors / "edge_index_c.pt")
    assert not RAN  # the file's code was never executed


def test_a_dataset_with_exactly_the_authors_splits(built, tmp_path):
    ours = json.loads((built / "entity2id.json").read_text())
    authors = tmp_path / "authors"
    their = authors_folder(authors, ours)
    report = build_dataset_from_authors(authors, tmp_path / "root2", "AuthorsTiny", OPTIONS, echo=False)
    assert [report.splits[s].conversations for s in ("train", "valid", "test")] == [4, 2, 2]
    out = custom_dataset_dir(tmp_path / "root2", "AuthorsTiny")
    train = json.loads((out / "train_data.json").read_text())
    first = train[0]["dialog"]
    assert [u["role"] for u in first] == ["Recommender", "Seeker", "Recommender"]  # context parity, as theirs
    assert first[1]["movies"] == ["item:m0"] and first[2]["movies"] == ["item:m1"]
    assert first[2]["entity"] == ["genre:Comedy"]
    entity2id = json.loads((out / "entity2id.json").read_text())
    assert set(entity2id) == set(their)
    kg = (out / "dbpedia_subkg.txt").read_text().splitlines()
    assert sorted(kg) == ["item:m0\tgenre\tgenre:Comedy", "item:m1\tgenre\tgenre:Drama"]  # self loop left out
    assert any("MSCRS authors' folder" in note for note in report.notes)


def test_the_documented_scripts(built, tmp_path, capsys):
    """data_prep/item_embeddings.py and data_prep/import_authors.py as docs/own_data.md runs them."""
    import importlib.util
    from pathlib import Path

    def script(name):
        spec = importlib.util.spec_from_file_location(f"data_prep_{name}",
                                                      Path(__file__).resolve().parents[1] / "data_prep" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    root = tmp_path / "root"
    (tmp_path / "emb.json").write_text(json.dumps({f"m{i}": _vectors(9)[i].tolist() for i in range(9)}))
    embeddings = script("item_embeddings")
    assert embeddings.main(["--dataset", "VecShop", "--modality", "image", "--vectors", str(tmp_path / "emb.json"),
                            "--key", "item_id", "--k", "3", "--data-root", str(root)]) == 0
    assert (root / "features/vecshop/image_knn_graph.pt").is_file()
    assert embeddings.main(["--dataset", "VecShop", "--modality", "image", "--check", "--data-root", str(root)]) == 0
    (tmp_path / "emb.json").write_text(json.dumps({"m0": [1.0, 2.0], "m1": [3.0]}))
    assert embeddings.main(["--dataset", "VecShop", "--modality", "image", "--vectors", str(tmp_path / "emb.json"),
                            "--key", "item_id", "--data-root", str(root)]) == 2
    assert "emb.json['m1']: vector of size 1" in capsys.readouterr().err

    authors = tmp_path / "authors"
    authors_folder(authors, json.loads((built / "entity2id.json").read_text()))
    importer = script("import_authors")
    assert importer.main(["features", "--authors-dir", str(authors), "--dataset", "VecShop", "--k", "3",
                          "--cooccurrence", "authors", "--data-root", str(root)]) == 0
    captured = capsys.readouterr()
    assert '"items_matched": 7' in captured.out and "WARNING: co-occurrence graph imported" in captured.err
    assert importer.main(["dataset", "--authors-dir", str(authors), "--name", "FromAuthors",
                          "--word-min-pair-count", "1", "--data-root", str(root)]) == 0
    assert (root / "dataset/fromauthors/nltk/.built").is_file()
