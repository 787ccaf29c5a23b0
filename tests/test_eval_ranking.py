"""Ranking metrics on hand-made rankings with known answers."""
import math

import pytest

from crslab_mscrs.evaluation.instances import RecInstance
from crslab_mscrs.evaluation.ranking import (label_ranks, metric_names, mrr_at_k, ndcg_at_k,
                                             ranking_from_scores, ranking_metrics, recall_at_k)

RANKED = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]  # labels 20 and 50 sit at ranks 2 and 5
INV_LOG3, INV_LOG6 = 1 / math.log2(3), 1 / math.log2(6)


def test_label_ranks_are_one_based_and_skip_absent_labels():
    assert label_ranks(RANKED, [50, 20, 999]) == {20: 2, 50: 5}


@pytest.mark.parametrize("k, recall, ndcg, mrr", [
    (1, 0.0, 0.0, 0.0),
    (3, 0.5, INV_LOG3 / (1 + INV_LOG3), 0.5),
    (10, 1.0, (INV_LOG3 + INV_LOG6) / (1 + INV_LOG3), 0.5),
])
def test_two_label_turn(k, recall, ndcg, mrr):
    assert recall_at_k(RANKED, [20, 50], k) == pytest.approx(recall)
    assert ndcg_at_k(RANKED, [20, 50], k) == pytest.approx(ndcg)
    assert mrr_at_k(RANKED, [20, 50], k) == pytest.approx(mrr)


def test_ideal_dcg_is_capped_at_k():
    # 3 labels, K = 1: the ideal ranking has one relevant item in the top 1, so a hit is perfect.
    assert ndcg_at_k([7, 8, 9], [7, 8, 9], 1) == pytest.approx(1.0)
    assert ndcg_at_k([8, 7, 9], [7, 8, 9], 3) == pytest.approx(1.0)


def test_duplicate_labels_count_once_per_turn():
    for fn in (recall_at_k, ndcg_at_k, mrr_at_k):
        assert fn(RANKED, [20, 20, 50], 3) == pytest.approx(fn(RANKED, [20, 50], 3))


def test_empty_labels_are_rejected():
    with pytest.raises(ValueError, match="at least one label"):
        recall_at_k(RANKED, [], 10)


def test_per_turn_versus_per_mention():
    instances = [RecInstance("a", 1, (20, 50), ()), RecInstance("b", 1, (10,), ())]
    rankings = {("a", 1): RANKED, ("b", 1): RANKED}
    result = ranking_metrics(instances, rankings, ks=(1, 3, 10))
    # per turn: turn a has 1 of 2 labels in the top 3, turn b 1 of 1 -> (0.5 + 1) / 2
    assert result["recall@3"] == pytest.approx(0.75)
    # per mention: 3 mentions, hits for 20 and 10 -> 2 / 3
    assert result["recall@3_mention"] == pytest.approx(2 / 3)
    assert result["recall@1"] == pytest.approx(0.5)
    assert result["recall@1_mention"] == pytest.approx(1 / 3)
    # per-mention NDCG/MRR score each label alone: 20 at rank 2, 50 at rank 5, 10 at rank 1
    assert result["ndcg@10_mention"] == pytest.approx((INV_LOG3 + INV_LOG6 + 1.0) / 3)
    assert result["mrr@10_mention"] == pytest.approx((1 / 2 + 1 / 5 + 1) / 3)
    assert result["mrr@10"] == pytest.approx((0.5 + 1.0) / 2)
    assert result["n_instances"] == 2 and result["n_mentions"] == 3
    assert set(metric_names((1, 3, 10))) <= set(result)


def test_single_label_instances_make_both_aggregations_agree():
    instances = [RecInstance("a", 1, (20,), ()), RecInstance("a", 1, (20,), ()),
                 RecInstance("a", 1, (50,), ())]  # crslab protocol: duplicate mention kept
    result = ranking_metrics(instances, {("a", 1): RANKED}, ks=(3,))
    assert result["recall@3"] == pytest.approx(2 / 3) == result["recall@3_mention"]
    assert result["ndcg@3"] == pytest.approx(result["ndcg@3_mention"])


def test_missing_ranking_is_an_error_unless_allowed():
    instances = [RecInstance("a", 1, (20,), ()), RecInstance("zz", 4, (20,), ())]
    with pytest.raises(KeyError, match="1 of 2 instances have no ranking"):
        ranking_metrics(instances, {("a", 1): RANKED})
    result = ranking_metrics(instances, {("a", 1): RANKED}, ks=(10,), allow_missing=True)
    assert result["recall@10"] == pytest.approx(0.5)
    assert result["n_missing_rankings"] == 1


def test_ties_break_by_item_list_order():
    scores = [0.5, 0.9, 0.5, 0.9, 0.1]
    items = [7, 8, 9, 6, 5]
    assert ranking_from_scores(scores, items, 4) == [8, 6, 7, 9]
    # constant scores give the item-list order, not a label-dependent one
    assert ranking_from_scores([0.0] * 5, items, 5) == items


def test_ranking_from_scores_rejects_nan_and_length_mismatch():
    with pytest.raises(ValueError, match="NaN"):
        ranking_from_scores([0.1, float("nan")], [1, 2], 2)
    with pytest.raises(ValueError, match="3 scores for 2 items"):
        ranking_from_scores([0.1, 0.2, 0.3], [1, 2], 2)


def test_crslab_protocol_equals_crslab_own_rec_metrics():
    """Equivalence with CRSLab 0.1.2's Hit/NDCG/MRR (crslab/evaluator/metrics/rec.py) on
    random single-label samples, which is what its rec evaluator averages."""
    import random

    import crslab_mscrs  # noqa: F401  (compat layer: CRSLab's evaluator imports fasttext)
    from crslab.evaluator.metrics.rec import HitMetric, MRRMetric, NDCGMetric

    rng = random.Random(0)
    items = list(range(300))
    instances, rankings = [], {}
    for turn in range(1, 41):
        ranked = rng.sample(items, 100)
        rankings[("c", turn)] = ranked
        for label in rng.sample(ranked[:60], 2) + [rng.choice(items)]:
            instances.append(RecInstance("c", turn, (label,), ()))
    ours = ranking_metrics(instances, rankings, ks=(1, 10, 50))
    for k in (1, 10, 50):
        for name, metric in (("recall", HitMetric), ("ndcg", NDCGMetric), ("mrr", MRRMetric)):
            theirs = [metric.compute(rankings[i.key], i.labels[0], k).value() for i in instances]
            assert ours[f"{name}@{k}"] == pytest.approx(sum(theirs) / len(theirs))
            assert ours[f"{name}@{k}_mention"] == pytest.approx(sum(theirs) / len(theirs))
