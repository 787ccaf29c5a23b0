"""The MSCRS dataloader on the real built ReDial test split (skipped when ./data lacks it)."""
from pathlib import Path

import pytest

import crslab_mscrs  # noqa: F401
from crslab_mscrs import paths

DATA_ROOT = Path(__file__).resolve().parents[1] / "data"
REDIAL = DATA_ROOT / "dataset" / "redial" / "nltk" / "test_data.json"


@pytest.mark.realdata
@pytest.mark.skipif(not REDIAL.is_file(), reason="ReDial not built in ./data (run `make data`)")
def test_real_redial_test_split_turns_and_movie_masking():
    import json

    import crslab.data

    from crslab_mscrs.mscrs_system.dataloader import MSCRSDataLoader

    previous = paths.data_root()
    paths.set_data_root(DATA_ROOT)
    try:
        dataset = crslab.data.dataset_register_table["ReDial"]({"dataset": "ReDial"}, "nltk", False, False)
    finally:
        paths.set_data_root(previous)
    loader = MSCRSDataLoader({"dataset": "ReDial"}, dataset.test_data, dataset.vocab)
    turns = loader.turns
    # every sample is tagged with its conversation, and turn_index counts the merged turns before it
    assert all(t.conv_id is not None and t.turn_index == len(t.context) for t in turns)
    raw = json.loads(REDIAL.read_text())
    assert len({t.conv_id for t in turns}) == sum(1 for c in raw if len(c["dialog"]) > 1)
    rec_turns = loader.rec_eval_turns()
    assert rec_turns and all(turns[i].is_system and turns[i].items for i in rec_turns)
    # most movie mentions are found by name (the rest: items whose KG key is not a DBpedia title)
    stats = loader.mask_stats
    assert stats.exact + stats.fuzzy >= 0.7 * (stats.exact + stats.fuzzy + stats.missing)
