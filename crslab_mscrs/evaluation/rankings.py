"""The ``rankings.jsonl`` exchange format between a model run and the evaluation.

A model run (``run_crslab.py --rankings-out FILE``) or a baseline writes ONE JSON object
per line, one line per recommendation turn of the test split::

    {"conv_id": "20001", "turn_index": 3, "ranked_items": [4012, 17, 5550, ...]}

- ``conv_id`` (str): the conversation id of the CRSLab-format dataset (``conv_id``), which
  for ReDial is the raw ``conversationId``.
- ``turn_index`` (int >= 1): 0-based index of the turn in the conversation after merging
  consecutive messages of one role, exactly as CRSLab's loaders merge them
  (:func:`crslab_mscrs.evaluation.instances.merge_turns`).
- ``ranked_items`` (list of int): item ENTITY ids (the ids of ``entity2id.json`` that are
  listed in ``movie_ids.json``), best first, no repeats, at least
  :data:`MIN_RANKING_LENGTH` long. The ranking is over the whole item set, so items
  already mentioned in the dialogue are allowed; the protocol decides what counts.

The same file serves every protocol (``full``, ``dedup``, ``crslab``): protocols differ only
in the labels of a turn, never in the model's ranking for it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

MIN_RANKING_LENGTH = 100
"""Shortest accepted ranking: enough for every cut-off we report (1, 10, 50) with room."""

TurnKey = Tuple[str, int]
"""``(conv_id, turn_index)``: identifies one recommendation turn."""

REQUIRED_KEYS = ("conv_id", "turn_index", "ranked_items")


class RankingsFormatError(ValueError):
    """A ``rankings.jsonl`` line violates the schema; the message names file and line."""


@dataclass(frozen=True)
class RankingRecord:
    """One line of ``rankings.jsonl``."""

    conv_id: str
    turn_index: int
    ranked_items: Tuple[int, ...]

    @property
    def key(self) -> TurnKey:
        return (self.conv_id, self.turn_index)

    def to_json(self) -> str:
        return json.dumps({"conv_id": self.conv_id, "turn_index": self.turn_index,
                           "ranked_items": list(self.ranked_items)})


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_ranking_line(line: str, where: str, min_length: int = MIN_RANKING_LENGTH,
                       item_ids: Optional[frozenset] = None) -> RankingRecord:
    """Parse and validate one line; ``where`` (``"file:line"``) prefixes every error."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        raise RankingsFormatError(f"{where}: not valid JSON ({err.msg})") from None
    except RecursionError:
        raise RankingsFormatError(f"{where}: not valid JSON (nested too deeply to parse)") from None
    return ranking_record(obj, where, min_length, item_ids)


def ranking_record(obj, where: str, min_length: int = MIN_RANKING_LENGTH,
                   item_ids: Optional[frozenset] = None) -> RankingRecord:
    """Validate one decoded line (see the module doc); ``where`` prefixes every error."""
    if not isinstance(obj, dict):
        raise RankingsFormatError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in obj]
    if missing:
        raise RankingsFormatError(f"{where}: missing key(s) {missing}")
    conv_id, turn_index, ranked = obj["conv_id"], obj["turn_index"], obj["ranked_items"]
    if not isinstance(conv_id, str) or not conv_id:
        raise RankingsFormatError(f"{where}: 'conv_id' must be a non-empty string, got {conv_id!r}")
    if not _is_int(turn_index) or turn_index < 1:
        raise RankingsFormatError(
            f"{where}: 'turn_index' must be an int >= 1 (a recommendation turn has an earlier "
            f"message), got {turn_index!r}")
    if not isinstance(ranked, list) or not all(_is_int(item) for item in ranked):
        raise RankingsFormatError(f"{where}: 'ranked_items' must be a list of int entity ids")
    if len(ranked) < min_length:
        raise RankingsFormatError(
            f"{where}: 'ranked_items' has {len(ranked)} items, at least {min_length} required")
    if len(set(ranked)) != len(ranked):
        seen, repeated = set(), None
        for item in ranked:
            if item in seen:
                repeated = item
                break
            seen.add(item)
        raise RankingsFormatError(f"{where}: 'ranked_items' repeats item {repeated}")
    if item_ids is not None:
        unknown = [item for item in ranked if item not in item_ids]
        if unknown:
            raise RankingsFormatError(
                f"{where}: 'ranked_items' has {len(unknown)} id(s) outside the item set, "
                f"e.g. {unknown[:3]}")
    return RankingRecord(conv_id, turn_index, tuple(ranked))


