"""Builder output on real data slices, loaded by CRSLab's OWN datasets and dataloaders.

Counts are recomputed here from the raw files (independently of the builder) and compared
with what CRSLab's ``ReDialDataset`` / ``InspiredDataset`` produce after merging turns.
"""
import json
from pathlib import Path

import pytest

import crslab_mscrs  # noqa: F401  (compat + path redirection first)
from crslab_mscrs import paths
from crslab_mscrs.data import BuildOptions, build_inspired, build_redial

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = [pytest.mark.realdata,
              pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data not found at {SHARED}")]
LOADER_OPT = {"context_truncate": 64, "response_truncate": 20, "entity_truncate": 16, "word_truncate": 16}


@pytest.fixture
def data_root_at(request):
    """Point CRSLab's path globals at a folder for one test, then back."""
    previous = paths.data_root()
    yield lambda root: paths.set_data_root(root)
    paths.set_data_root(previous)


def _json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _jsonl(path, limit=None):
    """Raw JSONL values, read independently of the builder's reader."""
    with open(path, encoding="utf-8") as handle:
        values = [json.loads(line) for line in handle if line.strip()]
    return values[:limit]


def _merged_turns(roles_and_movies):
    """CRSLab's merge of consecutive same-role utterances: [(role, [movie, ...])]."""
    merged = []
    for role, movies in roles_and_movies:
        if merged and merged[-1][0] == role:
            merged[-1][1].extend(movies)
        else:
            merged.append((role, list(movies)))
    return merged


def _expected_rec_samples(conversations_turns):
    """(recommender turns with >= 1 movie after the first turn, total (turn, movie) pairs)."""
    turns = pairs = 0
    for turns_of_conv in conversations_turns:
        for i, (role, movies) in enumerate(_merged_turns(turns_of_conv)):
            if i > 0 and role == "Recommender" and movies:
                turns += 1
                pairs += len(movies)
    return turns, pairs


def _check_crslab_load(dataset_cls, expected_rec, report):
    from crslab.data.dataloader.kbrd import KBRDDataLoader
    from crslab.data.dataloader.kgsf import KGSFDataLoader

    dataset = dataset_cls({}, "nltk")
    for split, (turns, pairs) in expected_rec.items():
        samples = getattr(dataset, f"{split}_data")
        rec = [s for s in samples if s["role"] == "Recommender" and s["items"]]
        assert len(rec) == turns, split
        assert sum(len(s["items"]) for s in rec) == pairs, split
        assert (report.splits[split].crslab_rec_turns, report.splits[split].crslab_rec_pairs) == (turns, pairs)
        kgsf = KGSFDataLoader(LOADER_OPT, samples, dataset.vocab)
        assert sum(len(b[3]) for b in kgsf.get_rec_data(64, shuffle=False)) == pairs
        context, entities, words, response = next(iter(kgsf.get_conv_data(8, shuffle=False)))
        assert context.shape[0] == response.shape[0] <= 8
        kbrd = KBRDDataLoader(LOADER_OPT, samples, dataset.vocab)
        assert sum(len(b["item"]) for b in kbrd.get_rec_data(64, shuffle=False)) == pairs
    items = set(dataset.side_data["item_entity_ids"])
    labelled = {i for split in ("train", "valid", "test") for s in getattr(dataset, f"{split}_data")
                for i in s["items"]}
    assert labelled <= items and len(items) >= 50
    assert dataset.side_data["entity_kg"]["n_relation"] > 0 and dataset.side_data["word_kg"]["edge"]
    return dataset


# --- ReDial ----------------------------------------------------------------------------------

def _redial_known(kg_dir):
    entity2id = _json(kg_dir / "entity2id.json")
    movie_uri = _json(kg_dir / "id2entity.jsonl")

    def known(movie_id):
        uri = movie_uri.get(movie_id)
        return (uri in entity2id) if uri else movie_id in entity2id
    return known


def _redial_raw_turns(record, known):
    import re

    roles = {record["initiatorWorkerId"]: "Seeker", record["respondentWorkerId"]: "Recommender"}
    turns = []
    for message in record["messages"]:
        ids = list(dict.fromkeys(re.findall(r"@(\d+)", message["text"])))
        turns.append((roles[message["senderWorkerId"]], [m for m in ids if known(m)]))
    return turns


@pytest.fixture(scope="module")
def redial_slice(tmp_path_factory):
    root = tmp_path_factory.mktemp("redial_root")
    report = build_redial(SHARED, root, BuildOptions(limit=25, seed=11, word_min_pair_count=2), echo=False)
    return root, report


def test_redial_slice_matches_raw_and_loads_in_crslab(redial_slice, no_download, data_root_at):
    from crslab.data.dataset.redial.redial import ReDialDataset

    root, report = redial_slice
    out = root / "dataset" / "redial" / "nltk"
    pool = {r["conversationId"]: r for r in _jsonl(SHARED / "redial/raw/train_pool.jsonl")}
    test_raw = _jsonl(SHARED / "redial/raw/test_data.jsonl", limit=25)
    splits = {s: _json(out / f"{s}_data.json") for s in ("train", "valid", "test")}
    assert {s: len(c) for s, c in splits.items()} == {"train": 25, "valid": 25, "test": 25}
    train_ids = {c["conv_id"] for c in splits["train"]}
    valid_ids = {c["conv_id"] for c in splits["valid"]}
    assert train_ids <= set(pool) and valid_ids <= set(pool) and not train_ids & valid_ids
    assert [c["conv_id"] for c in splits["test"]] == [r["conversationId"] for r in test_raw]
    assert report.settings["valid_carved"] == round(0.1 * len(pool))
    assert report.settings["train_carved"] + report.settings["valid_carved"] == len(pool)

    known = _redial_known(SHARED / "redial/kg")
    raw_by_split = {"train": [pool[c["conv_id"]] for c in splits["train"]],
                    "valid": [pool[c["conv_id"]] for c in splits["valid"]], "test": test_raw}
    for split, records in raw_by_split.items():
        built = splits[split]
        assert [len(c["dialog"]) for c in built] == [len(r["messages"]) for r in records]
        raw_turns = [_redial_raw_turns(r, known) for r in records]
        per_message = sum(role == "Recommender" and bool(m) for t in raw_turns for role, m in t)
        assert report.splits[split].recommendation_instances == per_message
    expected = {s: _expected_rec_samples([_redial_raw_turns(r, known) for r in recs])
                for s, recs in raw_by_split.items()}

    assert _json(out / "entity2id.json") == _json(SHARED / "redial/kg/entity2id.json")
    assert report.entity_kg["pad_entity_id_0"] is None  # no URI owns CRSLab's pad id 0
    assert report.word_graph["source"] == "train_pmi"
    data_root_at(root)
    dataset = _check_crslab_load(ReDialDataset, expected, report)
    assert dataset.vocab["tok2ind"]["__unk__"] == 3 and dataset.vocab["n_entity"] == 64363


def test_kgsf_copy_mask_is_in_place_for_redial(redial_slice):
    import numpy as np

    root, _ = redial_slice
    mask_dir = root / "model" / "kgsf" / "ReDial"
    mask = np.load(mask_dir / "copy_mask.npy")
    token2id = _json(root / "dataset" / "redial" / "nltk" / "token2id.json")
    assert mask.dtype == bool and mask.shape == (len(token2id),) and 0 < mask.sum() < len(token2id)
    assert (mask_dir / ".built").read_text().split("\n")[1] == "0.2"


def test_redial_full_test_split_builds(tmp_path, no_download):
    """The whole official ReDial test split (1,342 conversations) through the builder."""
    report = build_redial(SHARED, tmp_path, BuildOptions(limit={"train": 40, "valid": 10}), echo=False)
    raw = _jsonl(SHARED / "redial/raw/test_data.jsonl")
    assert report.splits["test"].conversations == len(raw) == 1342
    known = _redial_known(SHARED / "redial/kg")
    assert report.splits["test"].recommendation_instances == sum(
        role == "Recommender" and bool(m) for r in raw for role, m in _redial_raw_turns(r, known))
    assert report.unknown_movies.mentions == 0 or report.unknown_movies.examples


# --- INSPIRED --------------------------------------------------------------------------------

def test_inspired_slice_matches_raw_and_loads_in_crslab(tmp_path, no_download, data_root_at):
    from crslab.data.dataset.inspired.inspired import InspiredDataset

    report = build_inspired(SHARED, tmp_path, BuildOptions(limit=20, word_min_pair_count=2), echo=False)
    out = tmp_path / "dataset" / "inspired" / "nltk"
    entity2id = _json(SHARED / "inspired/kg/entity2id.json")
    assert _json(out / "entity2id.json") == entity2id
    assert report.entity_kg["pad_entity_id_0"] == "<http://dbpedia.org/resource/Hoffa_(film)>"
    expected = {}
    for split in ("train", "valid", "test"):
        raw = _jsonl(SHARED / f"inspired/raw/{split}_data_dbpedia.jsonl", limit=20)
        built = _json(out / f"{split}_data.json")
        assert len(built) == 20 and [len(c["dialog"]) for c in built] == [len(d) for d in raw]
        turns = [[("Recommender" if t["role"] == "RECOMMENDER" else "Seeker",
                   list(dict.fromkeys(m for m in t["movie_link"] if m in entity2id))) for t in dialogue]
                 for dialogue in raw]
        assert report.splits[split].recommendation_instances == sum(
            role == "Recommender" and bool(m) for d in turns for role, m in d)
        expected[split] = _expected_rec_samples(turns)
    lines = (out / "dbpedia_subkg.txt").read_text().splitlines()
    assert lines and all(len(line.split("\t")) == 3 for line in lines)
    assert not any(line.split("\t")[1] == "self_loop" for line in lines)
    data_root_at(tmp_path)
    _check_crslab_load(InspiredDataset, expected, report)
    assert (tmp_path / "model/kgsf/Inspired/.built").read_text().split("\n")[1] == "0.1"
