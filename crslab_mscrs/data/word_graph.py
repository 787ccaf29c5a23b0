"""The word graph KGSF needs (ConceptNet in the paper), built offline.

KGSF (Zhou et al., KDD 2020) encodes the *words* of the context with a GCN over a
ConceptNet sub-graph. ConceptNet is not reachable from these machines, so two sources
are supported, and the build report names the one used:

* ``train_pmi`` (default): positive PMI between concept words that co-occur in the same
  utterance of the TRAIN split only (no leakage from valid/test). With ``N`` utterances,
  ``df(w)`` utterances containing ``w`` and ``c(x, y)`` containing both,
  ``PMI(x, y) = log(c(x, y) * N / (df(x) * df(y)))``. Pairs need ``c >= min_pair_count``
  and ``PMI > 0``; each word keeps its ``top_k`` partners by PMI (then count), and an
  edge is kept when either end keeps it (undirected union).
* ``conceptnet_csv``: a user-supplied ConceptNet assertions dump
  (``/a/[...]\\t/r/Rel\\t/c/en/x[/pos]\\t/c/en/y[/pos]\\t{json}``, plain or ``.gz``),
  filtered to English edges whose two ends are both concept words.

Concept words: lower-cased alphabetic TRAIN tokens (``'`` and ``-`` allowed inside), at
least 2 characters, seen ``min_count`` times, not an English stop word (scikit-learn's
list) nor a chat filler (:data:`FILLER_WORDS`: greetings and generic words such as "like",
"really", "movie", which would otherwise be the top PMI partner of every rare word).
Ids start at 1; 0 is CRSLab's ``pad_word`` and belongs to no word.
"""
from __future__ import annotations

import gzip
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from tqdm import tqdm

_CONCEPT_WORD = re.compile(r"^[a-z][a-z'\-]*[a-z]$")
PMI_RELATION = "co_occurs_with"
#: chat fillers that carry no preference; excluded from the concept words with the stop words
#: and generic chat verbs/adjectives that would otherwise be everyone's PMI partner
FILLER_WORDS = frozenset("""
hi hello hey yes yeah yep yea nope ok okay sure thanks thank bye goodbye welcome lol haha hmm um oh
im n't like liked likes really pretty nice great good movie movies film films watch watched watching
seen see saw think thought know heard guess maybe actually definitely probably lot lots kind sort
type one ones just got get going want wanted need try check sounds sound thing things stuff way time
""".split())


@dataclass
class WordGraph:
    """A concept vocabulary and its undirected, labelled edges."""
    word2id: Dict[str, int]
    edges: List[Tuple[str, str, str]]  # (relation, word, word)
    source: str
    params: dict = field(default_factory=dict)

    def summary(self) -> dict:
        connected = {w for _, a, b in self.edges for w in (a, b)}
        return {"source": self.source, "params": self.params, "n_words": len(self.word2id),
                "n_edges": len(self.edges), "words_with_edges": len(connected)}


def _stop_words() -> frozenset:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) | FILLER_WORDS


def is_concept_candidate(word: str, stop_words: Optional[frozenset] = None) -> bool:
    """Whether a lower-cased token may be a concept word (see module doc)."""
    stop_words = _stop_words() if stop_words is None else stop_words
    return bool(_CONCEPT_WORD.match(word)) and word not in stop_words


def build_concept_vocab(train_utterances: Iterable[Sequence[str]], min_count: int = 2) -> Dict[str, int]:
    """``{word: id}`` (ids from 1, most frequent first) from TRAIN token lists."""
    stop_words = _stop_words()
    counts = Counter(tok.lower() for tokens in train_utterances for tok in tokens)
    words = [w for w, c in counts.items() if c >= min_count and is_concept_candidate(w, stop_words)]
    words.sort(key=lambda w: (-counts[w], w))
    return {w: i for i, w in enumerate(words, start=1)}


def concept_words(tokens: Sequence[str], word2id: Dict[str, int]) -> List[str]:
    """The utterance's concept words (lower-cased, each once, in order): its ``word`` field."""
    seen: List[str] = []
    for tok in tokens:
        low = tok.lower()
        if low in word2id and low not in seen:
            seen.append(low)
    return seen


