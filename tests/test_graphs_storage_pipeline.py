"""Graph/feature files, stale-manifest detection, and the whole pipeline on a tiny dataset."""
import json

import pytest
import torch
from PIL import Image

from crslab_mscrs.graphs.cooccurrence import Graph
from crslab_mscrs.graphs.storage import (StaleArtifactError, load_features, load_graph, read_manifest,
                                         save_features, save_graph)


def _graph():
    return Graph(torch.tensor([[0, 2], [2, 0]]), torch.tensor([1.5, 1.5]), 4, {"note": "tiny"})


def test_graph_file_format_and_roundtrip(tmp_path):
    inputs_file = tmp_path / "train.json"
    inputs_file.write_text("[1, 2]")
    entry = save_graph(_graph(), tmp_path / "g.pt", inputs={"train": inputs_file, "k": 3}, parameters={"k": 3})
    raw = torch.load(tmp_path / "g.pt", weights_only=True)
    assert set(raw) == {"edge_index", "edge_weight", "num_nodes"}
    assert raw["edge_index"].dtype == torch.int32 and raw["edge_weight"].dtype == torch.float32  # ids fit int32
    assert raw["num_nodes"] == 4
    assert read_manifest(tmp_path)["g.pt"]["sha256"] == entry["sha256"]
    graph = load_graph(tmp_path / "g.pt", expected_inputs={"train": inputs_file, "k": 3})
    assert graph.edge_index.dtype == torch.long and graph.num_nodes == 4
    assert torch.equal(graph.edge_index, raw["edge_index"].long())


def test_stale_manifest_is_detected(tmp_path):
    inputs_file = tmp_path / "train.json"
    inputs_file.write_text("[1, 2]")
    save_graph(_graph(), tmp_path / "g.pt", inputs={"train": inputs_file})
    inputs_file.write_text("[1, 2, 3]")  # input changed after the build
    with pytest.raises(StaleArtifactError, match="input 'train' changed"):
        load_graph(tmp_path / "g.pt", expected_inputs={"train": inputs_file})
    assert load_graph(tmp_path / "g.pt", expected_inputs={"train": inputs_file}, on_stale="warn").num_nodes == 4
    with pytest.raises(StaleArtifactError, match="was not recorded"):
        load_graph(tmp_path / "g.pt", expected_inputs={"other": 1})
    torch.save({"edge_index": torch.zeros(2, 0, dtype=torch.long), "edge_weight": torch.zeros(0), "num_nodes": 4},
               tmp_path / "g.pt")  # file replaced behind the manifest's back
    with pytest.raises(StaleArtifactError, match="modified after"):
        load_graph(tmp_path / "g.pt")
    torch.save({}, tmp_path / "orphan.pt")
    with pytest.raises(StaleArtifactError, match="no entry for orphan.pt"):
        load_graph(tmp_path / "orphan.pt")


def test_features_roundtrip_with_mask(tmp_path):
    save_features(tmp_path / "image_features.pt", [3, 5], torch.ones(2, 4), torch.tensor([False, True]),
                  inputs={"manifest": {"3": ["a.jpg"]}}, encoder={"name": "x"})
    data = load_features(tmp_path / "image_features.pt", expected_inputs={"manifest": {"3": ["a.jpg"]}})
    assert data["item_ids"].tolist() == [3, 5] and data["missing_mask"].tolist() == [False, True]
    with pytest.raises(StaleArtifactError):
        load_features(tmp_path / "image_features.pt", expected_inputs={"manifest": {"3": ["b.jpg"]}})
    with pytest.raises(ValueError, match="2 item ids but 3"):
        save_features(tmp_path / "x.pt", [1, 2], torch.ones(3, 2))


# ----------------------------------------------------------------- end to end

@pytest.fixture()
def tiny_setup(tmp_path):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    bert = tmp_path / "bert"
    bert.mkdir()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "toy", "crime", "space", "movie", "genres", "plot"]
    (bert / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(bert / "vocab.txt")).save_pretrained(bert)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(bert)

    entity2id = {f"<M{i}>": i for i in range(6)} | {"<Actor>": 6, "<Genre>": 7}
    (tmp_path / "entity2id.json").write_text(json.dumps(entity2id))
    (tmp_path / "items.json").write_text(json.dumps(list(range(6))))
    images = tmp_path / "imgs"
    for item, colour in ((0, (200, 0, 0)), (1, (0, 0, 200)), (2, (0, 200, 0))):
        (images / str(item)).mkdir(parents=True)
        Image.new("RGB", (16, 16), colour).save(images / str(item) / "a.jpg")
    (images / "3").mkdir()
    (images / "3" / "broken.jpg").write_bytes(b"garbage")
    rows = ["item_id,title,genres,plot", "0,Toy One (1995),animation,toy movie", "1,Crime Two (1990),crime,crime",
            "2,Space Three (2001),scifi,space movie", "3,Toy Four (1999),animation,toy"]
    (tmp_path / "catalogue.csv").write_text("\n".join(rows) + "\n")

    data_root = tmp_path / "data"
    built = data_root / "dataset" / "tiny" / "nltk"
    built.mkdir(parents=True)
    turn = lambda movies, entity: {"utt_id": 0, "role": "Seeker", "text": "", "movies": movies, "entity": entity,
                                   "word": []}
    train = [{"conv_id": 1, "dialog": [turn(["<M0>"], ["<Actor>"]), turn(["<M1>"], [])]},
             {"conv_id": 2, "dialog": [turn(["<M0>", "<M2>"], ["<Genre>"])]}]
    test = [{"conv_id": 3, "dialog": [turn(["<M4>", "<M5>"], [])]}]
    (built / "train_data.json").write_text(json.dumps(train))
    (built / "test_data.json").write_text(json.dumps(test))
    (built / "entity2id.json").write_text(json.dumps(entity2id))
    (built / ".built").write_text("built by the test\n0.1")
    config = {"inputs": {"entity2id": str(tmp_path / "entity2id.json"), "item_ids": str(tmp_path / "items.json")},
              "catalogue": {"user_file": str(tmp_path / "catalogue.csv"), "image_dirs": [str(images)]},
              "text_encoder": {"model": str(bert), "batch_size": 2},
              "graphs": {"text_knn": {"k": 2}, "image_knn": {"k": 1}}, "probe_titles": ["Toy One"], "device": "cpu"}
    return data_root, config


