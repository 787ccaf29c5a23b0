"""Movie mentions in responses: replace them by a placeholder for training, fill them at inference.

UniCRS/MSCRS train the conversation LM on responses whose movie names are replaced by a
``<movie>`` placeholder and, at inference, fill each placeholder with the recommender's
top items (MSCRS paper section 3.5; UniCRS, KDD 2022, section 4.4).

CRSLab-format responses (our builder) carry the movie NAME words where the raw ReDial
text had ``@movieId``, and the turn's item entity ids (``items``). We locate the names by
this documented heuristic (:func:`mask_movie_mentions`):

1. the name of each item is its DBpedia title without the disambiguation suffix
   (``<.../Rio_(2011_film)>`` -> ``rio``), split into lower-case alphanumeric pieces;
2. the response words are split the same way; a CRSLab ``__unk__`` word matches any
   piece (titles often hold rare words that are unknown to the train vocabulary);
3. every exact occurrence of the piece sequence is replaced by ONE placeholder word;
   an immediately following ``( <year> )`` is swallowed too (ReDial writes "Rio (2011)");
4. when an item has no exact occurrence, the best window of the same length (+-1 word)
   with a rapidfuzz ratio >= ``fuzzy_threshold`` (85) is replaced instead;
5. an item still not found is counted (see :class:`MaskStats`) and left untouched.

A one-piece title of at most 4 characters ("Up", "Her", "It") only matches a capitalised
word (when the response has any capital letter at all, i.e. the dataset kept case), so the
pronoun "her" is not taken for the film *Her*.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from rapidfuzz import fuzz

DEFAULT_PLACEHOLDER = "<movie>"
_PIECE = re.compile(r"[a-z0-9]+")
_UNK_WORD = "__unk__"
_WILDCARD = None  # piece that matches anything
_YEAR = re.compile(r"^(1[89]\d\d|20\d\d)$")
_SHORT_TITLE = 4


@dataclass
class MaskStats:
    """How many item mentions were found exactly, fuzzily, or not at all."""

    exact: int = 0
    fuzzy: int = 0
    missing: int = 0
    missing_examples: List[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"exact": self.exact, "fuzzy": self.fuzzy, "missing": self.missing,
                "missing_examples": self.missing_examples[:10]}


def name_pieces(name: str) -> List[str]:
    return _PIECE.findall(name.lower())


def _word_pieces(words: Sequence[str]) -> Tuple[List[Optional[str]], List[int]]:
    """Pieces of the response words and, for each piece, the index of its word."""
    pieces: List[Optional[str]] = []
    owners: List[int] = []
    for index, word in enumerate(words):
        if word == _UNK_WORD:
            pieces.append(_WILDCARD)
            owners.append(index)
            continue
        for piece in _PIECE.findall(word.lower()):
            pieces.append(piece)
            owners.append(index)
    return pieces, owners


def _exact_spans(pieces, target) -> List[Tuple[int, int]]:
    n = len(target)
    spans, start = [], 0
    while start + n <= len(pieces):
        window = pieces[start:start + n]
        if all(p is _WILDCARD or p == t for p, t in zip(window, target)) and \
                any(p is not _WILDCARD for p in window):
            spans.append((start, start + n))
            start += n
        else:
            start += 1
    return spans


def _fuzzy_span(pieces, target, threshold: float) -> Optional[Tuple[int, int]]:
    wanted = " ".join(target)
    best, best_span = threshold, None
    for length in {max(1, len(target) - 1), len(target), len(target) + 1}:
        for start in range(0, len(pieces) - length + 1):
            window = pieces[start:start + length]
            if any(p is _WILDCARD for p in window):
                continue
            score = fuzz.ratio(wanted, " ".join(window))
            if score >= best:
                best, best_span = score, (start, start + length)
    return best_span


def _swallow_year(words: Sequence[str], end: int) -> int:
    """Index after an optional ``( 2011 )`` that directly follows position ``end``."""
    if end + 2 < len(words) and words[end] == "(" and _YEAR.match(words[end + 1]) and words[end + 2] == ")":
        return end + 3
    return end


def mask_movie_mentions(words: Sequence[str], item_names: Sequence[str],
                        placeholder: str = DEFAULT_PLACEHOLDER, fuzzy_threshold: float = 85.0,
                        stats: Optional[MaskStats] = None) -> List[str]:
    """Return ``words`` with every mention of ``item_names`` replaced by ``placeholder``."""
    stats = stats if stats is not None else MaskStats()
    pieces, owners = _word_pieces(words)
    cased = any(ch.isupper() for word in words if word != _UNK_WORD for ch in word)
    word_spans: List[Tuple[int, int]] = []  # [start, end) in word indices
    for name in dict.fromkeys(item_names):
        target = name_pieces(name)
        if not target:
            continue
        spans = _exact_spans(pieces, target)
        if cased and len(target) == 1 and len(target[0]) <= _SHORT_TITLE:
            spans = [(a, b) for a, b in spans if words[owners[a]][:1].isupper()]
        if spans:
            stats.exact += 1
        else:
            fuzzy = None if len(target) == 1 and len(target[0]) <= _SHORT_TITLE else \
                _fuzzy_span(pieces, target, fuzzy_threshold)
            if fuzzy is None:
                stats.missing += 1
                if len(stats.missing_examples) < 10:
                    stats.missing_examples.append(f"{name!r} in {' '.join(words)[:120]!r}")
                continue
            stats.fuzzy += 1
            spans = [fuzzy]
        for start, end in spans:
            word_spans.append((owners[start], _swallow_year(words, owners[end - 1] + 1)))
    if not word_spans:
        return list(words)
    out, position = [], 0
    for start, end in sorted(word_spans):
        if start < position:  # overlapping mention of another title: already replaced
            continue
        out.extend(words[position:start])
        out.append(placeholder)
        position = end
    out.extend(words[position:])
    return out


def placeholder_pattern(placeholder: str = DEFAULT_PLACEHOLDER) -> re.Pattern:
    """Regex for the placeholder as a decoded LM text may spell it (``<movie>``, ``< movie >``)."""
    parts = [re.escape(ch) for ch in placeholder if not ch.isspace()]
    return re.compile(r"\s*".join(parts), flags=re.IGNORECASE)


def fill_placeholders(text: str, item_names: Sequence[str],
                      placeholder: str = DEFAULT_PLACEHOLDER) -> str:
    """Replace the k-th placeholder in ``text`` by ``item_names[k]`` (the recommender's
    k-th best item; the last name is reused when there are more placeholders than names).
    Without names the placeholders stay."""
    if not item_names:
        return text
    counter = iter(range(10 ** 6))

    def replace(_match):
        k = next(counter)
        return item_names[min(k, len(item_names) - 1)]

    return placeholder_pattern(placeholder).sub(replace, text)


def count_placeholders(text: str, placeholder: str = DEFAULT_PLACEHOLDER) -> int:
    return len(placeholder_pattern(placeholder).findall(text))
