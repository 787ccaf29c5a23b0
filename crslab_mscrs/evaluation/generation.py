"""Generation metrics for conversational recommenders, on word tokens.

Every function takes already tokenised text (``list[str]``); :func:`tokenize` splits raw
text with a regular expression, so nothing needs downloaded NLTK data.

Sources of the definitions:

* Dist-n: Li et al., 2016, "A Diversity-Promoting Objective Function for Neural
  Conversation Models" (distinct n-grams / total n-grams, here ``dist_ratio``). CRS papers
  (KGSF, KBRD, CRSLab, MSCRS) divide the number of distinct n-grams by the number of
  replies instead (here ``dist_per_reply``); :func:`distinct` returns both.
* BLEU: Papineni et al., 2002, sentence level, smoothed with method 1 of Chen and Cherry,
  2014 (``nltk.translate.bleu_score.SmoothingFunction().method1``). ``bleu@n`` follows
  CRSLab: the brevity-penalised precision of n-grams of order n alone; pass
  ``cumulative=True`` for the usual geometric mean of orders 1..n.
* ROUGE-N / ROUGE-L: Lin, 2004, F1 of clipped n-gram overlap / of the longest common
  subsequence; the best reference counts.
* Perplexity: ``exp(sum of token NLL / number of tokens)``.
* Embedding metrics: Liu et al., 2016, "How NOT To Evaluate Your Dialogue System"
  (embedding average; vector extrema from Forgues et al., 2014; greedy matching from Rus and
  Lintean, 2012). They need real word vectors; without them every function returns ``None``
  ("n/a"): nothing here ever invents vectors.

:func:`paper_convention_metrics` scores the same replies the way the papers' scripts do
(UniCRS / MSCRS ``evaluate_conv.py``: whitespace tokens, case kept, unsmoothed BLEU, counts over
non-empty replies), so that a reader can set our numbers next to theirs; always labelled
"paper conventions".
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

Tokens = List[str]
NGram = Tuple[str, ...]
WordVectorLookup = Callable[[str], Optional[np.ndarray]]
"""Maps a word to its vector, or to ``None`` when the word has no vector."""

EMBEDDING_METRICS = ("greedy", "average", "extreme")
ITEM_PLACEHOLDER_TOKENS = frozenset({"__item__", "<movie>", "[movie]", "<item>"})
_ITEM_MENTION = re.compile(r"@\d+")
_WORD = re.compile(r"@\d+|\w+(?:['\u2019]\w+)*|[^\w\s]", re.UNICODE)
_SMOOTHING = SmoothingFunction().method1


def tokenize(text: str, lowercase: bool = False) -> Tokens:
    """Split text into words, ``@<id>`` item mentions and punctuation marks.

    ``"Don't miss @123!"`` -> ``["Don't", "miss", "@123", "!"]``. Pure regex: no NLTK data.
    """
    tokens = _WORD.findall(text)
    return [token.lower() for token in tokens] if lowercase else tokens


def ngrams(tokens: Sequence[str], n: int) -> List[NGram]:
    """The word n-grams of a token sequence, in order (empty if it is shorter than ``n``)."""
    if n < 1:
        raise ValueError(f"n-gram order must be >= 1, got {n}")
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct(replies: Sequence[Sequence[str]], n: int) -> Dict[str, float]:
    """Dist-n of a set of generated replies, in both conventions.

    Returns a dict with ``distinct_ngrams`` (distinct word n-grams over all replies),
    ``total_ngrams``, ``num_replies``, ``dist_per_reply`` = distinct / number of replies
    (the CRS convention, CRSLab's ``dist@n``) and ``dist_ratio`` = distinct / total
    n-grams (Li et al., 2016; 0.0 when no reply has n tokens).
    """
    if len(replies) == 0:
        raise ValueError("distinct() needs at least one reply")
    seen = set()
    total = 0
    for reply in replies:
        grams = ngrams(list(reply), n)
        total += len(grams)
        seen.update(grams)
    return {
        "n": n,
        "distinct_ngrams": len(seen),
        "total_ngrams": total,
        "num_replies": len(replies),
        "dist_per_reply": len(seen) / len(replies),
        "dist_ratio": len(seen) / total if total else 0.0,
    }


def bleu(hypothesis: Sequence[str], references: Sequence[Sequence[str]], n: int,
         cumulative: bool = False) -> float:
    """Smoothed sentence BLEU of order ``n`` (see the module docstring).

    0.0 for an empty hypothesis, and (individual order) for one shorter than ``n`` tokens.
    """
    if not 1 <= n <= 4:
        raise ValueError(f"BLEU order must be in 1..4, got {n}")
    references = [list(ref) for ref in references]
    if not references:
        raise ValueError("bleu() needs at least one reference")
    if len(hypothesis) == 0 or (not cumulative and len(hypothesis) < n):
        return 0.0  # no n-gram of order n can match (nltk's smoothing would give 0.1 here)
    if cumulative:
        weights = tuple(1.0 / n for _ in range(n))
    else:
        weights = tuple(1.0 if order == n else 0.0 for order in range(1, 5))
    return float(sentence_bleu(references, list(hypothesis), weights=weights,
                               smoothing_function=_SMOOTHING))


def _f1(overlap: int, hyp_count: int, ref_count: int) -> float:
    if overlap == 0 or hyp_count == 0 or ref_count == 0:
        return 0.0
    precision = overlap / hyp_count
    recall = overlap / ref_count
    return 2 * precision * recall / (precision + recall)


def rouge_n(hypothesis: Sequence[str], references: Sequence[Sequence[str]], n: int) -> float:
    """ROUGE-N F1: clipped n-gram overlap with the best-matching reference (Lin, 2004)."""
    hyp_grams = Counter(ngrams(list(hypothesis), n))
    best = 0.0
    for reference in references:
        ref_grams = Counter(ngrams(list(reference), n))
        overlap = sum((hyp_grams & ref_grams).values())
        best = max(best, _f1(overlap, sum(hyp_grams.values()), sum(ref_grams.values())))
    return best


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token sequences (dynamic programming)."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for token_a in a:
        current = [0]
        for j, token_b in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if token_a == token_b else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(hypothesis: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """ROUGE-L F1: P = LCS/|hyp|, R = LCS/|ref|, best reference (Lin, 2004, with beta = 1)."""
    best = 0.0
    for reference in references:
        best = max(best, _f1(lcs_length(hypothesis, reference), len(hypothesis), len(reference)))
    return best


def perplexity(total_nll: float, num_tokens: int) -> float:
    """``exp(total_nll / num_tokens)`` from a summed token negative log-likelihood (nats)."""
    if num_tokens <= 0:
        raise ValueError(f"perplexity needs a positive token count, got {num_tokens}")
    try:
        return math.exp(total_nll / num_tokens)
    except OverflowError:
        return math.inf


def is_item_mention(token: str) -> bool:
    """True for an item placeholder (``__item__``, ``<movie>``...) or a ReDial ``@<movieId>`` mention."""
    return token in ITEM_PLACEHOLDER_TOKENS or _ITEM_MENTION.fullmatch(token) is not None


def item_ratio(replies: Sequence[Sequence[str]],
               is_item_token: Callable[[str], bool] = is_item_mention) -> float:
    """Share of replies that recommend (mention) at least one item."""
    if len(replies) == 0:
        raise ValueError("item_ratio() needs at least one reply")
    return sum(any(is_item_token(token) for token in reply) for reply in replies) / len(replies)


# --------------------------------------------------------------------------- embeddings
def _word_vectors(tokens: Sequence[str], lookup: WordVectorLookup) -> np.ndarray:
    vectors = [lookup(token) for token in tokens]
    vectors = [np.asarray(v, dtype=np.float64) for v in vectors if v is not None]
    return np.stack(vectors) if vectors else np.zeros((0, 0))


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norm) if norm > 0 else 0.0


def _cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def _extrema(vectors: np.ndarray) -> np.ndarray:
    """Per dimension, the value of largest magnitude, sign kept (Forgues et al., 2014)."""
    rows = np.abs(vectors).argmax(axis=0)
    return vectors[rows, np.arange(vectors.shape[1])]


def _best_over_references(hypothesis, references, lookup, score) -> Optional[float]:
    if lookup is None:
        return None
    hyp = _word_vectors(hypothesis, lookup)
    best = 0.0
    for reference in references:
        ref = _word_vectors(reference, lookup)
        if len(hyp) and len(ref):
            best = max(best, score(hyp, ref))
    return best


def embedding_average(hypothesis: Sequence[str], references: Sequence[Sequence[str]],
                      lookup: Optional[WordVectorLookup]) -> Optional[float]:
    """Cosine of the mean word vectors (best reference); ``None`` without word vectors."""
    return _best_over_references(hypothesis, references, lookup,
                                 lambda h, r: _cosine(h.mean(axis=0), r.mean(axis=0)))


def vector_extrema(hypothesis: Sequence[str], references: Sequence[Sequence[str]],
                   lookup: Optional[WordVectorLookup]) -> Optional[float]:
    """Cosine of the extrema vectors (best reference); ``None`` without word vectors."""
    return _best_over_references(hypothesis, references, lookup,
                                 lambda h, r: _cosine(_extrema(h), _extrema(r)))


def greedy_matching(hypothesis: Sequence[str], references: Sequence[Sequence[str]],
                    lookup: Optional[WordVectorLookup]) -> Optional[float]:
    """Symmetric greedy word matching by cosine (best reference); ``None`` without word vectors."""
    def score(h, r):
        sims = _cosine_matrix(h, r)
        return float((sims.max(axis=1).mean() + sims.max(axis=0).mean()) / 2)

    return _best_over_references(hypothesis, references, lookup, score)


def embedding_metrics(hypothesis: Sequence[str], references: Sequence[Sequence[str]],
                      lookup: Optional[WordVectorLookup]) -> Optional[Dict[str, float]]:
    """``{"greedy", "average", "extreme"}`` for one reply, or ``None`` ("n/a") without vectors.

    A reply (or every reference) with no known word scores 0.0.
    """
    if lookup is None:
        return None
    return {
        "greedy": greedy_matching(hypothesis, references, lookup),
        "average": embedding_average(hypothesis, references, lookup),
        "extreme": vector_extrema(hypothesis, references, lookup),
    }


# --------------------------------------------------------------------------- corpus level
def corpus_generation_metrics(hypotheses: Sequence[Sequence[str]],
                              references: Sequence[Sequence[Sequence[str]]],
                              lookup: Optional[WordVectorLookup] = None,
                              is_item_token: Callable[[str], bool] = is_item_mention,
                              max_n: int = 4) -> Dict[str, Optional[float]]:
    """All generation metrics over a corpus of tokenised replies.

    ``references[i]`` is the list of reference token lists of ``hypotheses[i]``.
    Sentence-level scores (BLEU, ROUGE, embeddings) are averaged over replies. Keys:
    ``dist@n`` (per reply, CRS convention), ``dist_ratio@n``, ``bleu@n``, ``rouge@1``,
    ``rouge@2``, ``rouge@L``, ``item_ratio`` and ``greedy``/``average``/``extreme``
    (``None`` = n/a when ``lookup`` is ``None``).
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    if len(hypotheses) == 0:
        raise ValueError("corpus_generation_metrics() needs at least one reply")
    result: Dict[str, Optional[float]] = {}
    for n in range(1, max_n + 1):
        dist = distinct(hypotheses, n)
        result[f"dist@{n}"] = dist["dist_per_reply"]
        result[f"dist_ratio@{n}"] = dist["dist_ratio"]
    for n in range(1, max_n + 1):
        result[f"bleu@{n}"] = float(np.mean([bleu(h, refs, n) for h, refs in zip(hypotheses, references)]))
    result["rouge@1"] = float(np.mean([rouge_n(h, refs, 1) for h, refs in zip(hypotheses, references)]))
    result["rouge@2"] = float(np.mean([rouge_n(h, refs, 2) for h, refs in zip(hypotheses, references)]))
    result["rouge@L"] = float(np.mean([rouge_l(h, refs) for h, refs in zip(hypotheses, references)]))
    result["item_ratio"] = item_ratio(hypotheses, is_item_token)
    for name in EMBEDDING_METRICS:
        result[name] = None
    if lookup is not None:
        per_reply = [embedding_metrics(h, refs, lookup) for h, refs in zip(hypotheses, references)]
        for name in EMBEDDING_METRICS:
            result[name] = float(np.mean([scores[name] for scores in per_reply]))
    return result


# --------------------------------------------------------------------------- paper conventions
@dataclass(frozen=True)
class PaperConventionScores:
    """Generation scores as the papers' own scripts compute them (see :func:`paper_convention_metrics`).

    Not comparable with :func:`corpus_generation_metrics` (other tokens, no smoothing, other
    denominators): reported beside it under the label "paper conventions"."""
    bleu: Tuple[float, float, float, float]   # bleu@1..4
    dist: Tuple[float, float, float, float]   # dist@1..4
    item_ratio: float                         # <movie> slots per counted reply
    sent_cnt: int                             # replies counted (non-empty after the prefix)
    system_prefix: bool                       # "System: " prepended (MSCRS) or not (UniCRS)

    def as_dict(self) -> Dict[str, float]:
        out: Dict[str, float] = {f"bleu@{n}": value for n, value in enumerate(self.bleu, start=1)}
        out.update({f"dist@{n}": value for n, value in enumerate(self.dist, start=1)})
        out.update(item_ratio=self.item_ratio, sent_cnt=self.sent_cnt, system_prefix=float(self.system_prefix))
        return out


SYSTEM_PREFIX = "System: "
_SLOT = re.compile(r"<movie>")


def _unsmoothed_bleu(hypothesis: Sequence[str], reference: Sequence[str], n: int) -> float:
    """nltk's ``sentence_bleu([reference], hypothesis, weights)`` with weight 1 on order ``n``
    and no smoothing: a reply with no matching n-gram of that order scores 0."""
    import warnings

    weights = [0.0] * 4
    weights[n - 1] = 1.0
    with warnings.catch_warnings():  # nltk warns about zero counts; the score is then ~0
        warnings.simplefilter("ignore")
        return float(sentence_bleu([list(reference)], list(hypothesis), weights))


def paper_convention_metrics(predictions: Sequence[str], references: Sequence[str],
                             system_prefix: bool = False,
                             slot_counts: Optional[Sequence[int]] = None) -> PaperConventionScores:
    """BLEU@1..4, Dist@1..4 and item ratio as UniCRS's ``src/evaluate_conv.py``
    (``ConvEvaluator``, wxl1999/UniCRS) computes them; ``system_prefix`` prepends "System: " to
    prediction and reference, as MSCRS's conversation evaluation does:

    - raw strings stripped, split on whitespace, case kept;
    - BLEU@n: unsmoothed nltk sentence BLEU of order n alone, summed over ALL replies;
    - Dist@n: distinct n-grams over all replies;
    - item ratio: number of ``<movie>`` slots (``slot_counts``: the slots each reply had before
      they were filled with names, when the predictions given are the filled replies);
    - each divided by ``sent_cnt``, the number of non-empty predictions.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    prefix = SYSTEM_PREFIX if system_prefix else ""
    predictions = [(prefix + p).strip() for p in predictions]
    references = [(prefix + r).strip() for r in references]
    sent_cnt = sum(1 for p in predictions if len(p) > 0)
    bleu_sums, seen = [0.0] * 4, [set() for _ in range(4)]
    for prediction, reference in zip(predictions, references):
        hyp, ref = prediction.split(), reference.split()
        for n in range(1, 5):
            seen[n - 1].update(ngrams(hyp, n))
            bleu_sums[n - 1] += _unsmoothed_bleu(hyp, ref, n)
    slots = sum(slot_counts) if slot_counts is not None else sum(len(_SLOT.findall(p)) for p in predictions)
    if sent_cnt == 0:  # the script reports 0 for everything
        return PaperConventionScores((0.0,) * 4, (0.0,) * 4, 0.0, 0, system_prefix)
    return PaperConventionScores(tuple(s / sent_cnt for s in bleu_sums), tuple(len(s) / sent_cnt for s in seen),
                                 slots / sent_cnt, sent_cnt, system_prefix)
