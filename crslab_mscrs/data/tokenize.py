"""Word tokenisation that needs no downloaded NLTK data.

``nltk.word_tokenize`` first splits sentences with the *punkt* model, which must be
downloaded. We split sentences with a small regular expression instead (a period, ``!``
or ``?`` run followed by white space) and tokenise each sentence with NLTK's
``NLTKWordTokenizer`` (the improved Penn-Treebank rules that ``word_tokenize`` uses
internally; pure regular expressions, no data files). Case is kept, as in CRSLab's
ReDial ``nltk`` data (e.g. ``["helo", "how", "can", "I", "help", "?"]``). Treebank
quote tokens (`````` / ``''``) are normalised back to ``"``.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import List

_SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?])\s+")
_QUOTE_TOKENS = {"``": '"', "''": '"'}


@lru_cache(maxsize=1)
def _treebank():
    from nltk.tokenize.destructive import NLTKWordTokenizer

    return NLTKWordTokenizer()


def split_sentences(text: str) -> List[str]:
    """Rough sentence split on ``.``/``!``/``?`` followed by white space."""
    return [part for part in _SENTENCE_BOUNDARY.split(text.strip()) if part]


def word_tokenize(text: str) -> List[str]:
    """Tokenise ``text`` into words and punctuation, keeping case."""
    tokenizer = _treebank()
    tokens: List[str] = []
    for sentence in split_sentences(text):
        tokens.extend(_QUOTE_TOKENS.get(tok, tok) for tok in tokenizer.tokenize(sentence))
    return tokens