def build_pmi_graph(train_utterance_words: Iterable[Sequence[str]], word2id: Dict[str, int],
                    top_k: int = 10, min_pair_count: int = 3) -> WordGraph:
    """Positive-PMI co-occurrence graph over ``word2id`` from TRAIN utterances."""
    n_docs = 0
    doc_freq: Counter = Counter()
    pair_count: Counter = Counter()
    for words in tqdm(train_utterance_words, desc="word graph: co-occurrence", leave=False):
        unique = sorted({w for w in words if w in word2id})
        n_docs += 1
        doc_freq.update(unique)
        pair_count.update(combinations(unique, 2))
    partners: Dict[str, List[Tuple[float, int, str]]] = defaultdict(list)
    for (x, y), c in pair_count.items():
        if c < min_pair_count:
            continue
        pmi = math.log(c * n_docs / (doc_freq[x] * doc_freq[y]))
        if pmi <= 0:
            continue
        partners[x].append((pmi, c, y))
        partners[y].append((pmi, c, x))
    kept = set()
    for word, cands in partners.items():
        cands.sort(key=lambda t: (-t[0], -t[1], t[2]))
        for _, _, other in cands[:top_k]:
            kept.add(tuple(sorted((word, other))))
    edges = [(PMI_RELATION, a, b) for a, b in sorted(kept)]
    return WordGraph(word2id, edges, "train_pmi",
                     {"top_k": top_k, "min_pair_count": min_pair_count, "train_utterances": n_docs})


def _conceptnet_word(node: str) -> Optional[str]:
    parts = node.split("/")
    if len(parts) < 4 or parts[1] != "c" or parts[2] != "en":
        return None
    return parts[3].lower()


def read_conceptnet_csv(path, word2id: Dict[str, int]) -> WordGraph:
    """Edges of a ConceptNet assertions dump whose two ends are concept words.

    Raises:
        ValueError: naming ``FILE:LINE`` for a line with fewer than 4 tab-separated fields.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    kept = set()
    lines = 0
    with opener(path, "rt", encoding="utf-8") as handle:
        for line_no, line in enumerate(tqdm(handle, desc="word graph: ConceptNet", leave=False), start=1):
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 4:
                raise ValueError(f"{path}:{line_no}: expected ConceptNet assertion "
                                 f"'uri\\trelation\\tstart\\tend\\tjson', got {len(fields)} field(s)")
            lines += 1
            a, b = _conceptnet_word(fields[2]), _conceptnet_word(fields[3])
            if a is None or b is None or a == b or a not in word2id or b not in word2id:
                continue
            relation = fields[1].rstrip("/").split("/")[-1]
            kept.add((relation,) + tuple(sorted((a, b))))
    edges = sorted(kept)
    return WordGraph(word2id, edges, "conceptnet_csv", {"path": str(path), "assertions_read": lines})


def write_redial_word_graph(graph: WordGraph, out_dir: Path) -> None:
    """``concept2id.json`` + ``conceptnet_subkg.txt`` (``rel\\tword\\tword``; CRSLab's
    ReDial loader keeps the part of each word before ``/``)."""
    from crslab_mscrs.data.crslab_format import write_json

    _check_nonempty(graph)
    write_json(out_dir / "concept2id.json", graph.word2id)
    with (out_dir / "conceptnet_subkg.txt").open("w", encoding="utf-8") as handle:
        for rel, a, b in graph.edges:
            handle.write(f"{rel}\t{a}\t{b}\n")


def write_inspired_word_graph(graph: WordGraph, out_dir: Path) -> None:
    """``word2id.json`` + ``concept_subkg.txt`` (``word\\trel\\tword``) as CRSLab's INSPIRED
    loader reads them."""
    from crslab_mscrs.data.crslab_format import write_json

    _check_nonempty(graph)
    write_json(out_dir / "word2id.json", graph.word2id)
    with (out_dir / "concept_subkg.txt").open("w", encoding="utf-8") as handle:
        for rel, a, b in graph.edges:
            handle.write(f"{a}\t{rel}\t{b}\n")


def _check_nonempty(graph: WordGraph) -> None:
    if not graph.word2id or not graph.edges:
        raise ValueError(f"word graph from {graph.source} is empty ({len(graph.word2id)} words, "
                         f"{len(graph.edges)} edges): KGSF's GCN needs at least one edge; "
                         "use more training conversations or a lower min_pair_count")


def build_word_graph(train_token_lists: List[Sequence[str]], word2id: Dict[str, int],
                     conceptnet_csv=None, top_k: int = 10, min_pair_count: int = 3) -> WordGraph:
    """ConceptNet edges when a dump is given, else the TRAIN PMI graph."""
    if conceptnet_csv:
        return read_conceptnet_csv(conceptnet_csv, word2id)
    return build_pmi_graph((concept_words(toks, word2id) for toks in train_token_lists), word2id,
                           top_k=top_k, min_pair_count=min_pair_count)
