"""The batch contract (crslab_mscrs.batches.contract) is what the dataloader builds: every
task's batch has exactly the keys its TypedDict declares, with the declared shapes."""
import pytest

import crslab_mscrs  # noqa: F401
from crslab_mscrs.batches import contract
from crslab_mscrs.batches.dataloader import MSCRSDataLoader
from crslab_mscrs.model.loading import load_causal_lm, load_text_encoder
from crslab_mscrs.training.toy import toy_splits, toy_vocab_and_side_data


@pytest.fixture(scope="module")
def loader():
    vocab, side = toy_vocab_and_side_data()
    _, lm_tok = load_causal_lm("tiny-random-gpt2")
    _, text_tok = load_text_encoder("tiny-random-bert")
    loader = MSCRSDataLoader({}, toy_splits(n_train=3, n_valid=1, n_test=1)["train"], vocab, lm_tok, text_tok)
    loader.set_item_ids(side["item_entity_ids"])
    return loader


def check(batch, kind):
    keys = set(batch)
    assert kind.__required_keys__ <= keys <= kind.__required_keys__ | kind.__optional_keys__, (kind, keys)
    rows = batch["input_ids"].shape[0]
    assert batch["attention_mask"].shape == batch["input_ids"].shape
    assert batch["prompt_input_ids"].shape[0] == batch["entity_ids"].shape[0] == rows
    assert batch["entity_mask"].shape == batch["entity_ids"].shape
    if "meta" in batch:
        assert set(batch["meta"]) == set(contract.TurnMeta.__annotations__)
        assert all(len(v) == rows for v in batch["meta"].values())


def test_every_task_batch_matches_its_typed_description(loader):
    check(loader.pretrain_batchify(loader.pretrain_rows()[:3]), contract.PretrainBatch)
    check(loader.rec_batchify(loader.rec_rows()[:3]), contract.RecBatch)
    rec_eval = loader.rec_eval_batchify(loader.rec_eval_turns()[:2])
    check(rec_eval, contract.RecEvalBatch)
    assert bool(rec_eval["attention_mask"][:, -1].all())  # left padded: the score reads the last position
    conv = loader.conv_batchify(loader.conv_turns()[:2])
    check(conv, contract.ConvBatch)
    assert conv["labels"].shape == conv["input_ids"].shape
    check(loader.generation_batchify(loader.conv_turns()[:2]), contract.GenerationBatch)
    check(loader.live_batch(["User: hi"], []), contract.LiveBatch)
