"""A semantic graph built from another dataset than the one trained on is refused (issue 16, item 5).

Graphs record the fingerprints of the dataset they were built from (train split file,
entity2id, item list); the model checks them against the dataset it trains on.
"""
import json

import pytest
import torch

from crslab_mscrs import paths
from crslab_mscrs.graphs.cooccurrence import Graph
from crslab_mscrs.graphs.storage import StaleArtifactError, dataset_inputs, read_manifest, save_graph
from crslab_mscrs.model.graph_files import GRAPH_FILES, read_graph_file
from crslab_mscrs.model.tiny import TINY_ITEM_IDS, tiny_graphs, tiny_opt, tiny_side_data, tiny_vocab


@pytest.fixture
def tiny_dataset(tmp_path):
    """``<root>/dataset/tiny/nltk`` with a train split and entity2id, and graphs built from it."""
    root = tmp_path / "data"
    dataset = root / "dataset" / "tiny" / "nltk"
    dataset.mkdir(parents=True)
    (dataset / "train_data.json").write_text(json.dumps([{"conv_id": "1", "dialog": []}]))
    (dataset / "entity2id.json").write_text(json.dumps({f"<e{i}>": i for i in range(10)}))
    features = root / "features" / "tiny"
    for key, graph in tiny_graphs().items():
        save_graph(Graph(graph["edge_index"], graph["edge_weight"], graph["num_nodes"]), features / GRAPH_FILES[key],
                   inputs=dataset_inputs(dataset, TINY_ITEM_IDS))
    previous = paths.data_root()
    paths.set_data_root(root)
    yield dataset, features
    paths.set_data_root(previous)


def test_graph_built_from_other_train_conversations_is_refused(tiny_dataset):
    dataset, features = tiny_dataset
    graph_file = features / "cooccurrence_graph.pt"
    assert set(read_manifest(features)["cooccurrence_graph.pt"]["inputs"]) == {
        "train_conversations", "entity2id", "item_ids"}
    assert read_graph_file(graph_file, dataset_dir=dataset, item_ids=TINY_ITEM_IDS)["num_nodes"] == 10
    (dataset / "train_data.json").write_text(json.dumps([{"conv_id": "2", "dialog": []}]))  # rebuilt dataset
    with pytest.raises(StaleArtifactError) as err:
        read_graph_file(graph_file, dataset_dir=dataset, item_ids=TINY_ITEM_IDS)
    message = str(err.value)
    assert str(graph_file) in message and "input 'train_conversations' changed" in message
    assert "rebuild it: python data_prep/features.py all --dataset tiny --data-root" in message


def test_graph_built_for_another_item_list_is_refused(tiny_dataset):
    dataset, features = tiny_dataset
    assert read_graph_file(features / "text_knn_graph.pt", dataset_dir=dataset, item_ids=[5, 4, 3, 2, 1])
    with pytest.raises(StaleArtifactError, match="text_knn_graph.pt.*input 'item_ids' changed"):
        read_graph_file(features / "text_knn_graph.pt", dataset_dir=dataset, item_ids=[1, 2, 3])


def test_the_model_checks_its_graphs_against_the_dataset_it_trains_on(tiny_dataset):
    from crslab_mscrs.model.prompt_crs import PromptCRS

    dataset, features = tiny_dataset
    opt = tiny_opt(features, dataset="tiny", tokenize="nltk")
    model = PromptCRS.from_opt(opt, tiny_vocab(), tiny_side_data())
    assert model.item_ids.tolist() == TINY_ITEM_IDS
    (dataset / "entity2id.json").write_text(json.dumps({f"<x{i}>": i for i in range(10)}))
    with pytest.raises(StaleArtifactError, match="cooccurrence_graph.pt.*input 'entity2id' changed"):
        PromptCRS.from_opt(opt, tiny_vocab(), tiny_side_data())


def test_graphs_that_recorded_no_dataset_inputs_still_load(tmp_path):
    """Graphs written before fingerprints were recorded (or toy graphs) are not refused."""
    graph = tiny_graphs()["use_text_graph"]
    save_graph(Graph(graph["edge_index"], graph["edge_weight"], 10), tmp_path / "g.pt")
    loaded = read_graph_file(tmp_path / "g.pt", dataset_dir=tmp_path, item_ids=[1])
    assert torch.equal(loaded["edge_index"], graph["edge_index"])
