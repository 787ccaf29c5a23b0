"""Reference baselines that must appear in every table (docs/evaluation.md#baselines).

- ``naive``: the standard Naive of Kostric & Balog (SIGIR '26): the items mentioned so far
  in the conversation (earlier turns, either role), most recent mention first, each once,
  and NOTHING after them. Its rankings are short (empty before the first mention), which is
  legitimate for it alone (:data:`SHORT_RANKINGS`). Under ``dedup`` every label is by
  definition absent from that list, so it scores exactly 0 there.
- ``naive_pop``: the hybrid: Naive's list, then the remaining items in popularity order so
  the ranking is complete. Never called Naive; its ``dedup`` recall at large K comes from
  the popularity fill.
- ``popularity``: items ordered by how often they are mentioned in the TRAIN split (every
  mention by either role counts; ties by position in ``movie_ids.json``). The same list
  for every turn.

All write the :mod:`crslab_mscrs.evaluation.rankings` schema.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Sequence, Union

from crslab_mscrs.evaluation.instances import (RecInstance, build_instances, load_entity2id,
                                               load_item_ids, load_split, merge_turns,
                                               unique_turns)
from crslab_mscrs.evaluation.rankings import MIN_RANKING_LENGTH, RankingRecord

BASELINES = ("naive", "naive_pop", "popularity")
SHORT_RANKINGS = frozenset({"naive"})
"""Baselines whose rankings may be shorter than ``MIN_RANKING_LENGTH`` (read and write them with
:func:`min_ranking_length`)."""


def min_ranking_length(name: str, n_items: int) -> int:
    """Shortest ranking accepted from model or baseline ``name`` over ``n_items`` items."""
    return 0 if name in SHORT_RANKINGS else min(MIN_RANKING_LENGTH, n_items)


def mention_counts(conversations: Iterable[Mapping], entity2id: Mapping[str, int],
                   item_ids: Iterable[int]) -> Counter:
    """``Counter`` of item mentions over all utterances of ``conversations``."""
    items = frozenset(item_ids)
    counts: Counter = Counter()
    for conversation in conversations:
        for turn in merge_turns(conversation, entity2id):
            counts.update(movie for movie in turn.movies if movie in items)
    return counts


def popularity_order(counts: Mapping[int, int], item_ids: Sequence[int]) -> List[int]:
    """All items by descending count; ties (and unseen items) keep ``item_ids`` order."""
    position = {item: index for index, item in enumerate(item_ids)}
    return sorted(position, key=lambda item: (-counts.get(item, 0), position[item]))


def _check_length(length: int, order: Sequence[int]) -> None:
    if length > len(order):
        raise ValueError(f"ranking length {length} exceeds the {len(order)} items available")


def popularity_rankings(turns: Iterable[RecInstance], order: Sequence[int],
                        length: int = MIN_RANKING_LENGTH) -> List[RankingRecord]:
    """The same top-``length`` popular items for every turn."""
    _check_length(length, order)
    top = tuple(order[:length])
    return [RankingRecord(turn.conv_id, turn.turn_index, top) for turn in unique_turns(turns)]


def mentioned_so_far(history_items: Sequence[int]) -> List[int]:
    """The standard Naive ranking: mentioned items, most recent first, each once, nothing else."""
    return list(dict.fromkeys(reversed(history_items)))


def naive_ranking(history_items: Sequence[int], fill_order: Sequence[int], length: int) -> List[int]:
    """The ``naive_pop`` hybrid: mentioned items, most recent first (each once), then
    ``fill_order`` minus those, ``length`` items in all."""
    _check_length(length, fill_order)
    ranked = mentioned_so_far(history_items)
    taken = set(ranked)
    for item in fill_order:
        if len(ranked) >= length:
            break
        if item not in taken:
            ranked.append(item)
    return ranked[:length]


def naive_rankings(turns: Iterable[RecInstance], fill_order: Sequence[int],
                   length: int = MIN_RANKING_LENGTH) -> List[RankingRecord]:
    """One ``naive_pop`` ranking per distinct turn of ``turns``."""
    return [RankingRecord(turn.conv_id, turn.turn_index,
                          tuple(naive_ranking(turn.history_items, fill_order, length)))
            for turn in unique_turns(turns)]


def standard_naive_rankings(turns: Iterable[RecInstance]) -> List[RankingRecord]:
    """One standard Naive ranking (:func:`mentioned_so_far`, possibly empty) per distinct turn."""
    return [RankingRecord(turn.conv_id, turn.turn_index, tuple(mentioned_so_far(turn.history_items)))
            for turn in unique_turns(turns)]


def baseline_rankings(name: str, dataset_dir: Union[str, Path], split: str = "test",
                      length: int = MIN_RANKING_LENGTH) -> List[RankingRecord]:
    """Rankings of baseline ``name`` for every recommendation turn of ``split``.

    Popularity is counted on ``train_data.json`` of the same built dataset; ``length`` does not
    apply to ``naive`` (its rankings are as long as the mentions so far).
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose from {BASELINES}")
    entity2id = load_entity2id(dataset_dir)
    item_ids = load_item_ids(dataset_dir)
    order = popularity_order(mention_counts(load_split(dataset_dir, "train"), entity2id, item_ids),
                             item_ids)
    turns = build_instances(load_split(dataset_dir, split), entity2id, item_ids, "full")
    if name == "popularity":
        return popularity_rankings(turns, order, length)
    if name == "naive":
        return standard_naive_rankings(turns)
    return naive_rankings(turns, order, length)


def rankings_as_mapping(records: Iterable[RankingRecord]) -> Dict:
    """Records -> ``{(conv_id, turn_index): ranked_items}``."""
    return {record.key: record.ranked_items for record in records}
