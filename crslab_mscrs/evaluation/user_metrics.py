"""User-centric metrics SR and RDL (Kostric and Balog, SIGIR '26; docs/evaluation.md).

Both use the ReDial seeker questionnaire (``initiatorQuestions``, see
:func:`crslab_mscrs.evaluation.instances.seeker_answers`) and only the TOP-1 item of the
model's ranking at each scored recommendation turn.

- reward of an item for a dialogue: ``1.0`` if the seeker liked it (``liked == 1``), else
  ``0.5`` if the seeker had seen it (``seen == 1``), else ``0``.
- **SR** (success rate): fraction of dialogues in which at least one scored turn's top-1
  item has a positive reward (liked or seen).
- **RDL**: per dialogue ``Σ_turns reward(top-1) / dialogue length``, averaged over
  dialogues. The dialogue length is the number of merged turns of the whole dialogue
  (both roles, CRSLab merging; :func:`crslab_mscrs.evaluation.instances.dialogue_lengths`).

Dialogues counted: those with at least one scored turn AND a non-empty questionnaire
(a dialogue whose seeker answered nothing cannot be judged; ReDial test has 11).
INSPIRED has no questionnaire, so SR/RDL are not defined there.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, Iterable, Mapping, Sequence

from crslab_mscrs.evaluation.instances import RecInstance, SeekerAnswer, TurnKey

REWARD_LIKED = 1.0
REWARD_SEEN = 0.5


def item_reward(answer: SeekerAnswer) -> float:
    """Reward of one recommended item given the seeker's answer for it."""
    if answer.liked == 1:
        return REWARD_LIKED
    if answer.seen == 1:
        return REWARD_SEEN
    return 0.0


def user_metrics(instances: Iterable[RecInstance], rankings: Mapping[TurnKey, Sequence[int]],
                 answers: Mapping[str, Mapping[int, SeekerAnswer]],
                 dialogue_lengths: Mapping[str, int]) -> Dict[str, float]:
    """SR and RDL over the distinct turns of ``instances`` (top-1 of each turn's ranking).

    A scored turn without a ranking raises ``KeyError``. Returns ``{"SR", "RDL",
    "n_dialogues"}``; with no judgeable dialogue SR/RDL are NaN (report "n/a").
    """
    turns_by_dialogue: Dict[str, set] = defaultdict(set)
    for instance in instances:
        if instance.conv_id in answers and answers[instance.conv_id]:
            turns_by_dialogue[instance.conv_id].add(instance.turn_index)
    successes = 0
    rdl_total = 0.0
    for conv_id, turn_indices in turns_by_dialogue.items():
        if conv_id not in dialogue_lengths:
            raise KeyError(f"no dialogue length for conversation {conv_id}")
        rewards = []
        for turn_index in sorted(turn_indices):
            key = (conv_id, turn_index)
            if key not in rankings:
                raise KeyError(f"no ranking for scored turn (conv_id, turn_index) = {key}")
            # an empty ranking (the standard Naive before any mention) recommends nothing: reward 0
            answer = answers[conv_id].get(rankings[key][0]) if rankings[key] else None
            rewards.append(item_reward(answer) if answer is not None else 0.0)
        successes += any(reward > 0 for reward in rewards)
        rdl_total += sum(rewards) / dialogue_lengths[conv_id]
    count = len(turns_by_dialogue)
    if count == 0:
        return {"SR": float("nan"), "RDL": float("nan"), "n_dialogues": 0.0}
    return {"SR": successes / count, "RDL": rdl_total / count, "n_dialogues": float(count)}
