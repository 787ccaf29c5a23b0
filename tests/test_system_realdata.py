"""The MSCRS dataloader on the real built ReDial (skipped when ./data lacks it)."""
from contextlib import contextmanager
from pathlib import Path

import pytest

import crslab_mscrs  # noqa: F401
from crslab_mscrs import paths

DATA_ROOT = Path(__file__).resolve().parents[1] / "data"
REDIAL = DATA_ROOT / "dataset" / "redial" / "nltk" / "test_data.json"


@contextmanager
def real_data_root():
    previous = paths.data_root()
    paths.set_data_root(DATA_ROOT)
    try:
        yield
    finally:
        paths.set_data_root(previous)


@pytest.mark.realdata
@pytest.mark.skipif(not REDIAL.is_file(), reason="ReDial not built in ./data (run `make data`)")
def test_real_redial_test_split_turns_and_movie_masking():
    import json

    import crslab.data

    from crslab_mscrs.batches.dataloader import MSCRSDataLoader

    with real_data_root():
        dataset = crslab.data.dataset_register_table["ReDial"]({"dataset": "ReDial"}, "nltk", False, False)
        loader = MSCRSDataLoader({"dataset": "ReDial"}, dataset.test_data, dataset.vocab)
        turns = loader.turns
        # train words are all in the train vocabulary: the same text either way (first 1500 samples)
        head = dataset.train_data[:1500]
        original = MSCRSDataLoader({"dataset": "ReDial"}, head, dataset.vocab)
        from_ids = MSCRSDataLoader({"dataset": "ReDial", "dialogue_text": "ids"}, head, dataset.vocab)
        pairs = list(zip(original.turns, from_ids.turns))
    # every sample is tagged with its conversation, and turn_index counts the merged turns before it
    assert all(t.conv_id is not None and t.turn_index == len(t.context) for t in turns)
    raw = json.loads(REDIAL.read_text())
    assert len({t.conv_id for t in turns}) == sum(1 for c in raw if len(c["dialog"]) > 1)
    rec_turns = loader.rec_eval_turns()
    assert rec_turns and all(turns[i].is_system and turns[i].items for i in rec_turns)
    # the text is the dataset's own words (not train-vocabulary ids: no __unk__ left) ...
    assert loader.source_text.split == "test" and all(t.original_text for t in turns)
    assert not any("__unk__" in t.response for t in turns)
    # ... so nearly every movie mention is found by name (measured 8279 of 8281; 8008 from the ids)
    stats = loader.mask_stats
    assert stats.exact + stats.fuzzy >= 0.99 * (stats.exact + stats.fuzzy + stats.missing)
    assert original.source_text.split == "train" and all(a.original_text for a, _ in pairs)
    assert all((a.context, a.response, a.response_masked) == (b.context, b.response, b.response_masked)
               for a, b in pairs)
