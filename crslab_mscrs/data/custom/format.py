"""The bring-your-own-dataset input format (docs/own_data.md, "Your own dataset"), read and checked.

A dataset folder holds::

    items.jsonl          the item catalogue, one JSON object per line (required)
    train.jsonl          conversations, one per line (required)
    valid.jsonl          (optional: else a seeded share of train is carved out)
    test.jsonl           (required)
    kg.tsv               (optional) ``head<TAB>relation<TAB>tail`` typed KG edges
    entities.txt         (optional, with kg.tsv) every KG entity, one per line: fixes the
                         entity ids (line order) and makes an edge to an unlisted entity an error

Item (``items.jsonl``): ``id`` (str, unique), ``name``; optional ``year`` (int), ``genres``,
``director``, ``stars`` (lists of str), ``plot`` (str), ``image`` (path relative to the
folder), ``uri`` (the item's entity name in ``kg.tsv``, e.g. a DBpedia URI; default
``item:<id>``) and ``attributes`` (``{relation: value or [values]}``, more typed metadata).

Conversation: ``conv_id`` (optional, default ``<split>-<line index>``), ``messages``:
``[{"role": "seeker"|"recommender", "text": str, "items": [item id], "entities": [entity]}]``
and optional ``feedback``: ``{item id: {"seen": 0|1|2, "liked": 0|1|2}}`` (the seeker's
answers, ReDial's questionnaire convention: 0 no, 1 yes, 2 did not say; used for SR/RDL).

Every reader raises :class:`CustomFormatError` naming the file, the line and the key.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from crslab_mscrs.data.jsonl import JsonlFormatError, iter_jsonl

ITEMS_FILE = "items.jsonl"
INFO_FILE = "dataset_info.json"  # written into the BUILT folder (registration descriptor)
KG_FILE = "kg.tsv"
ENTITIES_FILE = "entities.txt"
SPLIT_FILES = {"train": "train.jsonl", "valid": "valid.jsonl", "test": "test.jsonl"}
ROLES = {"seeker": "Seeker", "recommender": "Recommender"}
LIST_FIELDS = ("genres", "director", "stars")
ITEM_KEYS = {"id", "name", "year", "genres", "director", "stars", "plot", "image", "uri", "attributes"}
MESSAGE_KEYS = {"role", "text", "items", "entities"}
CONVERSATION_KEYS = {"conv_id", "messages", "feedback"}
ANSWER_VALUES = (0, 1, 2)


class CustomFormatError(ValueError):
    """A user dataset file breaks the format; the message names file, line and key."""

    def __init__(self, path: Path, line: Optional[int], message: str):
        self.path, self.line = Path(path), line
        super().__init__(f"{self.path}{f':{line}' if line else ''}: {message}")


@dataclass
class CatalogueItem:
    item_id: str
    name: str
    entity: str                    # the item's entity name (``uri`` or ``item:<id>``)
    year: Optional[int] = None
    genres: List[str] = field(default_factory=list)
    director: List[str] = field(default_factory=list)
    stars: List[str] = field(default_factory=list)
    plot: str = ""
    image: Optional[str] = None    # absolute path
    attributes: Dict[str, List[str]] = field(default_factory=dict)


@dataclass
class Message:
    role: str                      # Seeker | Recommender
    text: str
    items: List[str]               # catalogue ids
    entities: List[str]            # KG entity names


@dataclass
class Conversation:
    conv_id: str
    messages: List[Message]
    feedback: Dict[str, Tuple[int, int]]   # item id -> (seen, liked)
    where: str                             # FILE:LINE


def _records(path: Path):
    """``(line_no, dict)`` of a JSONL file; malformed JSON or a non-object is an error."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    try:
        for line_no, value in iter_jsonl(path):
            if not isinstance(value, dict):
                raise CustomFormatError(path, line_no, f"expected a JSON object, got {type(value).__name__}")
            yield line_no, value
    except JsonlFormatError as err:
        raise CustomFormatError(path, err.line_no, str(err).split(": ", 1)[1]) from None


