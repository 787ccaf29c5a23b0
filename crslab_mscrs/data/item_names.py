"""``item_names.json``: the display / mention name of every recommendable item.

Written by the dataset builders, read through :class:`ItemNames`, the ONE resolver
entity id -> name used by the movie-mention masking of responses
(:mod:`crslab_mscrs.batches.movie_mentions`), the ``<movie>`` slot filling of generated
replies, interactive mode and the reports. The file is a JSON object
``{"<entity id>": "<movie name>"}`` in ``<dataset dir>/item_names.json``. Names are given
WITHOUT the trailing ``(year)``: the masker swallows a following ``( 2011 )`` itself, and the
responses spell movies the way these names do.

Sources, first hit wins (the count per source is reported):

* ReDial: ``kg/mid2name_redial.json`` (the names our builder writes into the text in
  place of ``@movieId``), then ``items/item_metadata.csv`` ``redial_name`` and its
  IMDb-joined ``ml_title`` (year removed). Keyed by the movie's entity: its DBpedia URI,
  or the raw movieId for the 812 movies without a DBpedia link.
* INSPIRED: the dialogues' own ``movie_name`` annotations for each ``movie_link`` (the
  most frequent spelling, ties to the first seen), then ``items/item_mapping_guess.csv``
  ``inspired_movie_name``.

Items no source names are left out (:class:`ItemNames` then falls back to the DBpedia
title; an entity key that is no DBpedia URI, e.g. a bare ReDial movieId, is never shown
when the file names the item).
"""
from __future__ import annotations

import csv
import json
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional, Tuple
from urllib.parse import unquote

from crslab_mscrs.data.crslab_format import write_json

ITEM_NAMES_FILE = "item_names.json"
_TRAILING_YEAR = re.compile(r"\s*\(\s*\d{4}\s*\)\s*$")
_SPACES = re.compile(r"\s+")

#: entity key (URI or raw id) -> (name, source label)
NamedEntities = Dict[str, Tuple[str, str]]


def clean_name(name: Optional[str]) -> str:
    """``'Headhunter  (2009)'`` -> ``'Headhunter'``; whitespace collapsed; ``''`` if nothing is left."""
    text = _SPACES.sub(" ", str(name or "")).strip()
    return _TRAILING_YEAR.sub("", text).strip()


def _read_csv(path: Path) -> list:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"item names: {path} not found")
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _first_name(candidates: Iterable[Tuple[str, Optional[str]]]) -> Optional[Tuple[str, str]]:
    for source, raw in candidates:
        name = clean_name(raw)
        if name:
            return name, source
    return None


def redial_named_entities(movie_entity: Mapping[str, Optional[str]], mid2name: Mapping[str, str],
                          metadata_csv: Optional[Path]) -> NamedEntities:
    """Names of ReDial movies keyed by their entity (URI or raw movieId).

    Args:
        movie_entity: ReDial movieId -> entity key (``None``: movie not in the KG).
        mid2name: ``kg/mid2name_redial.json``.
        metadata_csv: ``items/item_metadata.csv`` (columns ``redial_id``, ``redial_name``,
            ``ml_title``), or ``None`` to use ``mid2name`` only.
    """
    rows = {}
    for line, row in enumerate(_read_csv(metadata_csv) if metadata_csv is not None else [], start=2):
        if "redial_id" not in row:
            raise KeyError(f"{metadata_csv}:{line}: no 'redial_id' column")
        rows[str(row["redial_id"]).strip()] = row
    named: NamedEntities = {}
    for movie_id in sorted(movie_entity, key=lambda m: (len(m), m)):
        entity = movie_entity[movie_id]
        if entity is None or entity in named:
            continue
        row = rows.get(movie_id, {})
        hit = _first_name([("mid2name_redial", mid2name.get(movie_id)),
                           ("item_metadata.redial_name", row.get("redial_name")),
                           ("item_metadata.ml_title", row.get("ml_title"))])
        if hit:
            named[entity] = hit
    return named


def inspired_named_entities(dialogue_names: Mapping[str, Counter], mapping_csv: Optional[Path]) -> NamedEntities:
    """Names of INSPIRED movies keyed by URI: the dialogues' most frequent ``movie_name``
    for each ``movie_link`` (``Counter`` insertion order breaks ties), then the mapping CSV."""
    named: NamedEntities = {}
    for uri, counts in dialogue_names.items():
        best = max(counts.items(), key=lambda kv: kv[1], default=(None, 0))[0]
        name = clean_name(best)
        if name:
            named[uri] = (name, "dialogue movie_name")
    if mapping_csv is not None:
        for line, row in enumerate(_read_csv(mapping_csv), start=2):
            uri, name = row.get("dbpedia_link"), clean_name(row.get("inspired_movie_name"))
            if uri is None:
                raise KeyError(f"{mapping_csv}:{line}: no 'dbpedia_link' column")
            if uri and name and uri not in named:
                named[uri] = (name, "item_mapping_guess.inspired_movie_name")
    return named


