"""Ranking metrics over recommendation instances: Recall@K, NDCG@K, MRR@K.

Two aggregations (docs/evaluation.md, "Ranking metrics"):

- **per turn** (macro; names ``recall@K``, ``ndcg@K``, ``mrr@K``): a metric per instance,
  averaged over instances.

  * ``Recall@K = |labels ∩ top-K| / |labels|``
  * ``NDCG@K = DCG / IDCG`` with ``DCG = Σ_{label in top-K} 1 / log2(rank + 1)`` (rank
    1-based) and ``IDCG = Σ_{i=1}^{min(|labels|, K)} 1 / log2(i + 1)`` (binary relevance,
    Järvelin and Kekäläinen, 2002)
  * ``MRR@K = 1 / rank`` of the best-ranked label if it is within the top K, else 0.

- **per mention** (micro; names ``recall@K_mention`` etc.): every (instance, label) pair
  is one unit scored as a single-label instance (hit, ``1/log2(rank+1)``, ``1/rank``),
  averaged over all pairs. This is what CRSLab's ``rec`` metrics compute per sample.
  Under the ``crslab`` protocol every instance has one label, so both aggregations agree.

Duplicate labels: per-turn metrics treat a turn's labels as a SET (a movie mentioned
twice in a turn counts once); per-mention metrics count each label listed in the
instance (the ``full``/``dedup`` builders list distinct labels; the ``crslab`` protocol
keeps one instance per mention, so a repeated mention is scored twice there, as in CRSLab).

Ties: a ranking is a strict order, so metrics see no ties. Models that produce scores
must break ties deterministically; :func:`ranking_from_scores` orders by descending score,
then by position in the item list (CRSLab's ``torch.topk`` leaves tie order unspecified).
"""
from __future__ import annotations

import math
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

from crslab_mscrs.evaluation.instances import RecInstance, TurnKey

DEFAULT_KS = (1, 10, 50)
METRICS = ("recall", "ndcg", "mrr")
MENTION_SUFFIX = "_mention"


def label_ranks(ranked_items: Sequence[int], labels: Iterable[int]) -> Dict[int, int]:
    """1-based rank of each distinct label found in ``ranked_items`` (absent labels omitted)."""
    wanted = set(labels)
    ranks: Dict[int, int] = {}
    for rank, item in enumerate(ranked_items, start=1):
        if item in wanted and item not in ranks:
            ranks[item] = rank
            if len(ranks) == len(wanted):
                break
    return ranks


def recall_at_k(ranked_items: Sequence[int], labels: Iterable[int], k: int) -> float:
    """Fraction of the distinct labels ranked in the top ``k``."""
    distinct = set(labels)
    if not distinct:
        raise ValueError("an instance needs at least one label")
    ranks = label_ranks(ranked_items[:k], distinct)
    return len(ranks) / len(distinct)


def ndcg_at_k(ranked_items: Sequence[int], labels: Iterable[int], k: int) -> float:
    """Binary-relevance NDCG@k over the distinct labels."""
    distinct = set(labels)
    if not distinct:
        raise ValueError("an instance needs at least one label")
    dcg = sum(1.0 / math.log2(rank + 1) for rank in label_ranks(ranked_items[:k], distinct).values())
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(distinct), k) + 1))
    return dcg / ideal


def mrr_at_k(ranked_items: Sequence[int], labels: Iterable[int], k: int) -> float:
    """Reciprocal rank of the best-ranked label, 0 if none is in the top ``k``."""
    distinct = set(labels)
    if not distinct:
        raise ValueError("an instance needs at least one label")
    ranks = label_ranks(ranked_items[:k], distinct)
    return 1.0 / min(ranks.values()) if ranks else 0.0


_PER_TURN = {"recall": recall_at_k, "ndcg": ndcg_at_k, "mrr": mrr_at_k}


def _single_label_scores(rank: int, k: int) -> Dict[str, float]:
    """Scores of one label found at 1-based ``rank`` (0 = not ranked) under cut-off ``k``."""
    if rank == 0 or rank > k:
        return {"recall": 0.0, "ndcg": 0.0, "mrr": 0.0}
    return {"recall": 1.0, "ndcg": 1.0 / math.log2(rank + 1), "mrr": 1.0 / rank}


def metric_names(ks: Sequence[int] = DEFAULT_KS) -> List[str]:
    """Names in report order: per-turn first, then per-mention."""
    turn = [f"{metric}@{k}" for metric in METRICS for k in ks]
    return turn + [name + MENTION_SUFFIX for name in turn]


def ranking_metrics(instances: Sequence[RecInstance], rankings: Mapping[TurnKey, Sequence[int]],
                    ks: Sequence[int] = DEFAULT_KS, allow_missing: bool = False
                    ) -> Dict[str, float]:
    """Per-turn and per-mention Recall/NDCG/MRR at each ``k``, plus counts.

    ``rankings`` maps ``(conv_id, turn_index)`` to ranked item ids. A turn without a
    ranking raises ``KeyError`` (naming how many and one example) unless ``allow_missing``,
    which scores it as an empty ranking. Returns ``{name: value}`` including
    ``n_instances`` and ``n_mentions``.
    """
    if not instances:
        raise ValueError("no instances to evaluate")
    missing = [inst.key for inst in instances if inst.key not in rankings]
    if missing and not allow_missing:
        raise KeyError(f"{len(missing)} of {len(instances)} instances have no ranking, "
                       f"e.g. (conv_id, turn_index) = {missing[0]}")
    max_k = max(ks)
    turn_sums = {f"{metric}@{k}": 0.0 for metric in METRICS for k in ks}
    mention_sums = dict.fromkeys(turn_sums, 0.0)
    n_mentions = 0
    for inst in instances:
        ranked = rankings.get(inst.key, ())
        for k in ks:
            for metric, fn in _PER_TURN.items():
                turn_sums[f"{metric}@{k}"] += fn(ranked, inst.labels, k)
        ranks = label_ranks(ranked[:max_k], inst.labels)
        for label in inst.labels:
            n_mentions += 1
            for k in ks:
                for metric, value in _single_label_scores(ranks.get(label, 0), k).items():
                    mention_sums[f"{metric}@{k}"] += value
    result = {name: total / len(instances) for name, total in turn_sums.items()}
    result.update({name + MENTION_SUFFIX: total / n_mentions for name, total in mention_sums.items()})
    result["n_instances"] = float(len(instances))
    result["n_mentions"] = float(n_mentions)
    result["n_missing_rankings"] = float(len(missing))
    return result


def ranking_from_scores(scores: Sequence[float], item_ids: Sequence[int], length: int) -> List[int]:
    """Top-``length`` item ids by descending score; ties keep item-list order (deterministic).

    ``scores[i]`` is the score of ``item_ids[i]``. NaN scores are rejected.
    """
    if len(scores) != len(item_ids):
        raise ValueError(f"{len(scores)} scores for {len(item_ids)} items")
    if any(math.isnan(score) for score in scores):
        raise ValueError("NaN score: the ranking would be arbitrary")
    order: List[Tuple[float, int]] = sorted((-score, position) for position, score in enumerate(scores))
    return [item_ids[position] for _, position in order[:length]]
