"""Item catalogue: every recommendable item of a dataset, keyed by its KG entity id.

docs/data.md#features-and-semantic-graphs: one item index shared by all modalities, keyed by
the KG entity id. The catalogue is built from ``entity2id`` + the list of item entity ids (the shared KG
files or a built CRSLab dataset's ``entity2id.json`` / ``movie_ids.json``: same ids) and
joined with whatever metadata exists. Items without metadata still appear, titled from
their URI, so no item silently drops out of the feature matrices.

Sources
- ReDial (``build_redial_catalogue``): ``kg/id2entity.jsonl`` (ReDial movieId -> URI; 812
  movies have no DBpedia link and their entity "URI" is the bare movieId),
  ``items/item_metadata.csv`` (name, imdb_id, genres, director, stars, plot, poster) and
  ``items/id2info.json`` as a fallback for fields the CSV leaves empty.
- INSPIRED (``build_inspired_catalogue``): ``items/item_mapping_guess.csv`` (NOISY title
  match to IMDb ids/posters), ``items/spiderMovieInfo.txt`` (DBpedia abstracts, matched to
  items by the title they start with) and, optionally, ReDial's ``id2info.json`` joined on
  the guessed imdb id for genres/director/stars/plot (flagged ``metadata_source``).
- Any dataset (``load_user_catalogue``): a CSV or JSONL with the columns in
  :data:`USER_COLUMNS`; list-valued columns are ``|``-separated in CSV, lists in JSONL.

Images: a poster ``<posters_dir>/<imdb_id>.jpg`` plus, for each folder in ``image_dirs``,
``<folder>/<key>/*.{jpg,jpeg,png}`` where ``key`` is the imdb id or the entity id.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

#: Columns of a user catalogue. ``item_id`` (entity id) or ``uri`` is required.
USER_COLUMNS = {
    "item_id": "KG entity id of the item (int); required unless `uri` is given",
    "uri": "entity URI as in entity2id.json; required unless `item_id` is given",
    "title": "display title", "year": "release year (int)",
    "genres": "list", "director": "list", "stars": "list", "plot": "free text",
    "imdb_id": "e.g. tt0068646 (used to find <posters_dir>/<imdb_id>.jpg)",
    "images": "list of image paths (absolute or relative to the catalogue file)",
}

_TITLE_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")
_URI_SUFFIX = re.compile(r"^(.*?)_\(([^()]*)\)$")


@dataclass
class Item:
    """One recommendable item and its (possibly empty) metadata."""

    item_id: int
    uri: str
    title: str
    year: Optional[int] = None
    genres: list = field(default_factory=list)
    director: list = field(default_factory=list)
    stars: list = field(default_factory=list)
    plot: str = ""
    imdb_id: str = ""
    image_paths: list = field(default_factory=list)
    metadata_source: str = "uri-only"

    @property
    def has_metadata(self) -> bool:
        """True when anything beyond the URI-derived title is known."""
        return bool(self.genres or self.director or self.stars or self.plot)

    def to_dict(self) -> dict:
        return asdict(self)


class Catalogue:
    """Ordered collection of :class:`Item`, one per recommendable entity id (ascending)."""

    def __init__(self, items: Iterable[Item], dataset: str, n_entity: int, sources: Optional[dict] = None):
        self.items = sorted(items, key=lambda item: item.item_id)
        self.dataset = dataset
        self.n_entity = int(n_entity)
        self.sources = dict(sources or {})
        self._by_id = {item.item_id: item for item in self.items}
        if len(self._by_id) != len(self.items):
            raise ValueError(f"catalogue for {dataset}: duplicate item ids")
        bad = [item.item_id for item in self.items if not 0 <= item.item_id < self.n_entity]
        if bad:
            raise ValueError(f"catalogue for {dataset}: item ids {bad[:5]} outside [0, {self.n_entity})")

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def __getitem__(self, item_id: int) -> Item:
        return self._by_id[item_id]

    def __contains__(self, item_id) -> bool:
        return item_id in self._by_id

    @property
    def item_ids(self) -> list:
        return [item.item_id for item in self.items]

    def find_by_title(self, title: str) -> list:
        """Items whose title equals ``title`` (case-insensitive), most metadata first."""
        wanted = title.strip().lower()
        hits = [item for item in self.items if item.title.lower() == wanted]
        return sorted(hits, key=lambda item: (not item.has_metadata, not item.image_paths, item.item_id))

    def coverage(self) -> dict:
        """Counts of items with metadata, a plot and at least one image."""
        return {
            "items": len(self.items),
            "with_metadata": sum(item.has_metadata for item in self.items),
            "with_plot": sum(bool(item.plot) for item in self.items),
            "with_images": sum(bool(item.image_paths) for item in self.items),
            "uri_only": sum(item.metadata_source == "uri-only" for item in self.items),
        }

    def to_jsonl(self, path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            for item in self.items:
                handle.write(json.dumps(item.to_dict(), ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------- helpers

def load_json(value, what: str):
    """Return ``value`` itself, or the parsed JSON when it is a path."""
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.is_file():
            raise FileNotFoundError(f"{what}: file not found: {path}")
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    return value


def load_entity2id(value) -> dict:
    """entity2id from a path or a dict; checks that ids are non-negative ints."""
    entity2id = load_json(value, "entity2id")
    if not isinstance(entity2id, dict):
        raise ValueError(f"entity2id must be a JSON object, got {type(entity2id).__name__}")
    for uri, idx in entity2id.items():
        if not isinstance(idx, int) or idx < 0:
            raise ValueError(f"entity2id: entity {uri!r} has invalid id {idx!r}")
    return entity2id


def n_entity_of(entity2id: dict) -> int:
    """Size of the entity id space (``max id + 1``, as CRSLab computes ``n_entity``)."""
    return max(entity2id.values()) + 1 if entity2id else 0


def load_item_ids(value, entity2id: dict) -> list:
    """Item entity ids from a path or a list; every id must exist in ``entity2id``."""
    item_ids = load_json(value, "item ids")
    known = set(entity2id.values())
    unknown = [idx for idx in item_ids if idx not in known]
    if unknown:
        raise ValueError(f"item ids: {len(unknown)} ids are not in entity2id, e.g. {unknown[:5]}")
    return sorted(set(int(idx) for idx in item_ids))


def title_from_uri(uri: str) -> tuple:
    """``'<http://dbpedia.org/resource/Toy_Story_(1995_film)>'`` -> ``('Toy Story', 1995)``."""
    name = uri.strip("<>").rsplit("/", 1)[-1]
    year = None
    match = _URI_SUFFIX.match(name)
    if match:
        name, qualifier = match.groups()
        found = re.search(r"(?<!\d)(1[89]\d\d|20\d\d)(?!\d)", qualifier)
        year = int(found.group(1)) if found else None
    return name.replace("_", " ").strip(), year


def split_title_year(name: str) -> tuple:
    """``'Toy Story (1995)'`` -> ``('Toy Story', 1995)``; no year -> ``(name, None)``."""
    name = (name or "").strip()
    match = _TITLE_YEAR.match(name)
    if match:
        return match.group(1).strip(), int(match.group(2))
    return name, None


def split_list(value) -> list:
    """A ``|``-separated string or a list -> list of non-empty stripped strings."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split("|") if part.strip()]


