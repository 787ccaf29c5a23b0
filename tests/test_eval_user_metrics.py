"""SR and RDL (Kostric and Balog) on a hand example."""
import math

import pytest

from crslab_mscrs.evaluation.instances import RecInstance, SeekerAnswer
from crslab_mscrs.evaluation.user_metrics import item_reward, user_metrics

LIKED, SEEN_ONLY, UNSEEN, UNKNOWN = 1, 2, 3, 4


def ranking(top1):
    return [top1] + [i for i in range(100, 120)]


ANSWERS = {
    "c1": {LIKED: SeekerAnswer(seen=1, liked=1), SEEN_ONLY: SeekerAnswer(seen=1, liked=0)},
    "c2": {UNSEEN: SeekerAnswer(seen=0, liked=2)},
}
LENGTHS = {"c1": 6, "c2": 4, "c3": 5}


def test_item_reward():
    assert item_reward(SeekerAnswer(seen=1, liked=1)) == 1.0
    assert item_reward(SeekerAnswer(seen=0, liked=1)) == 1.0  # liked a suggestion not yet seen
    assert item_reward(SeekerAnswer(seen=1, liked=0)) == 0.5
    assert item_reward(SeekerAnswer(seen=2, liked=2)) == 0.0


def test_sr_and_rdl_hand_example():
    instances = [RecInstance("c1", 1, (7,), ()), RecInstance("c1", 3, (8,), ()),
                 RecInstance("c1", 3, (9,), ()),  # same turn twice (crslab protocol): counted once
                 RecInstance("c2", 1, (7,), ()), RecInstance("c2", 3, (7,), ()),
                 RecInstance("c3", 1, (7,), ())]  # no questionnaire: not judged
    rankings = {("c1", 1): ranking(LIKED), ("c1", 3): ranking(SEEN_ONLY),
                ("c2", 1): ranking(UNKNOWN), ("c2", 3): ranking(UNSEEN), ("c3", 1): ranking(LIKED)}
    result = user_metrics(instances, rankings, ANSWERS, LENGTHS)
    # c1: rewards 1.0 + 0.5 over 6 turns = 0.25, success; c2: 0 + 0 over 4 turns, failure
    assert result["n_dialogues"] == 2
    assert result["SR"] == pytest.approx(0.5)
    assert result["RDL"] == pytest.approx((1.5 / 6 + 0.0) / 2)


def test_only_top1_counts():
    instances = [RecInstance("c1", 1, (7,), ())]
    rankings = {("c1", 1): [UNKNOWN, LIKED] + list(range(100, 110))}
    assert user_metrics(instances, rankings, ANSWERS, LENGTHS)["SR"] == 0.0


def test_no_judgeable_dialogue_gives_nan_and_missing_ranking_is_named():
    result = user_metrics([RecInstance("c3", 1, (7,), ())], {("c3", 1): ranking(1)}, ANSWERS, LENGTHS)
    assert result["n_dialogues"] == 0 and math.isnan(result["SR"]) and math.isnan(result["RDL"])
    with pytest.raises(KeyError, match=r"\('c1', 5\)"):
        user_metrics([RecInstance("c1", 5, (7,), ())], {}, ANSWERS, LENGTHS)
