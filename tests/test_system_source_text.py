"""MSCRS dataloader text from the built dataset's split files (original words, not train-vocab ids).

A tiny built-dataset folder is written in tmp; its samples come from the plugin's tagged ReDial
dataset class (CRSLab's own merge and augmentation code), with a vocabulary of TRAIN words only.
"""
import json
from contextlib import contextmanager

import pytest

import crslab_mscrs  # noqa: F401  (compat + registration)
from crslab_mscrs import paths
from crslab_mscrs.compat.conversation_tags import TaggedReDialDataset
from crslab_mscrs.batches.dataloader import MSCRSDataLoader
from crslab_mscrs.batches.source_text import merge_utterances, read_split_text
from crslab_mscrs.training.toy import toy_splits, toy_vocab_and_side_data

LETHAL = "<http://dbpedia.org/resource/Lethal_Weapon>"
RED_RIVER = "<http://dbpedia.org/resource/Red_River_(film)>"
ENTITY2ID = {"<http://dbpedia.org/resource/Padding>": 0, LETHAL: 1, RED_RIVER: 2}
SPECIALS = ["__pad__", "__start__", "__end__", "__unk__"]


def utt(i, role, text, movies=()):
    return {"utt_id": i, "role": role, "text": text.split(), "movies": list(movies), "entity": [], "word": []}


SPLITS = {
    "train": [{"conv_id": "1", "dialog": [
        utt(0, "Seeker", "hi i like westerns"), utt(1, "Seeker", "any ideas ?"),  # merged with the one before
        utt(2, "Recommender", "have you seen Red River ( 1948 ) ?", [RED_RIVER]),
        utt(3, "Seeker", "no , thanks")]}],
    "valid": [{"conv_id": "2", "dialog": [
        utt(0, "Seeker", "hi i like westerns"), utt(1, "Recommender", "try Red River", [RED_RIVER])]}],
    "test": [{"conv_id": "3", "dialog": [
        utt(0, "Seeker", "hi i like buddy cops"),  # "buddy", "cops" are not train words
        utt(1, "Recommender", "have you seen Lethal Weapon ?", [LETHAL]),
        utt(2, "Seeker", "no , thanks")]}],
}


def tagged_samples(conversations, tok2ind):
    """Samples exactly as the plugin's ReDial dataset makes them (CRSLab merge + augment + tags)."""
    maker = TaggedReDialDataset.__new__(TaggedReDialDataset)
    maker.tok2ind, maker.unk_token_idx, maker.entity2id, maker.word2id = tok2ind, 3, ENTITY2ID, {}
    return maker._raw_data_process(conversations)


def write_built_dataset(root, splits):
    folder = root / "dataset" / "redial" / "nltk"
    folder.mkdir(parents=True)
    for split, conversations in splits.items():
        (folder / f"{split}_data.json").write_text(json.dumps(conversations))
    return folder


@pytest.fixture()
def built(tmp_path):
    write_built_dataset(tmp_path, SPLITS)
    words = [w for conv in SPLITS["train"] for u in conv["dialog"] for w in u["text"]]
    tok2ind = {w: i for i, w in enumerate(SPECIALS + list(dict.fromkeys(words)))}
    vocab = {"tok2ind": tok2ind, "ind2tok": {i: w for w, i in tok2ind.items()}, "unk": 3, "pad_entity": 0,
             "entity2id": ENTITY2ID, "id2entity": {i: e for e, i in ENTITY2ID.items()}}
    samples = {split: tagged_samples(convs, tok2ind) for split, convs in SPLITS.items()}
    return tmp_path, vocab, samples


@contextmanager
def data_root(root):
    previous = paths.data_root()
    paths.set_data_root(root)
    try:
        yield
    finally:
        paths.set_data_root(previous)


@contextmanager
def captured_warnings():
    from loguru import logger

    messages = []
    handler = logger.add(lambda m: messages.append(str(m)), level="WARNING", format="{message}")
    try:
        yield messages
    finally:
        logger.remove(handler)


