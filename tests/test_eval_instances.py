"""Recommendation instances: CRSLab turn merging and the full / dedup / crslab protocols."""
from pathlib import Path

import pytest

from crslab_mscrs.evaluation.instances import (InstanceStats, build_instances, dialogue_lengths,
                                               load_entity2id, load_item_ids, load_jsonl,
                                               load_movie_uris, merge_turns,
                                               raw_redial_to_conversation, seeker_answers,
                                               unique_turns)

A, B, C, D, E, NOT_ITEM = "<A>", "<B>", "<C>", "<D>", "<E>", "<Genre>"
ENTITY2ID = {A: 1, B: 2, C: 3, D: 4, E: 5, NOT_ITEM: 9, "44": 6}  # "44": a movie with no URI
ITEMS = [1, 2, 3, 4, 5]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def utt(i, role, movies=()):
    return {"utt_id": i, "role": role, "text": ["x"], "movies": list(movies), "entity": [], "word": []}


CONV = {"conv_id": "c1", "dialog": [
    utt(0, "Seeker", [A]), utt(1, "Seeker", [B]),          # turn 0: A B
    utt(2, "Recommender", [C, A]),                           # turn 1: C A
    utt(3, "Seeker", [C]),                                   # turn 2
    utt(4, "Recommender", [C, C, D]), utt(5, "Recommender", [A]),  # turn 3: C C D A
    utt(6, "Seeker"),                                        # turn 4
    utt(7, "Recommender", [A, "<unknown uri>"]),            # turn 5: A (all mentioned before)
]}
CONV2 = {"conv_id": "c2", "dialog": [
    utt(0, "Recommender", [E]),          # turn 0: no earlier message -> never an instance
    utt(1, "Seeker"),
    utt(2, "Recommender", [NOT_ITEM]),   # in entity2id but not an item -> not scorable
]}


def by_key(instances):
    return [(i.conv_id, i.turn_index, i.labels) for i in instances]


def test_merge_turns_follows_crslab():
    turns = merge_turns(CONV, ENTITY2ID)
    assert [(t.turn_index, t.role, t.movies, t.n_messages) for t in turns] == [
        (0, "Seeker", (1, 2), 2), (1, "Recommender", (3, 1), 1), (2, "Seeker", (3,), 1),
        (3, "Recommender", (3, 3, 4, 1), 2), (4, "Seeker", (), 1), (5, "Recommender", (1,), 1)]


def test_full_protocol_labels_are_distinct_movies_of_the_turn():
    stats = InstanceStats()
    instances = build_instances([CONV, CONV2], ENTITY2ID, ITEMS, "full", stats)
    assert by_key(instances) == [("c1", 1, (3, 1)), ("c1", 3, (3, 4, 1)), ("c1", 5, (1,))]
    assert stats.labels_outside_item_set == 1  # the <Genre> mention of c2
    assert instances[1].history_items == (1, 2, 3, 1, 3)


def test_dedup_drops_a_turn_whose_movies_were_all_mentioned_before():
    stats = InstanceStats()
    instances = build_instances([CONV], ENTITY2ID, ITEMS, "dedup", stats)
    assert by_key(instances) == [("c1", 1, (3,)), ("c1", 3, (4,))]
    assert stats.turns_dropped_no_new_item == 1


def test_crslab_protocol_is_one_instance_per_mention_with_duplicates():
    instances = build_instances([CONV], ENTITY2ID, ITEMS, "crslab")
    assert by_key(instances) == [("c1", 1, (3,)), ("c1", 1, (1,)), ("c1", 3, (3,)), ("c1", 3, (3,)),
                                 ("c1", 3, (4,)), ("c1", 3, (1,)), ("c1", 5, (1,))]
    assert [(i.conv_id, i.turn_index) for i in unique_turns(instances)] == [("c1", 1), ("c1", 3), ("c1", 5)]


def test_unknown_protocol_and_bad_role_are_named():
    with pytest.raises(ValueError, match="unknown protocol"):
        build_instances([CONV], ENTITY2ID, ITEMS, "nope")
    bad = {"conv_id": "c9", "dialog": [utt(0, "Seeker"), utt(1, "SEEKER")]}
    with pytest.raises(ValueError, match=r"conversation c9, utterance 1 .*role"):
        merge_turns(bad, ENTITY2ID)


