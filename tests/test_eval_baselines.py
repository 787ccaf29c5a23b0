"""Naive (standard), naive_pop (hybrid) and Popularity baselines."""
import pytest

from crslab_mscrs.evaluation.baselines import (mention_counts, mentioned_so_far, min_ranking_length,
                                               naive_ranking, naive_rankings, standard_naive_rankings,
                                               popularity_order, popularity_rankings,
                                               rankings_as_mapping)
from crslab_mscrs.evaluation.instances import build_instances
from crslab_mscrs.evaluation.ranking import ranking_metrics

N_ITEMS = 120
ENTITY2ID = {f"<m{i}>": i for i in range(N_ITEMS)}
ITEMS = list(range(N_ITEMS))


def utt(i, role, movies=()):
    return {"utt_id": i, "role": role, "text": ["x"], "movies": [f"<m{m}>" for m in movies],
            "entity": [], "word": []}


def conversation(conv_id, turns):
    return {"conv_id": conv_id, "dialog": [utt(i, role, movies) for i, (role, movies) in enumerate(turns)]}


TEST = [
    conversation("t1", [("Seeker", [5, 6]), ("Recommender", [6, 7]), ("Seeker", [8]),
                        ("Recommender", [5, 9])]),
    conversation("t2", [("Seeker", [2, 1]), ("Recommender", [3]), ("Seeker", [3]), ("Recommender", [3, 4])]),
]


def test_popularity_counts_every_mention_and_breaks_ties_by_item_order():
    train = [conversation("a", [("Seeker", [7, 7]), ("Recommender", [3, 7])]),
             conversation("b", [("Seeker", [3]), ("Recommender", [50])])]
    counts = mention_counts(train, ENTITY2ID, ITEMS)
    assert counts[7] == 3 and counts[3] == 2 and counts[50] == 1
    order = popularity_order(counts, ITEMS)
    assert order[:5] == [7, 3, 50, 0, 1]
    assert sorted(order) == ITEMS


def test_naive_ranking_is_most_recent_first_then_fill():
    assert naive_ranking([1, 2, 1, 3], [5, 3, 4, 2, 1, 6], 5) == [3, 1, 2, 5, 4]
    with pytest.raises(ValueError, match="exceeds the 6 items"):
        naive_ranking([1], [5, 3, 4, 2, 1, 6], 7)


def test_popularity_ranks_every_turn_the_same():
    turns = build_instances(TEST, ENTITY2ID, ITEMS, "crslab")
    records = popularity_rankings(turns, ITEMS, length=100)
    assert [r.key for r in records] == [("t1", 1), ("t1", 3), ("t2", 1), ("t2", 3)]
    assert all(r.ranked_items == tuple(ITEMS[:100]) for r in records)


def test_naive_recall_is_zero_under_dedup_by_construction():
    fill = list(reversed(ITEMS))  # an arbitrary complete order
    turns = build_instances(TEST, ENTITY2ID, ITEMS, "full")
    rankings = rankings_as_mapping(naive_rankings(turns, fill, length=100))
    full = ranking_metrics(turns, rankings, ks=(1, 2))
    assert full["recall@1"] > 0  # it does find repeated mentions under `full`
    dedup = build_instances(TEST, ENTITY2ID, ITEMS, "dedup")
    for instance in dedup:
        prefix = rankings[instance.key][:len(set(instance.history_items))]
        assert prefix and not set(prefix) & set(instance.labels)
    # every dedup turn here has >= 2 earlier distinct items, so the prefix covers K <= 2
    assert all(len(set(i.history_items)) >= 2 for i in dedup)
    scores = ranking_metrics(dedup, rankings, ks=(1, 2))
    assert scores["recall@1"] == scores["recall@2"] == scores["recall@2_mention"] == 0.0


def test_standard_naive_is_the_mentions_so_far_and_nothing_else():
    turns = build_instances(TEST, ENTITY2ID, ITEMS, "full")
    rankings = rankings_as_mapping(standard_naive_rankings(turns))
    # t2 turn 3: mentions so far 2, 1 (seeker), 3 (recommender), 3 (seeker): most recent first, once each
    assert rankings[("t2", 3)] == (3, 1, 2)
    assert mentioned_so_far([1, 2, 1, 3]) == [3, 1, 2]
    assert all(len(ranked) < 100 for ranked in rankings.values())  # short rankings are its definition
    scores = ranking_metrics(turns, rankings, ks=(1, 10, 50))
    assert scores["recall@10"] == scores["recall@50"]  # nothing after the mentions
    dedup = ranking_metrics(build_instances(TEST, ENTITY2ID, ITEMS, "dedup"), rankings, ks=(1, 10, 50))
    assert dedup["recall@50"] == 0.0 and dedup["ndcg@50"] == 0.0
    assert min_ranking_length("naive", 6000) == 0 and min_ranking_length("naive_pop", 6000) == 100


@pytest.mark.realdata
def test_standard_naive_on_the_built_redial_test_split_matches_kostric_and_balog():
    """Kostric & Balog (SIGIR '26), ReDial test: Naive R@1 0.043, R@10 0.090 = R@50 over 3,617 turns
    (full), exactly 0 under dedup (3,372 turns)."""
    from pathlib import Path

    from crslab_mscrs.evaluation.baselines import baseline_rankings
    from crslab_mscrs.evaluation.instances import load_entity2id, load_item_ids, load_split

    built = Path(__file__).resolve().parents[1] / "data" / "dataset" / "redial" / "nltk"
    if not (built / "test_data.json").is_file():
        pytest.skip("built ReDial (make data) not present")
    entity2id, items, test = load_entity2id(built), load_item_ids(built), load_split(built, "test")
    rankings = rankings_as_mapping(baseline_rankings("naive", built))
    full = ranking_metrics(build_instances(test, entity2id, items, "full"), rankings)
    dedup = ranking_metrics(build_instances(test, entity2id, items, "dedup"), rankings)
    assert full["n_instances"] == 3617 and dedup["n_instances"] == 3372
    assert full["recall@1"] == pytest.approx(0.043, abs=0.001)
    assert full["recall@10"] == pytest.approx(0.090, abs=0.0015) and full["recall@50"] == full["recall@10"]
    assert dedup["recall@1"] == dedup["recall@10"] == dedup["recall@50"] == 0.0
