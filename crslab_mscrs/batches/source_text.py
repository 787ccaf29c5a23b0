"""The original words of every sample, read from the built dataset's split files.

CRSLab's processed samples hold ``context_tokens`` / ``response`` as ids of the nltk word
vocabulary (``token2id.json``), which is built from the TRAIN split only; every valid/test
word outside it reads ``__unk__`` (``"Lethal Weapon"`` -> ``"__unk__ __unk__"``). UniCRS and
MSCRS read the raw dialogue text (MSCRS paper section 4.1; UniCRS's ReDial preprocessing keeps
the words), so the MSCRS dataloader takes the words from
``<data_root>/dataset/<name>/<tokenize>/{train,valid,test}_data.json`` instead.

Those files hold ONE utterance per raw message; CRSLab merges consecutive utterances of one
role into a turn by concatenating their word lists (``ReDialDataset._merge_conv_data``,
``InspiredDataset._convert_to_id``). :func:`merge_utterances` applies the same rule, so merged
turn ``t`` of a conversation is the response of the sample tagged ``turn_index == t``
(:mod:`crslab_mscrs.compat.conversation_tags`) and turns ``0..t-1`` are its context.

Which split file belongs to a dataloader: CRSLab's CLI builds the three dataloaders with
``get_dataloader(config, split_samples, vocab)``, without naming the split, so
:func:`match_split` picks the split file that holds the samples' ``conv_id`` s (they are
unique per split in our builds); a tie is broken by comparing the samples' word ids with the
file's words. The dataloader still checks every sample against its lookup
(:func:`turn_ids`), so a wrong or stale file can never silently change the text.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from loguru import logger

from crslab_mscrs.data.turns import group_by_role

SPLIT_NAMES = ("train", "valid", "test")


@dataclass(frozen=True)
class MergedTurn:
    """Consecutive utterances of one role, words concatenated (CRSLab's merge rule)."""

    role: str
    words: Tuple[str, ...]


def merge_utterances(conversation: Mapping, where: str = "conversation") -> List[MergedTurn]:
    """Merge the utterances of a built-dataset conversation into turns (CRSLab's rule).

    Raises ``ValueError`` naming ``where``, the conversation and the utterance on bad input.
    """
    conv_id = conversation.get("conv_id")
    dialog = conversation.get("dialog")
    if not isinstance(dialog, list):
        raise ValueError(f"{where}: conversation {conv_id!r} has no 'dialog' list")
    for position, utterance in enumerate(dialog):
        role, words = utterance.get("role"), utterance.get("text")
        if not isinstance(role, str) or not isinstance(words, list):
            raise ValueError(f"{where}: conversation {conv_id!r}, utterance {position} "
                             f"(utt_id {utterance.get('utt_id')}): needs a 'role' string and a 'text' word list")
    return [MergedTurn(role, tuple(str(word) for utterance in utterances for word in utterance["text"]))
            for role, utterances in group_by_role(dialog)]


class SplitText:
    """Merged turns of every conversation of one split file: ``(conv_id, turn_index)`` ->
    (context turns, response turn)."""

    def __init__(self, split: str, path: Path, conversations: Dict[str, List[MergedTurn]]):
        self.split = split
        self.path = Path(path)
        self.conversations = conversations

    @property
    def conv_ids(self) -> Iterable[str]:
        return self.conversations.keys()

    def lookup(self, conv_id: str, turn_index: int) -> Optional[Tuple[List[MergedTurn], MergedTurn]]:
        """(turns ``0..turn_index-1``, turn ``turn_index``), or None when the file lacks it."""
        turns = self.conversations.get(str(conv_id))
        if turns is None or not 1 <= turn_index < len(turns):
            return None
        return turns[:turn_index], turns[turn_index]


_CACHE: Dict[Tuple[str, int, int], SplitText] = {}


def read_split_text(path: Path, split: str) -> SplitText:
    """Parse one ``<split>_data.json`` (cached per file path, size and modification time, so
    the three dataloaders of a run read each file once)."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    with open(path, encoding="utf-8") as handle:
        try:
            raw = json.load(handle)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a list of conversations, got {type(raw).__name__}")
    conversations: Dict[str, List[MergedTurn]] = {}
    for position, conversation in enumerate(raw):
        if "conv_id" not in conversation:
            raise ValueError(f"{path}: conversation {position} has no 'conv_id'")
        conversations[str(conversation["conv_id"])] = merge_utterances(conversation, where=str(path))
    logger.debug("[MSCRS: read the original text of {} conversations from {}]", len(conversations), path)
    _CACHE[key] = text = SplitText(split, path, conversations)
    return text


def turn_ids(turn: MergedTurn, tok2ind: Mapping[str, int], unk_id: int) -> List[int]:
    """The word ids CRSLab gives this turn (``tok2ind.get(word, unk)``), to check a sample
    against the lookup."""
    return [tok2ind.get(word, unk_id) for word in turn.words]


@dataclass
class SplitMatch:
    """The split file whose conversations are the samples', or None and why not."""

    text: Optional[SplitText]
    reason: str


def sample_conv_ids(samples: Sequence[Mapping]) -> List[str]:
    """Distinct ``conv_id`` s of the tagged samples, in order."""
    ids = (s.get("conv_id") for s in samples if s.get("conv_id") is not None and s.get("turn_index") is not None)
    return list(dict.fromkeys(str(c) for c in ids))


def match_split(folder: Optional[Path], samples: Sequence[Mapping],
                agreement: Optional[Callable[[SplitText], int]] = None) -> SplitMatch:
    """Find which of ``folder/{train,valid,test}_data.json`` holds ``samples``.

    The split holding most of the samples' conversation ids wins; ``agreement(text)`` (e.g.
    how many sample responses have the file's word ids) breaks ties.
    """
    conv_ids = sample_conv_ids(samples)
    if not conv_ids:
        return SplitMatch(None, "the samples carry no conv_id/turn_index tags")
    if folder is None:
        return SplitMatch(None, "no built dataset folder is configured (config keys 'dataset'/'tokenize')")
    folder = Path(folder)
    files = [(split, folder / f"{split}_data.json") for split in SPLIT_NAMES]
    files = [(split, path) for split, path in files if path.is_file()]
    if not files:
        return SplitMatch(None, f"{folder} holds no {{train,valid,test}}_data.json")
    scored = []
    for split, path in files:
        text = read_split_text(path, split)
        coverage = sum(1 for c in conv_ids if c in text.conversations)
        if coverage:
            scored.append((coverage, text))
    if not scored:
        return SplitMatch(None, f"no split file in {folder} holds the samples' conversations "
                                f"(e.g. conv_id {conv_ids[0]!r})")
    best = max(coverage for coverage, _ in scored)
    candidates = [text for coverage, text in scored if coverage == best]
    if len(candidates) > 1 and agreement is not None:
        candidates.sort(key=agreement, reverse=True)
    chosen = candidates[0]
    reason = f"{chosen.path.name}: {best} of {len(conv_ids)} conversations"
    if best < len(conv_ids):
        logger.warning("[MSCRS: {} holds only {} of the {} conversations of these samples; the others "
                       "read CRSLab's word ids]", chosen.path, best, len(conv_ids))
    return SplitMatch(chosen, reason)