def test_pipeline_end_to_end(tiny_setup):
    from crslab_mscrs.features.pipeline import FeaturePipeline

    data_root, config = tiny_setup
    pipeline = FeaturePipeline("tiny", config, data_root=data_root)
    report = pipeline.run_all()
    out = data_root / "features" / "tiny"
    for name in ("cooccurrence_graph.pt", "text_knn_graph.pt", "image_knn_graph.pt", "text_features.pt",
                 "image_features.pt", "manifest.json", "descriptions.jsonl", "catalogue.jsonl"):
        assert (out / name).is_file(), name
    text = torch.load(out / "text_features.pt", weights_only=True)
    assert text["item_ids"].tolist() == list(range(6)) and text["features"].shape == (6, 16)
    image = torch.load(out / "image_features.pt", weights_only=True)
    assert image["missing_mask"].tolist() == [False, False, False, True, True, True]
    assert report["encode_images"]["images_corrupt"] == 1
    co = torch.load(out / "cooccurrence_graph.pt", weights_only=True)
    pairs = {tuple(p) for p in co["edge_index"].T.tolist()}
    assert (0, 6) in pairs and (0, 2) in pairs and (2, 7) in pairs  # items and non-item entities
    assert (4, 5) not in pairs  # test conversation never used
    assert co["num_nodes"] == 8
    image_graph = torch.load(out / "image_knn_graph.pt", weights_only=True)
    assert set(image_graph["edge_index"].flatten().tolist()) <= {0, 1, 2}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["image_features.pt"]["encoder"]["name"] == "handcrafted-colour-hog"
    assert manifest["text_knn_graph.pt"]["parameters"]["k"] == 2
    # every graph records the dataset inputs the model checks at load (train split, entity2id, items)
    assert manifest["cooccurrence_graph.pt"]["inputs"].keys() >= {"train_conversations", "entity2id", "item_ids"}
    assert manifest["text_knn_graph.pt"]["inputs"].keys() >= {"entity2id", "item_ids"}
    stats = pipeline.stats()
    assert list(stats["text_knn_probe"]) == ["Toy One (1995) [0]"]
    # features are keyed to their inputs: changed descriptions make the text features stale
    (out / "descriptions.jsonl").write_text((out / "descriptions.jsonl").read_text().replace("Toy", "Tiy"))
    with pytest.raises(StaleArtifactError, match="descriptions"):
        load_features(out / "text_features.pt", expected_inputs={"descriptions": out / "descriptions.jsonl"})


def test_cli_rejects_unknown_config_key(tmp_path):
    from crslab_mscrs.features.pipeline import FeaturePipeline

    with pytest.raises(KeyError, match="unknown key 'text_encodr'"):
        FeaturePipeline("tiny", {"text_encodr": {}}, data_root=tmp_path)


def test_pipeline_prefers_built_dataset_ids_and_rejects_other_id_space(tmp_path):
    from crslab_mscrs.features.pipeline import FeaturePipeline

    built = tmp_path / "data" / "dataset" / "tiny" / "nltk"
    built.mkdir(parents=True)
    (built / "entity2id.json").write_text(json.dumps({"<A>": 0, "<B>": 1}))
    (built / "movie_ids.json").write_text("[0, 1]")
    (built / ".built").write_text("built by the test\n0.1")
    pipeline = FeaturePipeline("tiny", {}, data_root=tmp_path / "data")
    assert pipeline.entity2id_path() == built / "entity2id.json"
    assert pipeline.item_ids_path() == built / "movie_ids.json"
    assert pipeline.check_built_dataset_ids() is None
    other = tmp_path / "other_entity2id.json"
    other.write_text(json.dumps({"<A>": 1, "<B>": 0}))
    explicit = FeaturePipeline("tiny", {"inputs": {"entity2id": str(other)}}, data_root=tmp_path / "data")
    with pytest.raises(ValueError, match="another entity id space"):
        explicit.check_built_dataset_ids()
