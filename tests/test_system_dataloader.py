"""MSCRS dataloader: CRSLab samples -> prompt-learning batches (tiny tokenizers, toy data)."""
import pytest
import torch

import crslab_mscrs  # noqa: F401  (compat + registration)
from crslab_mscrs.model.loading import load_causal_lm, load_text_encoder
from crslab_mscrs.batches.dataloader import MSCRSDataLoader
from crslab_mscrs.batches.encoding import IGNORE_INDEX
from crslab_mscrs.batches.movie_mentions import (MaskStats, count_placeholders, fill_placeholders,
                                                      mask_movie_mentions)
from crslab_mscrs.batches.text import context_roles
from crslab_mscrs.data.item_names import entity_display_name, entity_surface_name
from crslab_mscrs.training.toy import toy_splits, toy_vocab_and_side_data


@pytest.fixture(scope="module")
def tokenizers():
    _, lm_tok = load_causal_lm("tiny-random-gpt2")
    _, text_tok = load_text_encoder("tiny-random-bert")
    return lm_tok, text_tok


@pytest.fixture(scope="module")
def toy():
    vocab, side = toy_vocab_and_side_data()
    return vocab, side, toy_splits(n_train=3, n_valid=1, n_test=1)


def make_loader(toy, tokenizers, split="train", **opt):
    vocab, side, splits = toy
    loader = MSCRSDataLoader(dict(opt), splits[split], vocab, *tokenizers)
    loader.set_item_ids(side["item_entity_ids"])
    return loader


def test_roles_alternate_backwards_from_the_response():
    assert context_roles(3, response_is_system=True) == [False, True, False]
    assert context_roles(2, response_is_system=False) == [False, True]


def test_entity_names_from_dbpedia_uris():
    uri = "<http://dbpedia.org/resource/Rio_(2011_film)>"
    assert entity_surface_name(uri) == "Rio"
    assert entity_display_name(uri) == "Rio (2011)"
    assert entity_surface_name("<http://dbpedia.org/resource/Something%27s_Gotta_Give>") == "Something's Gotta Give"


def test_movie_names_are_masked_with_year_and_unknown_words():
    words = "have you seen Rio ( 2011 ) ? or __unk__ Holmes , or her".split()
    stats = MaskStats()
    masked = mask_movie_mentions(words, ["Rio", "Sherlock Holmes", "Her", "Avatar"], stats=stats)
    assert masked == "have you seen <movie> ? or <movie> , or her".split()
    assert (stats.exact, stats.missing) == (2, 2)  # "her" (lower case) is not the film Her


def test_placeholders_are_filled_in_rank_order():
    assert fill_placeholders("try < movie > or <movie>!", ["A (2001)", "B"]) == "try A (2001) or B!"
    assert fill_placeholders("see <movie> <movie> <movie>", ["A", "B"]) == "see A B B"
    assert fill_placeholders("no names <movie>", []) == "no names <movie>"
    assert count_placeholders("x < movie > y <MOVIE>") == 2


def test_turn_text_and_conversation_tags(toy, tokenizers):
    loader = make_loader(toy, tokenizers)
    first = loader.turns[0]
    assert first.conv_id == "train0" and first.turn_index == 1 and first.is_system
    assert first.context[0].startswith("User: hi i like")
    assert "(2011)" in first.response and first.response_masked == "have you seen <movie>?"
    # the response entity of turn 1 (the film) is read off the next sample's context entities
    assert first.response_entities == first.items


def test_rec_has_one_row_per_target_item_and_left_padding(toy, tokenizers):
    loader = make_loader(toy, tokenizers)
    recommender_items = [i for t in loader.turns if t.is_system for i in t.items]
    assert len(loader.rec_rows()) == len(recommender_items) == 6  # 3 dialogues x 2 suggestions
    batch = loader.rec_batchify(loader.rec_rows())
    assert batch["labels"].tolist() == recommender_items
    assert bool(batch["attention_mask"][:, -1].all())  # LEFT padded: last column is real
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    assert batch["prompt_input_ids"].shape == batch["prompt_attention_mask"].shape
    assert batch["entity_ids"].shape == batch["entity_mask"].shape and batch["entity_mask"].dtype == torch.bool
    first = loader.turns[loader.rec_rows()[0][0]]
    n_real = len(first.context_entities)
    assert batch["entity_ids"][0, :n_real].tolist() == first.context_entities  # the genre the seeker named
    assert batch["entity_mask"][0].tolist() == [True] * n_real + [False] * (batch["entity_ids"].shape[1] - n_real)
    lm_tok = tokenizers[0]
    last_text = lm_tok.decode(batch["input_ids"][0][batch["attention_mask"][0].bool()])
    assert last_text.replace(" ", "").endswith("system:")  # ends with the reply prompt


