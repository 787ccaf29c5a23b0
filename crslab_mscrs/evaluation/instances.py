"""Recommendation instances of a test split, under the three protocols of docs/evaluation.md.

Turns are defined exactly as CRSLab 0.1.2 defines them
(``crslab/data/dataset/redial/redial.py::_merge_conv_data``): consecutive utterances of the
same role are merged into one turn, and a movie counts only if its URI is in
``entity2id``. ``turn_index`` is the 0-based index in that merged sequence.

A *recommendation turn* is a ``Recommender`` turn with ``turn_index >= 1`` (at least one
earlier message, as CRSLab's ``len(context_tokens) > 0``) that mentions at least one item
of the item set (``movie_ids.json``). Labels outside the item set cannot be ranked (every
system ranks ``scores[:, item_ids]``), so they are dropped and counted in
:class:`InstanceStats`.

Protocols (Kostric and Balog, SIGIR '26; see ``docs/evaluation.md#protocols``):

- ``full``: labels = the distinct items of the turn, in order of first mention.
- ``dedup``: labels = the distinct items of the turn not mentioned in any earlier turn of
  the conversation (by either role); a turn left without labels is dropped.
- ``crslab``: one instance per (turn, item mention), duplicates kept, as CRSLab's
  ``rec_process_fn`` does; each instance has exactly one label.

Every instance also carries ``history_items``: the item-set items mentioned in earlier
turns, in mention order (duplicates kept), which is what the ``naive`` baseline ranks.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from loguru import logger

from crslab_mscrs.data.turns import group_by_role

PROTOCOLS = ("full", "dedup", "crslab")
ROLES = ("Seeker", "Recommender")
RECOMMENDER = "Recommender"
SPLITS = ("train", "valid", "test")

TurnKey = Tuple[str, int]


@dataclass(frozen=True)
class Turn:
    """One merged turn: consecutive utterances of one role."""

    conv_id: str
    turn_index: int
    role: str
    movies: Tuple[int, ...]
    """Entity ids of the movies mentioned, in order, repeats kept (URIs not in entity2id dropped)."""
    n_messages: int


@dataclass(frozen=True)
class RecInstance:
    """One scored unit: a recommendation turn (or, for ``crslab``, one mention in it)."""

    conv_id: str
    turn_index: int
    labels: Tuple[int, ...]
    history_items: Tuple[int, ...]

    @property
    def key(self) -> TurnKey:
        return (self.conv_id, self.turn_index)


@dataclass
class InstanceStats:
    """Counts that explain how a split became instances (report them with results)."""

    conversations: int = 0
    turns: int = 0
    recommender_turns_with_movies: int = 0
    instances: int = 0
    labels: int = 0
    labels_outside_item_set: int = 0
    turns_dropped_no_new_item: int = 0


def merge_turns(conversation: Mapping, entity2id: Mapping[str, int]) -> List[Turn]:
    """Merge a CRSLab-format conversation's utterances into turns (CRSLab's rule).

    ``conversation`` is ``{"conv_id", "dialog": [{"role", "movies": [uri], ...}]}``.
    Raises ``ValueError`` naming the conversation and utterance on malformed input.
    """
    conv_id = conversation.get("conv_id")
    if conv_id is None:
        raise ValueError(f"conversation without 'conv_id': keys {sorted(conversation)}")
    conv_id = str(conv_id)
    dialog = conversation.get("dialog")
    if not isinstance(dialog, list):
        raise ValueError(f"conversation {conv_id}: 'dialog' must be a list")
    for position, utterance in enumerate(dialog):
        utt_role = utterance.get("role")
        if utt_role not in ROLES:
            raise ValueError(
                f"conversation {conv_id}, utterance {position} (utt_id "
                f"{utterance.get('utt_id')}): role must be one of {ROLES}, got {utt_role!r}")
        if not isinstance(utterance.get("movies", []), list):
            raise ValueError(f"conversation {conv_id}, utterance {position}: 'movies' must be a list")
    return [Turn(conv_id, index, role,
                 tuple(entity2id[uri] for utterance in utterances for uri in utterance.get("movies", [])
                       if uri in entity2id),
                 len(utterances))
            for index, (role, utterances) in enumerate(group_by_role(dialog))]


def _distinct(items: Iterable[int]) -> Tuple[int, ...]:
    return tuple(dict.fromkeys(items))


def instances_from_turns(turns: Sequence[Turn], item_ids: frozenset, protocol: str,
                         stats: Optional[InstanceStats] = None) -> List[RecInstance]:
    """Recommendation instances of one conversation's merged turns under ``protocol``."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {PROTOCOLS}")
    stats = stats if stats is not None else InstanceStats()
    instances: List[RecInstance] = []
    mentioned_before: set = set()
    history: List[int] = []
    for turn in turns:
        stats.turns += 1
        if turn.role == RECOMMENDER and turn.turn_index >= 1 and turn.movies:
            stats.recommender_turns_with_movies += 1
            ranked = [movie for movie in turn.movies if movie in item_ids]
            stats.labels_outside_item_set += len(turn.movies) - len(ranked)
            history_items = tuple(history)
            if protocol == "crslab":
                instances.extend(RecInstance(turn.conv_id, turn.turn_index, (movie,), history_items)
                                 for movie in ranked)
            else:
                labels = _distinct(ranked)
                if protocol == "dedup":
                    labels = tuple(movie for movie in labels if movie not in mentioned_before)
                    if ranked and not labels:
                        stats.turns_dropped_no_new_item += 1
                if labels:
                    instances.append(RecInstance(turn.conv_id, turn.turn_index, labels, history_items))
        mentioned_before.update(turn.movies)
        history.extend(movie for movie in turn.movies if movie in item_ids)
    return instances