def _unknown_keys(path, line_no, record: dict, known: set, what: str) -> None:
    extra = sorted(set(record) - known)
    if extra:
        raise CustomFormatError(path, line_no, f"unknown {what} key(s) {extra}; known: {sorted(known)}")


def _str_list(path, line_no, value, key: str) -> List[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise CustomFormatError(path, line_no, f"key '{key}' must be a list of non-empty strings, got {value!r}")
    bad = [v for v in value if "\t" in v or "\n" in v]
    if bad:
        raise CustomFormatError(path, line_no, f"key '{key}': {bad[0]!r} contains a tab or a line break")
    return [v.strip() for v in value]


def read_catalogue(folder: Path) -> Dict[str, CatalogueItem]:
    """``items.jsonl`` -> ``{item id: CatalogueItem}`` in file order."""
    path = Path(folder) / ITEMS_FILE
    items: Dict[str, CatalogueItem] = {}
    entities: Dict[str, str] = {}
    for line_no, record in _records(path):
        _unknown_keys(path, line_no, record, ITEM_KEYS, "item")
        item_id, name = record.get("id"), record.get("name")
        if isinstance(item_id, int) and not isinstance(item_id, bool):
            item_id = str(item_id)
        if not isinstance(item_id, str) or not item_id.strip():
            raise CustomFormatError(path, line_no, f"key 'id' must be a non-empty string, got {item_id!r}")
        if item_id in items:
            raise CustomFormatError(path, line_no, f"duplicate item id {item_id!r}")
        if not isinstance(name, str) or not name.strip():
            raise CustomFormatError(path, line_no, f"item {item_id!r}: key 'name' must be a non-empty string")
        year = record.get("year")
        if year is not None and (not isinstance(year, int) or isinstance(year, bool)):
            raise CustomFormatError(path, line_no, f"item {item_id!r}: key 'year' must be an integer, got {year!r}")
        entity = record.get("uri") or f"item:{item_id}"
        if not isinstance(entity, str) or "\t" in entity or "\n" in entity:
            raise CustomFormatError(path, line_no, f"item {item_id!r}: key 'uri' must be a string without tabs "
                                                   f"or line breaks, got {entity!r}")
        if entity in entities:
            raise CustomFormatError(path, line_no, f"item {item_id!r}: uri {entity!r} is already item "
                                                   f"{entities[entity]!r}")
        entities[entity] = item_id
        attributes = record.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise CustomFormatError(path, line_no, f"item {item_id!r}: key 'attributes' must be an object")
        image = record.get("image")
        if image is not None:
            if not isinstance(image, str):
                raise CustomFormatError(path, line_no, f"item {item_id!r}: key 'image' must be a path string")
            image = str(Path(image) if Path(image).is_absolute() else Path(folder).resolve() / image)
        plot = record.get("plot") or ""
        if not isinstance(plot, str):
            raise CustomFormatError(path, line_no, f"item {item_id!r}: key 'plot' must be a string")
        items[item_id] = CatalogueItem(
            item_id=item_id, name=name.strip(), entity=entity, year=year, plot=plot.strip(), image=image,
            attributes={str(k): _str_list(path, line_no, v, f"attributes.{k}") for k, v in attributes.items()},
            **{key: _str_list(path, line_no, record.get(key), key) for key in LIST_FIELDS})
    if not items:
        raise CustomFormatError(path, None, "no items")
    return items


def _answer(path, line_no, conv_id, item_id, answer) -> Tuple[int, int]:
    if not isinstance(answer, dict) or set(answer) - {"seen", "liked"}:
        raise CustomFormatError(path, line_no, f"conversation {conv_id!r}: feedback[{item_id!r}] must be "
                                               f"{{'seen': 0|1|2, 'liked': 0|1|2}}, got {answer!r}")
    seen, liked = answer.get("seen", 2), answer.get("liked", 2)
    for key, value in (("seen", seen), ("liked", liked)):
        if value not in ANSWER_VALUES or isinstance(value, bool):
            raise CustomFormatError(path, line_no, f"conversation {conv_id!r}: feedback[{item_id!r}].{key} "
                                                   f"must be 0, 1 or 2, got {value!r}")
    return int(seen), int(liked)


def read_conversations(path: Path, split: str, catalogue: Dict[str, CatalogueItem],
                       known_entities: Optional[set] = None, limit: Optional[int] = None) -> List[Conversation]:
    """One split's conversations; item ids must be in the catalogue, entities in ``known_entities``
    (``None``: not checked here)."""
    path = Path(path)
    conversations: List[Conversation] = []
    for index, (line_no, record) in enumerate(_records(path)):
        if limit is not None and index >= limit:
            break
        _unknown_keys(path, line_no, record, CONVERSATION_KEYS, "conversation")
        conv_id = record.get("conv_id", f"{split}-{index}")
        if not isinstance(conv_id, (str, int)) or isinstance(conv_id, bool) or str(conv_id) == "":
            raise CustomFormatError(path, line_no, f"key 'conv_id' must be a non-empty string, got {conv_id!r}")
        conv_id = str(conv_id)
        raw_messages = record.get("messages")
        if not isinstance(raw_messages, list) or not raw_messages:
            raise CustomFormatError(path, line_no, f"conversation {conv_id!r}: key 'messages' must be a non-empty list")
        messages = []
        for m, raw in enumerate(raw_messages):
            where = f"conversation {conv_id!r}, messages[{m}]"
            if not isinstance(raw, dict):
                raise CustomFormatError(path, line_no, f"{where}: expected an object")
            _unknown_keys(path, line_no, raw, MESSAGE_KEYS, f"{where}")
            role = ROLES.get(str(raw.get("role", "")).lower())
            if role is None:
                raise CustomFormatError(path, line_no, f"{where}.role is {raw.get('role')!r}, expected one of "
                                                       f"{sorted(ROLES)}")
            text = raw.get("text")
            if not isinstance(text, str):
                raise CustomFormatError(path, line_no, f"{where}.text must be a string")
            items = _str_list(path, line_no, raw.get("items"), f"{where}.items")
            for item_id in items:
                if item_id not in catalogue:
                    raise CustomFormatError(path, line_no, f"{where}.items: unknown item {item_id!r} "
                                                           f"(not in {ITEMS_FILE})")
            entities = _str_list(path, line_no, raw.get("entities"), f"{where}.entities")
            if known_entities is not None:
                for entity in entities:
                    if entity not in known_entities:
                        typed = sorted(e for e in known_entities if e.endswith(f":{entity}"))[:3]
                        hint = f"; did you mean {typed}?" if typed else ""
                        raise CustomFormatError(path, line_no, f"{where}.entities: unknown entity {entity!r} "
                                                               f"(not in the KG){hint}")
            messages.append(Message(role, text, items, entities))
        feedback_raw = record.get("feedback") or {}
        if not isinstance(feedback_raw, dict):
            raise CustomFormatError(path, line_no, f"conversation {conv_id!r}: key 'feedback' must be an object")
        feedback = {}
        for item_id, answer in feedback_raw.items():
            if item_id not in catalogue:
                raise CustomFormatError(path, line_no, f"conversation {conv_id!r}: feedback names unknown item "
                                                       f"{item_id!r} (not in {ITEMS_FILE})")
            feedback[item_id] = _answer(path, line_no, conv_id, item_id, answer)
        conversations.append(Conversation(conv_id, messages, feedback, f"{path}:{line_no}"))
    return conversations


@dataclass
class UserKG:
    """``kg.tsv`` (+ ``entities.txt``): entity names in id order and ``(head, relation, tail)``."""
    entities: List[str]
    triples: List[Tuple[str, str, str]]
    listed: bool                          # entities came from entities.txt


def read_kg(folder: Path, catalogue: Dict[str, CatalogueItem]) -> Optional[UserKG]:
    """The folder's KG, or ``None`` when it has no ``kg.tsv``."""
    folder = Path(folder)
    kg_path, list_path = folder / KG_FILE, folder / ENTITIES_FILE
    if not kg_path.is_file():
        if list_path.is_file():
            raise CustomFormatError(list_path, None, f"{ENTITIES_FILE} without {KG_FILE}")
        return None
    listed: Optional[List[str]] = None
    if list_path.is_file():
        listed = []
        seen = set()
        for line_no, line in enumerate(list_path.read_text(encoding="utf-8").splitlines(), start=1):
            name = line.strip()
            if not name:
                continue
            if name in seen:
                raise CustomFormatError(list_path, line_no, f"duplicate entity {name!r}")
            seen.add(name)
            listed.append(name)
    known = set(listed) if listed is not None else None
    item_entities = {item.entity for item in catalogue.values()}
    triples: List[Tuple[str, str, str]] = []
    order: Dict[str, None] = {}
    for line_no, line in enumerate(kg_path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 3 or not all(f.strip() for f in fields):
            raise CustomFormatError(kg_path, line_no, f"expected 'head<TAB>relation<TAB>tail', got {line!r}")
        head, relation, tail = (f.strip() for f in fields)
        for end, name in (("head", head), ("tail", tail)):
            if known is not None and name not in known:
                raise CustomFormatError(kg_path, line_no, f"{end} {name!r} is not in {ENTITIES_FILE} "
                                                          "(an edge to nowhere)")
            if name.startswith("item:") and name not in item_entities:
                raise CustomFormatError(kg_path, line_no, f"{end} {name!r} names no item of {ITEMS_FILE} "
                                                          "(an edge to nowhere)")
            order.setdefault(name, None)
        triples.append((head, relation, tail))
    if not triples:
        raise CustomFormatError(kg_path, None, "no edges")
    if listed is not None:
        missing = [item.item_id for item in catalogue.values() if item.entity not in known]
        if missing:
            raise CustomFormatError(list_path, None, f"items {missing[:5]} ({len(missing)} in all) have no entity "
                                                     "here (their 'uri' or item:<id>)")
        return UserKG(listed, triples, True)
    entities = [item.entity for item in catalogue.values()]
    entities += [name for name in order if name not in item_entities]
    return UserKG(entities, triples, False)



def write_uri_dataset(folder: Path, id2uri: Dict[int, str], item_uris: List[str], triples,
                      splits: Dict[str, List[dict]]) -> Path:
    """A user-format folder for a dataset whose entities are URIs (what the INSPIRED and the
    authors' converters write): ``items.jsonl`` (id = uri = the URI, name from the URI),
    ``entities.txt`` (id order), ``kg.tsv`` and ``{split}.jsonl`` (``splits``: split -> conversations)."""
    from crslab_mscrs.features.catalogue import title_from_uri

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ITEMS_FILE).open("w", encoding="utf-8") as handle:
        for uri in item_uris:
            handle.write(json.dumps({"id": uri, "uri": uri, "name": title_from_uri(uri)[0] or uri},
                                    ensure_ascii=False) + "\n")
    (folder / ENTITIES_FILE).write_text("".join(f"{id2uri[i]}\n" for i in sorted(id2uri)), encoding="utf-8")
    with (folder / KG_FILE).open("w", encoding="utf-8") as handle:
        for head, relation, tail in triples:
            handle.write(f"{head}\t{relation}\t{tail}\n")
    for split, conversations in splits.items():
        with (folder / SPLIT_FILES[split]).open("w", encoding="utf-8") as handle:
            for conv in conversations:
                handle.write(json.dumps(conv, ensure_ascii=False) + "\n")
    return folder
