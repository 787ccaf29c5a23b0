"""The bring-your-own-data format against reality: INSPIRED converted into it and built by the
generic builder gives the conversations, turns and labels of the INSPIRED builder, down to the
samples CRSLab's loader makes of them."""
import json
import os
from pathlib import Path

import pytest

import crslab_mscrs  # noqa: F401
from crslab_mscrs import paths, registry
from crslab_mscrs.data import BuildOptions, build_inspired
from crslab_mscrs.data.custom import build_custom, custom_dataset_dir
from crslab_mscrs.data.custom.convert_inspired import inspired_to_user_format

SHARED = Path(os.environ.get("CRSLAB_MSCRS_SHARED", Path(__file__).resolve().parents[2] / "shared" / "data"))
pytestmark = [pytest.mark.realdata,
              pytest.mark.skipif(not (SHARED / "inspired").is_dir(), reason=f"shared data not found at {SHARED}")]
# conversations per split; CRSLAB_MSCRS_ROUNDTRIP_LIMIT=0 compares the full 801/99/99 (docs/own_data.md)
LIMIT = int(os.environ.get("CRSLAB_MSCRS_ROUNDTRIP_LIMIT", "40")) or None


def _json(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _samples(dataset, split):
    """CRSLab samples with ids mapped back to strings (the two builds number entities differently)."""
    id2tok, id2ent = dataset.vocab["ind2tok"], dataset.vocab["id2entity"]
    return [(s["conv_id"], s["turn_index"], s["role"], [id2tok[t] for t in s["response"]],
             [id2ent[e] for e in s["items"]], [id2ent[e] for e in s["context_items"]],
             sorted(id2ent[e] for e in s["context_entities"]), s["context_words"])
            for s in getattr(dataset, f"{split}_data")]


def test_inspired_through_the_user_format_matches_the_inspired_builder(tmp_path, no_download):
    import crslab.data as crslab_data

    options = BuildOptions(limit=LIMIT, word_min_pair_count=2)
    build_inspired(SHARED, tmp_path / "a", options, echo=False)
    folder = inspired_to_user_format(SHARED, tmp_path / "user_format", limit=LIMIT)
    report = build_custom(folder, tmp_path / "b", "InspiredRoundTrip", options, echo=False)
    a, b = tmp_path / "a/dataset/inspired/nltk", custom_dataset_dir(tmp_path / "b", "InspiredRoundTrip")
    assert report.entity_kg["source"] == "kg.tsv + entities.txt"
    for name in ("train_data.json", "valid_data.json", "test_data.json", "token2id.json", "word2id.json"):
        assert _json(a / name) == _json(b / name), name

    def item_uris(folder):
        id2uri = {i: u for u, i in _json(folder / "entity2id.json").items()}
        return [id2uri[i] for i in _json(folder / "movie_ids.json")]

    assert item_uris(a) == item_uris(b)
    assert set((a / "dbpedia_subkg.txt").read_text().splitlines()) == \
        set((b / "dbpedia_subkg.txt").read_text().splitlines())
    counts = _json(a / "build_report.json")["splits"], _json(b / "build_report.json")["splits"]
    assert counts[0] == counts[1]

    previous = paths.data_root()
    try:
        paths.set_data_root(tmp_path / "a")
        ours = crslab_data.get_dataset({"dataset": "Inspired"}, "nltk", False, False)
        paths.set_data_root(tmp_path / "b")
        registry.register_custom_datasets(tmp_path / "b")
        theirs = crslab_data.get_dataset({"dataset": "InspiredRoundTrip"}, "nltk", False, False)
    finally:
        paths.set_data_root(previous)
    for split in ("train", "valid", "test"):
        assert _samples(ours, split) == _samples(theirs, split), split
    assert len(ours.train_data) > 100 and report.splits["train"].conversations == (LIMIT or 801)