def build_instances(conversations: Iterable[Mapping], entity2id: Mapping[str, int],
                    item_ids: Iterable[int], protocol: str,
                    stats: Optional[InstanceStats] = None) -> List[RecInstance]:
    """Instances of a whole split (CRSLab-format conversations) under ``protocol``.

    Pass an :class:`InstanceStats` to collect counts (labels outside the item set etc.).
    """
    stats = stats if stats is not None else InstanceStats()
    items = frozenset(item_ids)
    instances: List[RecInstance] = []
    for conversation in conversations:
        stats.conversations += 1
        instances.extend(instances_from_turns(merge_turns(conversation, entity2id), items,
                                              protocol, stats))
    stats.instances = len(instances)
    stats.labels = sum(len(instance.labels) for instance in instances)
    if stats.labels_outside_item_set:
        logger.warning(f"[{protocol}] {stats.labels_outside_item_set} movie mention(s) of "
                       f"recommendation turns are not in the item set and were not scored")
    return instances


def dialogue_lengths(conversations: Iterable[Mapping], entity2id: Mapping[str, int]) -> Dict[str, int]:
    """``{conv_id: number of merged turns}`` (the dialogue length used by RDL)."""
    return {str(conv["conv_id"]): len(merge_turns(conv, entity2id)) for conv in conversations}


# --------------------------------------------------------------------------------------
# Loading a built CRSLab-format dataset (<data_root>/dataset/<name>/nltk/)
# --------------------------------------------------------------------------------------