def test_pretrain_targets_are_response_items_and_new_entities(toy, tokenizers):
    loader = make_loader(toy, tokenizers)
    rows = loader.pretrain_rows()
    turns = loader.turns
    expected = sum(len(dict.fromkeys(t.items + t.response_entities)) for t in turns)
    assert len(rows) == expected and all(target != 0 for _, target in rows)
    batch = loader.pretrain_batchify(rows[:2])
    text = tokenizers[0].decode(batch["input_ids"][0][batch["attention_mask"][0].bool()])
    assert "2011" in text  # the response (with the film name) is part of the input, by design


def test_conv_labels_only_on_response_tokens(toy, tokenizers):
    loader = make_loader(toy, tokenizers)
    indices = loader.conv_turns()
    assert all(loader.turns[i].is_system for i in indices)
    batch = loader.conv_batchify(indices)
    lm_tok = tokenizers[0]
    for row in range(len(indices)):
        labels, ids, mask = batch["labels"][row], batch["input_ids"][row], batch["attention_mask"][row]
        supervised = labels != IGNORE_INDEX
        assert bool((labels[supervised] == ids[supervised]).all())
        assert not bool(supervised[mask == 0].any())  # padding carries no loss
        assert int(mask[0]) == 1  # RIGHT padded for training
        response = lm_tok.decode(ids[supervised])
        assert "movie" in response and "2011" not in response  # names replaced by the placeholder
        context = lm_tok.decode(ids[~supervised & mask.bool()])
        assert "user" in context and response not in context


def test_truncation_from_the_left_and_entities_from_the_end(toy, tokenizers):
    loader = make_loader(toy, tokenizers, context_max_length=8, prompt_max_length=6, entity_max_length=1)
    turn = loader.turns[2]  # turn 3 of dialogue 0: two entities in context
    batch = loader.rec_eval_batchify([turn.index])
    assert batch["input_ids"].shape[1] == 8 and batch["prompt_input_ids"].shape[1] == 6
    assert batch["entity_ids"][0].tolist() == turn.context_entities[-1:]
    ids = batch["prompt_input_ids"][0].tolist()
    assert ids[0] == tokenizers[1].cls_token_id and ids[-1] == tokenizers[1].sep_token_id
    assert batch["meta"]["conv_ids"] == [turn.conv_id]


def test_generation_batch_is_left_padded_context_only(toy, tokenizers):
    loader = make_loader(toy, tokenizers)
    batch = next(loader.get_generation_data(batch_size=4))
    assert bool(batch["attention_mask"][:, -1].all()) and "labels" not in batch
    assert len(batch["meta"]["references"]) == batch["input_ids"].shape[0]


def test_samples_are_tokenised_once(toy, tokenizers):
    loader = make_loader(toy, tokenizers)
    list(loader.get_rec_data(4, shuffle=False))
    cached = len(loader.encoder._lm_cache)
    first = loader._feature("context", 0)
    list(loader.get_rec_data(4, shuffle=True))
    assert len(loader.encoder._lm_cache) == cached and loader._feature("context", 0) is first


def test_item_names_file_names_items_without_a_dbpedia_title(toy, tokenizers, tmp_path):
    vocab, side, splits = toy
    first = splits["train"][0]
    item = first["items"][0]
    numeric_vocab = dict(vocab, id2entity={**vocab["id2entity"], item: "204331"})  # raw ReDial movieId
    without = MSCRSDataLoader({}, [first], numeric_vocab, *tokenizers)
    assert "<movie>" not in without.turns[0].response_masked and without.mask_stats.missing == 1
    names = tmp_path / "item_names.json"
    names.write_text('{"%d": "%s"}' % (item, without.turns[0].response.split("seen ")[1].split(" (")[0]))
    named = MSCRSDataLoader({"item_names_file": str(names)}, [first], numeric_vocab, *tokenizers)
    assert named.turns[0].response_masked == "have you seen <movie>?"