def _iter_numbered(path: Path, min_length: int, item_ids: Optional[Iterable[int]]
                   ) -> Iterator[Tuple[int, RankingRecord]]:
    from crslab_mscrs.data.jsonl import JsonlFormatError, iter_jsonl

    allowed = frozenset(item_ids) if item_ids is not None else None
    try:
        for line_no, obj in iter_jsonl(path):
            yield line_no, ranking_record(obj, f"{path}:{line_no}", min_length, allowed)
    except JsonlFormatError as err:
        raise RankingsFormatError(f"{err.path}:{err.line_no}: not valid JSON ({err.reason})") from None


def iter_rankings(path: Union[str, Path], min_length: int = MIN_RANKING_LENGTH,
                  item_ids: Optional[Iterable[int]] = None) -> Iterator[RankingRecord]:
    """Yield validated records of a ``rankings.jsonl`` file (blank lines are skipped)."""
    for _, record in _iter_numbered(Path(path), min_length, item_ids):
        yield record


def read_rankings(path: Union[str, Path], min_length: int = MIN_RANKING_LENGTH,
                  item_ids: Optional[Iterable[int]] = None) -> Dict[TurnKey, Tuple[int, ...]]:
    """Read a ``rankings.jsonl`` file into ``{(conv_id, turn_index): ranked_items}``.

    Raises :class:`RankingsFormatError` naming ``file:line`` on the first invalid line,
    including a second line for the same turn.
    """
    rankings: Dict[TurnKey, Tuple[int, ...]] = {}
    first_line: Dict[TurnKey, int] = {}
    path = Path(path)
    for line_no, record in _iter_numbered(path, min_length, item_ids):
        if record.key in rankings:
            raise RankingsFormatError(
                f"{path}:{line_no}: turn {record.key} already ranked at line "
                f"{first_line[record.key]}")
        rankings[record.key] = record.ranked_items
        first_line[record.key] = line_no
    return rankings


def write_rankings(path: Union[str, Path], records: Iterable[RankingRecord],
                   min_length: int = MIN_RANKING_LENGTH) -> int:
    """Write records as ``rankings.jsonl`` (validating each, one line per turn), atomically;
    returns the number written."""
    from crslab_mscrs.atomic_files import replacing

    path = Path(path)
    count, first_line = 0, {}
    with replacing(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for count, record in enumerate(records, start=1):
            line = record.to_json()
            where = f"{path}:{count} (while writing)"
            parse_ranking_line(line, where, min_length)
            if record.key in first_line:
                raise RankingsFormatError(f"{where}: turn {record.key} already ranked at line {first_line[record.key]}")
            first_line[record.key] = count
            handle.write(line + "\n")
    return count


def write_rankings_file(path: Union[str, Path], rankings: Mapping[TurnKey, Sequence[int]], depth: int) -> int:
    """THE writer of a model run's ``rankings.jsonl`` (MSCRS/UniCRS and CRSLab's models):
    ``{(conv_id, turn_index): ranked entity ids}``, best first, cut to ``depth`` items (and
    required to have that many), sorted by conversation and turn; returns the lines written."""
    records = [RankingRecord(str(conv_id), int(turn_index), tuple(int(i) for i in items[:depth]))
               for (conv_id, turn_index), items in sorted(rankings.items(), key=lambda kv: (str(kv[0][0]), kv[0][1]))]
    return write_rankings(path, records, min_length=depth)


def records_from_mapping(rankings: Dict[TurnKey, List[int]]) -> List[RankingRecord]:
    """``{(conv_id, turn_index): items}`` -> records sorted by conversation and turn."""
    return [RankingRecord(conv_id, turn_index, tuple(items))
            for (conv_id, turn_index), items in sorted(rankings.items())]