def loader_for(samples, vocab, **opt):
    return MSCRSDataLoader({"dataset": "ReDial", "tokenize": "nltk", **opt}, samples, vocab)


def test_oov_words_in_test_stay_words_and_the_title_is_masked(built):
    root, vocab, samples = built
    with data_root(root), captured_warnings() as warnings:
        loader = loader_for(samples["test"], vocab)
        turns = loader.turns
    assert loader.source_text.split == "test" and not warnings
    reply = turns[0]
    assert reply.original_text and reply.conv_id == "3" and reply.turn_index == 1
    assert reply.context == ["User: hi i like buddy cops"]
    assert reply.response == "have you seen Lethal Weapon?" and "__unk__" not in reply.response
    assert reply.response_masked == "have you seen <movie>?"
    assert (loader.mask_stats.exact, loader.mask_stats.missing) == (1, 0)
    assert turns[1].context == ["User: hi i like buddy cops", "System: have you seen Lethal Weapon?"]


def test_the_old_id_path_loses_the_oov_title(built):
    """What the fix is about: CRSLab's ids turn the title into two unknowns, which cannot be masked."""
    root, vocab, samples = built
    with data_root(root):
        loader = loader_for(samples["test"], vocab, dialogue_text="ids")
        reply = loader.turns[0]
    assert not reply.original_text and loader.source_text is None
    assert reply.context == ["User: hi i like"] and reply.response == "have you seen?"
    assert "<movie>" not in reply.response_masked and loader.mask_stats.missing == 1


def test_train_text_is_the_same_as_from_ids_and_turns_are_merged(built):
    root, vocab, samples = built
    with data_root(root):
        original = loader_for(samples["train"], vocab).turns
        from_ids = loader_for(samples["train"], vocab, dialogue_text="ids").turns
    assert all(t.original_text for t in original)
    assert [(t.context, t.response, t.response_masked) for t in original] == \
        [(t.context, t.response, t.response_masked) for t in from_ids]
    assert original[0].context == ["User: hi i like westerns any ideas?"]  # two messages, one turn
    assert original[0].response_masked == "have you seen <movie>?"  # the year is swallowed too


def test_the_split_file_is_found_from_the_samples_conversations(built):
    root, vocab, samples = built
    with data_root(root):
        for split in ("train", "valid", "test"):
            loader = loader_for(list(reversed(samples[split])), vocab)
            loader.turns
            assert loader.source_text.split == split


def test_conversation_ids_in_two_files_are_told_apart_by_their_words(built, tmp_path_factory):
    _, vocab, samples = built
    clash = dict(SPLITS, valid=[{"conv_id": "3", "dialog": [
        utt(0, "Seeker", "hi i like westerns"), utt(1, "Recommender", "try Red River", [RED_RIVER])]}])
    root = tmp_path_factory.mktemp("clash")
    write_built_dataset(root, clash)
    with data_root(root):
        loader = loader_for(samples["test"], vocab)
        assert loader.turns[0].response == "have you seen Lethal Weapon?"
    assert loader.source_text.split == "test"


def test_fallback_to_ids_warns_once_when_no_file_holds_the_conversations(built):
    root = built[0]
    vocab, _ = toy_vocab_and_side_data()
    samples = toy_splits(n_train=3, n_valid=1, n_test=1)["train"]  # conv ids "train0".. are in no file
    with data_root(root), captured_warnings() as warnings:
        loader = loader_for(samples, vocab)
        turns = loader.turns
        loader.turns
    assert len(turns) > 3 and not any(t.original_text for t in turns)
    assert turns[0].response_masked == "have you seen <movie>?"  # the id path still works
    assert len(warnings) == 1 and "word ids" in warnings[0]
    assert "no split file" in warnings[0] and "'train0'" in warnings[0]


