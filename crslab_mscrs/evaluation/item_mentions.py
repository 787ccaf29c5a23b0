"""Does a generated reply name a catalogue item? (``item_ratio`` for word-level generators.)

KBRD and KGSF generate words, movie names included, where UniCRS/MSCRS generate a
``<movie>`` slot that the recommender fills. To give every model the same ``item_ratio``
("share of replies that recommend an item", docs/evaluation.md), a reply of a word-level model
counts as recommending when it holds an item placeholder token (``__item__``, ``@123``...)
or the name of a catalogue item: the same lower-case alphanumeric pieces as
:func:`crslab_mscrs.batches.movie_mentions.name_pieces`, matched exactly and
contiguously. A one-word title ("Her", "Frozen", "Addicted") only counts when the reply's
word is capitalised, so the pronoun "her" or the adjective "frozen" is not taken for a film
(stricter than the mention masking, which only needs this for titles of at most 4 letters:
a generated reply is not known to mention the item).
"""
from __future__ import annotations

import re
from typing import Iterable, Sequence

from crslab_mscrs.evaluation.generation import is_item_mention
from crslab_mscrs.batches.movie_mentions import name_pieces

_WORD = re.compile(r"\S+")


class ItemNameMatcher:
    """Finds catalogue item names in replies (exact piece sequences, see module docstring)."""

    def __init__(self, item_names: Iterable[str]):
        self.titles = set()
        self.one_word_titles = set()
        for name in item_names:
            pieces = tuple(name_pieces(name))
            if not pieces:
                continue
            if len(pieces) == 1:
                self.one_word_titles.add(pieces[0])
            else:
                self.titles.add(pieces)
        self.max_length = max((len(t) for t in self.titles), default=1)

    def mentions_item(self, reply: str) -> bool:
        """True when ``reply`` holds an item placeholder or a catalogue item's name."""
        words = _WORD.findall(reply)
        if any(is_item_mention(word) for word in words):
            return True
        pieces = []
        for word in words:
            for piece in name_pieces(word):
                pieces.append(piece)
                if piece in self.one_word_titles and word[:1].isupper():
                    return True
        for start in range(len(pieces)):
            for length in range(2, min(self.max_length, len(pieces) - start) + 1):
                if tuple(pieces[start:start + length]) in self.titles:
                    return True
        return False

    def recommended(self, replies: Sequence[str]) -> list:
        return [self.mentions_item(reply) for reply in replies]
