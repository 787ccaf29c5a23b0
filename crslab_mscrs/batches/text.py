"""Turning CRSLab's tokenised samples back into the plain text the LM and text encoder read.

CRSLab's ``nltk`` datasets store every turn as ids of a word vocabulary (``vocab['ind2tok']``).
MSCRS/UniCRS feed pretrained sub-word models, so we detokenise to text first and let the
model's own tokenizers re-tokenise it (:mod:`crslab_mscrs.batches.encoding`).

Text format (shared contract): each turn is prefixed ``"User: "`` (seeker) or
``"System: "`` (recommender); turns are joined by the LM's eos token; the reply prompt is
``"System:"`` and the response follows it after one space.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Dict, Iterable, List, Sequence, Tuple

from nltk.tokenize.treebank import TreebankWordDetokenizer

USER_PREFIX = "User: "
SYSTEM_PREFIX = "System: "
REPLY_PROMPT = "System:"
"""The reply prompt that ends every rec / generation input (no trailing space: the
response starts with its own leading space, which keeps byte-level BPE tokens natural)."""

CRSLAB_SPECIAL_TOKENS = frozenset({"__pad__", "__start__", "__end__", "__unk__"})
"""Word-vocabulary specials of CRSLab's nltk datasets; dropped when detokenising
(``__unk__`` words are unknown to the train vocabulary, so their text is lost anyway)."""

_DETOKENIZER = TreebankWordDetokenizer()


def is_recommender(role: str) -> bool:
    """True for CRSLab's ``Recommender`` role (also ``RECOMMENDER`` / ``System``)."""
    role = str(role).lower()
    return role.startswith("recommender") or role == "system"


def context_roles(n_turns: int, response_is_system: bool) -> List[bool]:
    """Roles (True = system) of the ``n_turns`` context turns before a response.

    CRSLab merges consecutive messages of one sender, so merged turns alternate: the turn
    just before the response has the other role, the one before it the same role, etc.
    """
    return [response_is_system if (n_turns - 1 - i) % 2 else not response_is_system
            for i in range(n_turns)]


def turn_text(text: str, is_system: bool) -> str:
    """One turn with its speaker prefix."""
    return (SYSTEM_PREFIX if is_system else USER_PREFIX) + text


def detokenize_words(words: Iterable[str]) -> str:
    """Words -> text (Treebank rules: no space before punctuation, ``do n't`` -> ``don't``)."""
    return _detokenize(tuple(w for w in words if w not in CRSLAB_SPECIAL_TOKENS))


@lru_cache(maxsize=1 << 17)
def _detokenize(words: Tuple[str, ...]) -> str:
    """Cached: nltk's Treebank rules are slow and a response recurs in every later context."""
    return _DETOKENIZER.detokenize(list(words)).strip()


class Detokenizer:
    """Maps CRSLab token-id lists to words / text, caching each distinct turn."""

    def __init__(self, ind2tok: Dict[int, str]):
        self.ind2tok = {int(k): v for k, v in ind2tok.items()}
        self._text_cache: Dict[tuple, str] = {}

    def words(self, token_ids: Sequence[int]) -> List[str]:
        return [self.ind2tok.get(int(t), "__unk__") for t in token_ids]

    def text(self, token_ids: Sequence[int]) -> str:
        key = tuple(token_ids)
        cached = self._text_cache.get(key)
        if cached is None:
            cached = self._text_cache[key] = detokenize_words(self.words(token_ids))
        return cached