def test_fallback_names_untagged_samples_and_a_missing_folder(built, tmp_path_factory):
    root, vocab, samples = built
    untagged = [{k: v for k, v in s.items() if k not in ("conv_id", "turn_index")} for s in samples["test"]]
    with data_root(root), captured_warnings() as warnings:
        turns = loader_for(untagged, vocab).turns
    assert len(warnings) == 1 and "no conv_id/turn_index tags" in warnings[0]
    assert turns[0].response == "have you seen?"
    with data_root(tmp_path_factory.mktemp("empty")), captured_warnings() as warnings:
        loader_for(samples["test"], vocab).turns
    assert len(warnings) == 1 and "holds no {train,valid,test}_data.json" in warnings[0]


def test_a_sample_that_disagrees_with_the_file_reads_its_ids(built):
    root, vocab, samples = built
    stale = [dict(s) for s in samples["test"]]
    stale[0]["response"] = stale[0]["response"][:-1]  # e.g. a file rebuilt after the samples were saved
    with data_root(root), captured_warnings() as warnings:
        loader = loader_for(stale, vocab)
        turns = loader.turns
    assert [t.original_text for t in turns] == [False, True]
    assert loader.text_fallbacks == {"words differ from the sample's ids": 1}
    assert len(warnings) == 1 and "1 of 2 samples" in warnings[0]


def test_original_text_reaches_the_lm_input(built):
    from crslab_mscrs.model.loading import load_causal_lm, load_text_encoder

    root, vocab, samples = built
    _, lm_tok = load_causal_lm("tiny-random-gpt2")
    _, text_tok = load_text_encoder("tiny-random-bert")
    with data_root(root):
        loader = MSCRSDataLoader({"dataset": "ReDial"}, samples["test"], vocab, lm_tok, text_tok)
        batch = loader.rec_eval_batchify([1])
    text = lm_tok.decode(batch["input_ids"][0][batch["attention_mask"][0].bool()])
    assert "buddy cops" in text and "lethal weapon" in text.lower()  # (the tiny tokenizer lower-cases)
    assert "buddy cops" in text_tok.decode(batch["prompt_input_ids"][0])


def test_split_files_are_read_once_and_bad_utterances_are_named(built):
    root, _, _ = built
    path = root / "dataset" / "redial" / "nltk" / "test_data.json"
    assert read_split_text(path, "test") is read_split_text(path, "test")
    with pytest.raises(ValueError, match=r"x\.json: conversation '9', utterance 0 \(utt_id 5\)"):
        merge_utterances({"conv_id": "9", "dialog": [{"utt_id": 5, "role": "Seeker"}]}, where="x.json")


def test_embedded_sample_masks_every_valid_and_test_title(tmp_path):
    """The shipped ReDial sample: 35 of its 190 test movie mentions were lost to __unk__ from the ids."""
    import crslab.data

    from crslab_mscrs.data.sample import sample_data_root

    with data_root(sample_data_root(tmp_path / "sample")):
        dataset = crslab.data.dataset_register_table["ReDial"]({"dataset": "ReDial"}, "nltk", False, False)
        stats = {}
        for split in ("train", "test"):
            for mode in ("dataset", "ids"):
                loader = loader_for(getattr(dataset, f"{split}_data"), dataset.vocab, dialogue_text=mode)
                stats[split, mode] = (loader.turns, loader.mask_stats)
    test_turns, test_stats = stats["test", "dataset"]
    assert all(t.original_text for t in test_turns) and test_stats.missing == 0 and test_stats.exact > 100
    assert stats["test", "ids"][1].missing > 0
    train, train_ids = stats["train", "dataset"][0], stats["train", "ids"][0]
    assert [(t.context, t.response, t.response_masked) for t in train] == \
        [(t.context, t.response, t.response_masked) for t in train_ids]


def test_text_coverage_report_compares_both_sources(built):
    from crslab_mscrs.batches.text_coverage import compare_split

    root, vocab, samples = built
    with data_root(root):
        test = compare_split(samples["test"], vocab, "ReDial")
        train = compare_split(samples["train"], vocab, "ReDial")
    assert (test["ids"]["masked"], test["dataset"]["masked"], test["dataset"]["mentions"]) == (0, 1, 1)
    assert test["dataset"]["source"] == "test_data.json" and test["same_context"] == 0
    assert train["same_context"] == train["same_response"] == train["samples"] == 2