def _load_json(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"missing dataset file {path}")
    with path.open("r", encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None


def load_split(dataset_dir: Union[str, Path], split: str) -> List[dict]:
    """``<dataset_dir>/<split>_data.json`` as a list of conversations."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
    path = Path(dataset_dir) / f"{split}_data.json"
    data = _load_json(path)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of conversations, got {type(data).__name__}")
    return data


def load_entity2id(dataset_dir: Union[str, Path]) -> Dict[str, int]:
    return _load_json(Path(dataset_dir) / "entity2id.json")


def load_item_ids(dataset_dir: Union[str, Path]) -> List[int]:
    """Item entity ids (``movie_ids.json``), in file order."""
    path = Path(dataset_dir) / "movie_ids.json"
    items = _load_json(path)
    if not isinstance(items, list) or not all(isinstance(i, int) for i in items):
        raise ValueError(f"{path}: expected a list of int entity ids")
    return items


# --------------------------------------------------------------------------------------
# Raw ReDial (for SR/RDL: the seeker questionnaire `initiatorQuestions`)
# --------------------------------------------------------------------------------------

MOVIE_MENTION = re.compile(r"@(\d+)")


def load_jsonl(path: Union[str, Path]) -> List[dict]:
    """Read a JSON-lines file; errors name ``file:line``."""
    from crslab_mscrs.data.jsonl import read_jsonl

    return read_jsonl(path)


def load_movie_uris(path: Union[str, Path]) -> Dict[str, str]:
    """ReDial movieId (str) -> DBpedia URI, from ``kg/id2entity.jsonl`` (one JSON object).

    Movies without a URI (null there) are left out: the CRSLab-lineage ``entity2id`` keys
    those by the bare movieId, see :func:`movie_entity_key`.
    """
    mapping = _load_json(Path(path))
    if not isinstance(mapping, dict):
        raise ValueError(f"{path}: expected a JSON object movieId -> URI")
    return {str(key): value for key, value in mapping.items() if value}


def movie_entity_key(movie_id: str, movie_uris: Mapping[str, str]) -> str:
    """The ``entity2id`` key of a ReDial movie: its DBpedia URI, or the bare movieId for the
    ~800 movies without one (the CRSLab/C2-CRS ``entity2id`` lists those by id)."""
    return movie_uris.get(str(movie_id), str(movie_id))


def raw_redial_to_conversation(raw: Mapping, movie_uris: Mapping[str, str]) -> dict:
    """A raw ReDial conversation in the CRSLab format (one utterance per raw message).

    Role: ``Seeker`` for the ``initiatorWorkerId`` (or, when absent, the first sender),
    ``Recommender`` otherwise. Movies: ``@<movieId>`` mentions in the text that are listed
    in ``movieMentions`` (when present), as :func:`movie_entity_key`. Text is whitespace-split
    (only instances are derived from it, never generation metrics).
    """
    messages = raw.get("messages") or []
    if "conversationId" not in raw:
        raise ValueError(f"raw ReDial conversation without 'conversationId': keys {sorted(raw)}")
    initiator = raw.get("initiatorWorkerId", messages[0].get("senderWorkerId") if messages else None)
    mentions = raw.get("movieMentions")
    dialog = []
    for index, message in enumerate(messages):
        text = message.get("text", "")
        ids = MOVIE_MENTION.findall(text)
        if mentions is not None:
            ids = [movie_id for movie_id in ids if movie_id in mentions]
        dialog.append({
            "utt_id": index,
            "role": "Seeker" if message.get("senderWorkerId") == initiator else RECOMMENDER,
            "text": text.split(),
            "movies": [movie_entity_key(movie_id, movie_uris) for movie_id in ids],
            "entity": [],
            "word": [],
        })
    return {"conv_id": str(raw["conversationId"]), "dialog": dialog}


@dataclass(frozen=True)
class SeekerAnswer:
    """The seeker's questionnaire answer for one movie (ReDial: 0 no, 1 yes, 2 did not say)."""

    seen: int
    liked: int


def seeker_answers(raw_conversations: Iterable[Mapping], movie_uris: Mapping[str, str],
                   entity2id: Mapping[str, int]) -> Dict[str, Dict[int, SeekerAnswer]]:
    """``{conv_id: {item entity id: SeekerAnswer}}`` from ReDial ``initiatorQuestions``.

    Conversations with an empty or missing questionnaire are left out (nothing to judge).
    Movies are keyed as :func:`movie_entity_key`; those not in ``entity2id`` are skipped.
    """
    answers: Dict[str, Dict[int, SeekerAnswer]] = {}
    for raw in raw_conversations:
        questions = raw.get("initiatorQuestions") or {}
        if not isinstance(questions, dict) or not questions:
            continue
        per_item: Dict[int, SeekerAnswer] = {}
        for movie_id, answer in questions.items():
            key = movie_entity_key(movie_id, movie_uris)
            if key not in entity2id:
                continue
            per_item[entity2id[key]] = SeekerAnswer(seen=int(answer.get("seen", 2)),
                                                    liked=int(answer.get("liked", 2)))
        answers[str(raw["conversationId"])] = per_item
    return answers


def unique_turns(instances: Iterable[RecInstance]) -> List[RecInstance]:
    """One instance per turn key (first wins): what a model must rank for a split."""
    seen: Dict[TurnKey, RecInstance] = {}
    for instance in instances:
        seen.setdefault(instance.key, instance)
    return list(seen.values())