def write_item_names(out_dir: Path, named: NamedEntities, entity2id: Mapping[str, int],
                     item_ids: Iterable[int]) -> dict:
    """Write ``<out_dir>/item_names.json`` for the items in ``item_ids`` and return coverage:
    ``{"file", "items", "named", "unnamed_examples", "sources": {source: count}}``."""
    items = sorted(set(int(i) for i in item_ids))
    wanted = set(items)
    names: Dict[int, str] = {}
    sources: Counter = Counter()
    for entity, (name, source) in named.items():
        idx = entity2id.get(entity)
        if idx is not None and idx in wanted and idx not in names:
            names[idx] = name
            sources[source] += 1
    write_json(Path(out_dir) / ITEM_NAMES_FILE, {str(i): names[i] for i in sorted(names)})
    id2entity = {idx: uri for uri, idx in entity2id.items()}
    unnamed = [id2entity.get(i, str(i)) for i in items if i not in names]
    return {"file": ITEM_NAMES_FILE, "items": len(items), "named": len(names),
            "coverage": round(len(names) / len(items), 4) if items else 0.0,
            "unnamed_examples": unnamed[:10], "sources": dict(sorted(sources.items()))}


# -- reading: the one resolver ---------------------------------------------------------------
_DBPEDIA_RESOURCE = "http://dbpedia.org/resource/"
_PARENTHETICAL = re.compile(r"\s*\(([^()]*)\)\s*$")
_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")


def _uri_title(uri: str) -> str:
    name = unquote(str(uri).strip("<>"))
    if name.startswith(_DBPEDIA_RESOURCE):
        name = name[len(_DBPEDIA_RESOURCE):]
    return name.replace("_", " ")


@lru_cache(maxsize=None)
def entity_surface_name(uri: str) -> str:
    """Name of a DBpedia entity without its disambiguation suffix.

    ``<http://dbpedia.org/resource/Rio_(2011_film)>`` -> ``Rio``.
    """
    name = _uri_title(uri)
    return _PARENTHETICAL.sub("", name).strip() or name.strip()


def uri_year(uri: str) -> Optional[str]:
    """The year of a DBpedia disambiguation suffix (``Rio_(2011_film)`` -> ``2011``), or None."""
    match = _PARENTHETICAL.search(_uri_title(uri))
    year = _YEAR.search(match.group(1)) if match else None
    return year.group(1) if year else None


@lru_cache(maxsize=None)
def entity_display_name(uri: str) -> str:
    """Readable name: ``Rio (2011)`` when the DBpedia suffix holds a year, else ``Rio``."""
    base, year = entity_surface_name(uri), uri_year(uri)
    return f"{base} ({year})" if year else base


def read_item_names(path) -> Dict[int, str]:
    """``item_names.json`` as ``{entity id: name}``; errors name the file."""
    path = Path(path)
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
        return {int(k): str(v) for k, v in table.items()}
    except (ValueError, AttributeError) as err:
        raise ValueError(f"{path}: not an {ITEM_NAMES_FILE} object {{\"<entity id>\": \"<name>\"}} ({err})")


class ItemNames:
    """Entity id -> the name shown for an item, everywhere (see module doc).

    ``name``: ``item_names.json``, else the DBpedia title without its suffix, else the bare
    entity key (only for an item no source names). ``label``: ``name`` plus the DBpedia
    year, for listings a person reads (``Rio (2011)``).
    """

    def __init__(self, names: Mapping[int, str], id2entity: Mapping[int, str]):
        self.names = {int(k): str(v) for k, v in names.items()}
        self.id2entity = {int(k): str(v) for k, v in id2entity.items()}

    @classmethod
    def load(cls, path: Optional[Path], id2entity: Mapping[int, str]) -> "ItemNames":
        return cls(read_item_names(path) if path is not None else {}, id2entity)

    def name(self, entity_id: int) -> str:
        name = self.names.get(int(entity_id))
        if name:
            return name
        uri = self.id2entity.get(int(entity_id))
        return entity_surface_name(uri) if uri else str(entity_id)

    def has_name(self, entity_id: int) -> bool:
        """False for an item only known by a bare key (no name in the file, no DBpedia URI)."""
        uri = self.id2entity.get(int(entity_id), "")
        return bool(self.names.get(int(entity_id))) or uri.startswith("<http")

    def label(self, entity_id: int) -> str:
        name, uri = self.name(entity_id), self.id2entity.get(int(entity_id))
        year = uri_year(uri) if uri else None
        return f"{name} ({year})" if year and year not in name else name

    def values(self):
        """The names of ``item_names.json`` (for matching item names in replies)."""
        return self.names.values()