def find_item_images(keys: Sequence[str], posters_dir=None, image_dirs: Sequence = ()) -> list:
    """Existing image files for an item: ``<posters_dir>/<key>.jpg`` and ``<dir>/<key>/*.jpg``."""
    found = []
    for key in [k for k in keys if k]:
        if posters_dir:
            poster = Path(posters_dir) / f"{key}.jpg"
            if poster.is_file():
                found.append(str(poster))
        for folder in image_dirs:
            item_dir = Path(folder) / str(key)
            if item_dir.is_dir():
                found.extend(str(p) for p in sorted(item_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES)
    return list(dict.fromkeys(found))


def _uri_items(entity2id: dict, item_ids: Sequence[int]) -> dict:
    id2uri = {idx: uri for uri, idx in entity2id.items()}
    return {idx: id2uri[idx] for idx in item_ids}


def _read_csv(path, required: Sequence[str] = ()) -> list:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"catalogue: file not found: {path}")
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [col for col in required if col not in columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; found {columns}")
        return list(reader)


# --------------------------------------------------------------------------- ReDial

def build_redial_catalogue(entity2id, item_ids, id2entity, metadata_csv=None, id2info=None,
                           posters_dir=None, image_dirs: Sequence = (), shared_items_root=None) -> Catalogue:
    """Catalogue of ReDial items (entity ids), joined with the ReDial/IMDb metadata.

    ``shared_items_root`` resolves the CSV's relative ``poster`` column (defaults to the
    CSV's parent's parent, i.e. no ``<source>/redial/..`` layout is assumed).
    """
    entity2id = load_entity2id(entity2id)
    item_ids = load_item_ids(item_ids, entity2id)
    movie_to_uri = load_json(id2entity, "id2entity")
    info = load_json(id2info, "id2info") if id2info is not None else {}
    rows = {}
    if metadata_csv is not None:
        for row in _read_csv(metadata_csv, required=("redial_id", "redial_name")):
            rows[row["redial_id"]] = row
    uri_to_movies: dict = {}
    for movie_id, uri in movie_to_uri.items():
        if uri:
            uri_to_movies.setdefault(uri, []).append(str(movie_id))

    items = []
    for item_id, uri in _uri_items(entity2id, item_ids).items():
        movie_ids = uri_to_movies.get(uri, [])
        if not movie_ids and uri.isdigit():  # unlinked ReDial movie: the "URI" is its movieId
            movie_ids = [uri]
        items.append(_redial_item(item_id, uri, movie_ids, rows, info, posters_dir, image_dirs,
                                  shared_items_root or (Path(metadata_csv).parent.parent if metadata_csv else None)))
    return Catalogue(items, "redial", n_entity_of(entity2id),
                     sources={"metadata_csv": str(metadata_csv), "id2info": str(id2info)})


def _redial_item(item_id, uri, movie_ids, rows, info, posters_dir, image_dirs, csv_root) -> Item:
    # prefer the ReDial movie with metadata and the most mentions when several share a URI
    def rank(movie_id):
        row = rows.get(movie_id, {})
        return (bool(row.get("imdb_id") or movie_id in info), int(row.get("nbMentions") or 0))

    movie_ids = sorted(movie_ids, key=rank, reverse=True)
    row = rows.get(movie_ids[0], {}) if movie_ids else {}
    extra = info.get(movie_ids[0], {}) if movie_ids else {}
    if row.get("redial_name") or extra.get("name"):
        title, year = split_title_year(extra.get("name") or row.get("redial_name"))
    else:
        title, year = title_from_uri(uri)
    if year is None:
        year = title_from_uri(uri)[1]
    item = Item(item_id=item_id, uri=uri, title=title, year=year,
                genres=split_list(row.get("genres")) or split_list(extra.get("genre")),
                director=split_list(row.get("director")) or split_list(extra.get("director")),
                stars=split_list(row.get("stars")) or split_list(extra.get("star")),
                plot=(row.get("plot") or extra.get("plot") or "").strip(),
                imdb_id=(row.get("imdb_id") or extra.get("imdb_id") or "").strip())
    if item.has_metadata:
        item.metadata_source = "redial-metadata"
    elif row:
        item.metadata_source = "redial-name"
    paths = []
    if row.get("poster") and csv_root is not None and (Path(csv_root) / row["poster"]).is_file():
        paths.append(str(Path(csv_root) / row["poster"]))
    paths += find_item_images([item.imdb_id, str(item_id)], posters_dir, image_dirs)
    item.image_paths = list(dict.fromkeys(paths))
    return item


# --------------------------------------------------------------------------- INSPIRED

def build_inspired_catalogue(entity2id, item_ids, mapping_csv=None, spider_info=None, redial_id2info=None,
                             posters_dir=None, image_dirs: Sequence = ()) -> Catalogue:
    """Catalogue of INSPIRED items, joined with the (noisy) title mapping and abstracts."""
    entity2id = load_entity2id(entity2id)
    item_ids = load_item_ids(item_ids, entity2id)
    uris = _uri_items(entity2id, item_ids)
    mapping = {}
    if mapping_csv is not None:
        for row in _read_csv(mapping_csv, required=("dbpedia_link", "imdb_id")):
            mapping.setdefault(row["dbpedia_link"], row)
    imdb_info = {}
    if redial_id2info is not None:
        for record in load_json(redial_id2info, "id2info").values():
            if record.get("imdb_id"):
                imdb_info.setdefault(record["imdb_id"], record)

    items = []
    for item_id, uri in uris.items():
        title, year = title_from_uri(uri)
        row = mapping.get(uri, {})
        item = Item(item_id=item_id, uri=uri, title=title, year=year, imdb_id=(row.get("imdb_id") or "").strip())
        if row.get("ml_title"):
            item.year = item.year or split_title_year(row["ml_title"])[1]
        record = imdb_info.get(item.imdb_id) if item.imdb_id else None
        if record:
            item.genres = split_list(record.get("genre"))
            item.director = split_list(record.get("director"))
            item.stars = split_list(record.get("star"))
            item.plot = (record.get("plot") or "").strip()
            item.metadata_source = "imdb-join-via-heuristic-mapping"
        item.image_paths = find_item_images([item.imdb_id, str(item_id)], posters_dir, image_dirs)
        items.append(item)
    if spider_info is not None:
        _attach_abstracts(items, spider_info)
    return Catalogue(items, "inspired", n_entity_of(entity2id),
                     sources={"mapping_csv": str(mapping_csv), "spider_info": str(spider_info)})


def _attach_abstracts(items: list, spider_info) -> int:
    """Give items the DBpedia abstract that starts with their title (longest title wins).

    The abstract file has no keys; a line belongs to an item when it starts with the item's
    title followed by a space, comma or parenthesis; when several items share that title
    the one whose year appears in the line's first 80 characters wins, else none does.
    Returns the number of items that got an abstract.
    """
    path = Path(spider_info)
    if not path.is_file():
        raise FileNotFoundError(f"INSPIRED abstracts: file not found: {path}")
    by_title: dict = {}
    for item in items:
        by_title.setdefault(item.title.lower(), []).append(item)
    titles = sorted(by_title, key=len, reverse=True)
    attached = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip().replace(";", "")
        low = text.lower()
        for title in titles:
            if low.startswith(title) and len(low) > len(title) and low[len(title)] in " ,(":
                candidates = by_title[title]
                if len(candidates) > 1:
                    candidates = [c for c in candidates if c.year and str(c.year) in text[:80]]
                if len(candidates) == 1 and not candidates[0].plot:
                    candidates[0].plot = text
                    if candidates[0].metadata_source == "uri-only":
                        candidates[0].metadata_source = "dbpedia-abstract"
                    attached += 1
                break
    return attached


# --------------------------------------------------------------------------- user file

def load_user_catalogue(path, entity2id, item_ids, dataset: str = "custom", posters_dir=None,
                        image_dirs: Sequence = ()) -> Catalogue:
    """Catalogue from a CSV/JSONL with the columns of :data:`USER_COLUMNS`.

    Rows naming an entity that is not in ``entity2id`` or not an item raise a ValueError
    with the file and line; items without a row still appear, titled from their URI.
    """
    path = Path(path)
    entity2id = load_entity2id(entity2id)
    item_ids = load_item_ids(item_ids, entity2id)
    uris = _uri_items(entity2id, item_ids)
    if path.suffix.lower() in (".jsonl", ".json"):
        from crslab_mscrs.data.jsonl import iter_jsonl

        records = list(iter_jsonl(path))
        columns = set().union(*(r.keys() for _, r in records)) if records else set()
    else:
        rows = _read_csv(path)
        records = list(enumerate(rows, 2))
        with open(path, encoding="utf-8", newline="") as handle:
            columns = set(next(csv.reader(handle), []))
    if not ({"item_id", "uri"} & columns):
        raise ValueError(f"{path}: missing column 'item_id' or 'uri'; found {sorted(columns)}")

    by_id = {}
    for line_no, record in records:
        if record.get("item_id") not in (None, ""):
            item_id = int(record["item_id"])
        elif record.get("uri") in entity2id:
            item_id = entity2id[record["uri"]]
        else:
            raise ValueError(f"{path}:{line_no}: unknown entity {record.get('uri')!r} (not in entity2id)")
        if item_id not in uris:
            raise ValueError(f"{path}:{line_no}: entity id {item_id} is not a recommendable item")
        title, year = split_title_year(str(record.get("title") or "")) if record.get("title") else title_from_uri(uris[item_id])
        item = Item(item_id=item_id, uri=uris[item_id], title=title,
                    year=int(record["year"]) if record.get("year") not in (None, "") else year,
                    genres=split_list(record.get("genres")), director=split_list(record.get("director")),
                    stars=split_list(record.get("stars")), plot=str(record.get("plot") or "").strip(),
                    imdb_id=str(record.get("imdb_id") or "").strip(), metadata_source="user-file")
        explicit = [str(p if Path(p).is_absolute() else path.parent / p) for p in split_list(record.get("images"))]
        item.image_paths = list(dict.fromkeys(explicit + find_item_images([item.imdb_id, str(item_id)],
                                                                          posters_dir, image_dirs)))
        by_id[item_id] = item
    for item_id, uri in uris.items():
        if item_id not in by_id:
            title, year = title_from_uri(uri)
            by_id[item_id] = Item(item_id=item_id, uri=uri, title=title, year=year,
                                  image_paths=find_item_images([str(item_id)], posters_dir, image_dirs))
    return Catalogue(by_id.values(), dataset, n_entity_of(entity2id), sources={"user_file": str(path)})