def test_dialogue_lengths_count_merged_turns():
    assert dialogue_lengths([CONV, CONV2], ENTITY2ID) == {"c1": 6, "c2": 3}


def test_raw_redial_conversion_and_seeker_answers():
    raw = {"conversationId": 77, "initiatorWorkerId": 1, "respondentWorkerId": 2,
           "movieMentions": {"11": "A", "22": "B", "44": "No URI (1999)"},
           "initiatorQuestions": {"11": {"suggested": 0, "seen": 1, "liked": 1},
                                  "22": {"suggested": 1, "seen": 0, "liked": 2},
                                  "44": {"suggested": 1, "seen": 2, "liked": 1},
                                  "99": {"suggested": 1, "seen": 1, "liked": 1}},
           "messages": [{"senderWorkerId": 1, "text": "I liked @11"},
                        {"senderWorkerId": 2, "text": "try @22 or @33"},
                        {"senderWorkerId": 2, "text": "really, or @44"}]}
    uris = {"11": A, "22": B, "33": C, "99": "<not in kg>"}
    conv = raw_redial_to_conversation(raw, uris)
    assert conv["conv_id"] == "77"
    assert [(u["role"], u["movies"]) for u in conv["dialog"]] == [
        ("Seeker", [A]), ("Recommender", [B]), ("Recommender", ["44"])]  # @33 not in movieMentions
    answers = seeker_answers([raw, {"conversationId": 78, "initiatorQuestions": {}}], uris, ENTITY2ID)
    assert set(answers) == {"77"}
    assert {item: (a.seen, a.liked) for item, a in answers["77"].items()} == {1: (1, 1), 2: (0, 2), 6: (2, 1)}


def test_loaders_name_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="movie_ids.json"):
        load_item_ids(tmp_path)
    (tmp_path / "entity2id.json").write_text("{\n  \"a\": 1,\n  oops\n}")
    with pytest.raises(ValueError, match=r"entity2id.json:3"):
        load_entity2id(tmp_path)


@pytest.mark.realdata
def test_real_redial_test_split_instances():
    raw_path = SHARED / "redial" / "raw" / "test_data.jsonl"
    if not raw_path.is_file():
        pytest.skip("shared ReDial data not present")
    kg = SHARED / "redial" / "kg"
    entity2id = load_entity2id(kg)
    items = load_item_ids(kg)
    uris = load_movie_uris(kg / "id2entity.jsonl")
    convs = [raw_redial_to_conversation(r, uris) for r in load_jsonl(raw_path)]
    counts = {p: len(build_instances(convs, entity2id, items, p)) for p in ("full", "dedup", "crslab")}
    assert len(convs) == 1342
    # dedup is a strict subset of full; crslab has at least one sample per full turn
    assert 0 < counts["dedup"] < counts["full"] < counts["crslab"]


@pytest.mark.realdata
def test_built_redial_test_split_matches_raw_instances():
    """The builder's CRSLab-format test split and our raw-ReDial path give the same
    full/dedup instances (the builder keeps one copy of a movie repeated in a message,
    so only the crslab protocol may differ)."""
    built_dir = Path(__file__).resolve().parents[1] / "data" / "dataset" / "redial" / "nltk"
    if not (built_dir / "test_data.json").is_file() or not SHARED.is_dir():
        pytest.skip("built ReDial (make data) or shared data not present")
    from crslab_mscrs.evaluation.instances import load_split

    entity2id, items = load_entity2id(built_dir), load_item_ids(built_dir)
    uris = load_movie_uris(SHARED / "redial" / "kg" / "id2entity.jsonl")
    raw = [raw_redial_to_conversation(r, uris) for r in load_jsonl(SHARED / "redial" / "raw" / "test_data.jsonl")]
    built = load_split(built_dir, "test")
    for protocol in ("full", "dedup"):
        assert by_key(build_instances(built, entity2id, items, protocol)) == \
            by_key(build_instances(raw, entity2id, items, protocol))
