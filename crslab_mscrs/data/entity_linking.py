"""Link non-movie DBpedia entities mentioned in dialogue text (n-gram surface matching).

Method (documented, deterministic):

1. **Surface names from URIs.** ``<http://dbpedia.org/resource/Tom_Hanks__1>`` ->
   ``"tom hanks"``: drop the resource prefix, any ``__suffix`` (duplicate markers such
   as ``__1`` or ``__PersonFunction__1``), a trailing ``_(disambiguation)``, turn
   ``_`` into spaces, lower-case. ``X_film`` genre URIs (``Horror_film``) also get the
   alias ``"x"`` (``"horror"``). Non-DBpedia URIs (home pages) and raw ReDial movie ids
   get no surface name.
2. **Who may claim a name.** Several URIs can share a name (``Drama``,
   ``Drama_(genre)``). Candidates rank: a URI whose name has no disambiguation (0), a
   ``X_film`` alias (1), a ``(genre)`` disambiguation (2), any other disambiguation (3);
   ties go to the entity with more KG edges, then the smaller id. Single-word names only
   accept ranks 0-2, so ``"war"`` never links to ``War_(2014_film)``.
3. **Stop-list.** Names shorter than 3 characters, and names made only of English stop
   words (scikit-learn's list) or everyday chat words (:data:`CHAT_STOP_WORDS`), are
   never linked: "it", "love", "the best" are words, not ``It_(novel)``/``The_Best_(band)``.
4. **Matching.** Lower-cased token n-grams (n = max..1), longest match first, left to
   right, non-overlapping; each linked URI is reported once per utterance, in order.
   A name owned through a non-genre disambiguation (rank 3: ``Growing_Up_(1983_film)``)
   only matches when the text capitalises every word ("Growing Up", not "growing up").

Movies are excluded (``exclude_ids``): they are linked through ReDial's ``@id`` mentions.

The ONE linker of the project: the ReDial builder links dialogue text with
:func:`kg_linker`; interactive mode (``crslab_mscrs/training/chat.py``) links what a user
types with the same linker built from the built dataset folder, on the same
:func:`~crslab_mscrs.data.tokenize.word_tokenize` tokens (:func:`link_typed_text`), so it sees
the entities training saw. Typed movie names (there are no ``@id`` mentions to read) are linked
by :func:`item_name_linker` over ``item_names.json``.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

DBPEDIA_PREFIX = "<http://dbpedia.org/resource/"
_SUFFIX = re.compile(r"__.*$")
_DISAMBIGUATION = re.compile(r"_\(([^()]*)\)$")

CHAT_STOP_WORDS = frozenset("""
hi hello hey yes yeah yep nope ok okay sure thanks thank bye goodbye welcome lol haha
movie movies film films show shows watch watched watching seen see saw like liked likes
love loved good great nice cool awesome fun funny best better bad well really pretty
kind type sort favorite favourite recommend recommendation suggestion suggestions time
today tonight night day days year years old new one two three lot lots think thought
know guess maybe actually definitely probably enjoy enjoyed heard hear look looking
friend friends world dark people life
""".split())


def surface_name(uri: str) -> Tuple[Optional[str], Optional[str]]:
    """``(name, disambiguation)`` of a DBpedia resource URI, or ``(None, None)``."""
    if not (uri.startswith(DBPEDIA_PREFIX) and uri.endswith(">")):
        return None, None
    local = _SUFFIX.sub("", uri[len(DBPEDIA_PREFIX):-1])
    disambiguation = None
    match = _DISAMBIGUATION.search(local)
    if match:
        disambiguation = match.group(1).replace("_", " ").lower()
        local = local[:match.start()]
    name = " ".join(local.replace("_", " ").lower().split())
    return (name or None), disambiguation


def _candidate_names(uri: str) -> List[Tuple[str, int]]:
    """``(name, rank)`` pairs an entity may be linked by (rank: lower wins)."""
    name, disambiguation = surface_name(uri)
    if name is None:
        return []
    if disambiguation is None:
        names = [(name, 0)]
        if name.endswith(" film") and len(name) > len(" film"):
            names.append((name[:-len(" film")], 1))
        return names
    return [(name, 2 if "genre" in disambiguation else 3)]


def _is_stop_name(name: str, stop_words: frozenset) -> bool:
    if len(name) < 3:
        return True
    return all(word in stop_words for word in name.split())


@dataclass
class LinkStats:
    """Counters reported in ``build_report.json``."""
    texts: int = 0  # token lists scanned (ReDial: message text between movie mentions)
    texts_with_entity: int = 0
    mentions: int = 0
    per_entity: Counter = field(default_factory=Counter)

    def as_dict(self, top: int = 15) -> dict:
        return {
            "texts_scanned": self.texts,
            "texts_with_entity": self.texts_with_entity,
            "entity_mentions": self.mentions,
            "distinct_entities": len(self.per_entity),
            "most_linked": [[uri, n] for uri, n in self.per_entity.most_common(top)],
        }


class EntityLinker:
    """Longest-match n-gram linker from token lists to DBpedia URIs (see module doc)."""

    def __init__(self, entity2id: Mapping[str, int], exclude_ids: Iterable[int] = (),
                 degree: Optional[Mapping[int, int]] = None, max_ngram: int = 5,
                 extra_stop_words: Iterable[str] = ()):
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        stop_words = frozenset(ENGLISH_STOP_WORDS) | CHAT_STOP_WORDS | frozenset(extra_stop_words)
        excluded = set(exclude_ids)
        degree = degree or {}
        best: Dict[Tuple[str, ...], Tuple[Tuple[int, int, int], str]] = {}
        for uri, idx in entity2id.items():
            if idx in excluded:
                continue
            for name, rank in _candidate_names(uri):
                words = tuple(name.split())
                if len(words) > max_ngram or _is_stop_name(name, stop_words):
                    continue
                if len(words) == 1 and rank > 2:
                    continue
                key = (rank, -int(degree.get(idx, 0)), idx)
                if words not in best or key < best[words][0]:
                    best[words] = (key, uri)
        self.name_to_uri: Dict[Tuple[str, ...], str] = {w: uri for w, (_, uri) in best.items()}
        self._needs_capitals = {w for w, (key, _) in best.items() if key[0] == 3}
        self.max_ngram = max((len(w) for w in self.name_to_uri), default=0)
        self.stats = LinkStats()

    def __len__(self) -> int:
        return len(self.name_to_uri)

    def find(self, tokens: Sequence[str]) -> List[Tuple[int, int, str]]:
        """``(start, end, uri)`` of every match in ``tokens`` (rules 4 of the module doc)."""
        lowered = [tok.lower() for tok in tokens]
        spans: List[Tuple[int, int, str]] = []
        i = 0
        while i < len(lowered):
            step = 1
            for n in range(min(self.max_ngram, len(lowered) - i), 0, -1):
                words = tuple(lowered[i:i + n])
                uri = self.name_to_uri.get(words)
                if uri is not None and words in self._needs_capitals and \
                        not all(tok[:1].isupper() for tok in tokens[i:i + n]):
                    uri = None
                if uri is not None:
                    spans.append((i, i + n, uri))
                    step = n
                    break
            i += step
        return spans

    def link(self, tokens: Sequence[str]) -> List[str]:
        """URIs of the entities named in ``tokens`` (each once, in order of mention)."""
        found: List[str] = []
        for _, _, uri in self.find(tokens):
            self.stats.mentions += 1
            self.stats.per_entity[uri] += 1
            if uri not in found:
                found.append(uri)
        self.stats.texts += 1
        self.stats.texts_with_entity += bool(found)
        return found


def kg_linker(entity2id: Mapping[str, int], movie_ids: Iterable[int],
              subkg: Mapping[str, list]) -> EntityLinker:
    """The linker of the ReDial builder: every non-movie entity, ties broken by KG degree."""
    from crslab_mscrs.data.kg_subset import kg_degree

    return EntityLinker(entity2id, exclude_ids=set(int(i) for i in movie_ids), degree=kg_degree(subkg))


def link_typed_text(text: str, items: EntityLinker, kg: EntityLinker) -> Tuple[List[str], List[str]]:
    """``(movie keys, entity URIs)`` of a text typed by a user.

    Entities: the KG linker on the whole text, tokenised as the builder tokenises, i.e.
    exactly what the builder links in a ReDial message without ``@id`` mentions (measured on
    every such message of the built ReDial train split: ``tests/test_system_linking.py``).
    Movies: typed names (:func:`item_name_linker`), standing in for the ``@id`` mentions a
    user cannot type. The words of a typed title may also link a KG entity (the builder
    never saw them: it replaced the ``@id`` by the title after linking).
    """
    from crslab_mscrs.data.tokenize import word_tokenize

    tokens = word_tokenize(text)
    movies = list(dict.fromkeys(key for _, _, key in items.find(tokens)))
    return movies, kg.link(tokens)


def _from_table(table: Dict[Tuple[str, ...], str], needs_capitals: Iterable[Tuple[str, ...]]) -> EntityLinker:
    linker = EntityLinker.__new__(EntityLinker)
    linker.name_to_uri = dict(table)
    linker._needs_capitals = set(needs_capitals)
    linker.max_ngram = max((len(w) for w in table), default=0)
    linker.stats = LinkStats()
    return linker


def item_name_linker(item_names: Mapping[int, str], max_ngram: int = 8) -> EntityLinker:
    """Linker of typed movie names (``{entity id: name}`` of ``item_names.json``) to entity ids
    as strings. Same stop-list as the KG linker; a one-word title only matches capitalised
    ("Up", "Frozen"), like the rank-3 names of the KG linker."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    from crslab_mscrs.data.tokenize import word_tokenize

    stop_words = frozenset(ENGLISH_STOP_WORDS) | CHAT_STOP_WORDS
    table: Dict[Tuple[str, ...], str] = {}
    for entity_id in sorted(item_names):
        words = tuple(tok.lower() for tok in word_tokenize(item_names[entity_id]))
        name = " ".join(words)
        if not words or len(words) > max_ngram or _is_stop_name(name, stop_words):
            continue
        table.setdefault(words, str(entity_id))  # a shared title goes to the smaller id
    return _from_table(table, [w for w in table if len(w) == 1])

