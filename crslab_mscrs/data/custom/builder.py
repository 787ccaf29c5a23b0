"""User dataset folder (:mod:`crslab_mscrs.data.custom.format`) -> a CRSLab dataset under the user's name.

The generic builder is the INSPIRED builder without INSPIRED's reader: messages become
INSPIRED-style turns (``role``, ``text``, ``movie_link``, ``entity_link``) converted by the
same :class:`crslab_mscrs.data.inspired.InspiredConverter`, and the folder is written by
the same :func:`crslab_mscrs.data.inspired_layout.write_inspired_layout` (INSPIRED layout,
atomic, ``.built`` last). What differs:

* **Ids.** Entity ids start at 1 (0 is CRSLab's ``pad_entity`` and belongs to no entity):
  the items first (catalogue order) then the other KG entities, or ``entities.txt`` order.
* **KG.** ``kg.tsv`` when present, else built from the catalogue's metadata
  (:mod:`crslab_mscrs.data.custom.metadata_kg`); the build report says which.
* **Valid.** ``valid.jsonl`` when present, else a seeded ``valid_fraction`` carve of train
  (:func:`crslab_mscrs.data.crslab_format.carve_valid`); ``limit`` applies after the carve.
* **Extra files** in the built folder: ``dataset_info.json`` (the CRSLab name and format
  version: how :func:`crslab_mscrs.registry.register_custom_datasets` finds the dataset),
  ``catalogue.jsonl`` (the feature pipeline's user catalogue, keyed by entity id),
  ``item_id_map.json`` (catalogue id -> entity id) and, when any conversation carries
  ``feedback``, ``seeker_feedback.json`` (``{conv_id: {entity id: {"seen", "liked"}}}``).
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from crslab_mscrs.data.build_options import BuildOptions
from crslab_mscrs.data.crslab_format import carve_valid, require_conversations, write_json
from crslab_mscrs.data.custom.format import (ENTITIES_FILE, INFO_FILE, KG_FILE, SPLIT_FILES, CatalogueItem, Conversation,
                                             CustomFormatError, UserKG, read_catalogue, read_conversations, read_kg)
from crslab_mscrs.data.custom.feedback import FEEDBACK_FILE
from crslab_mscrs.data.custom.metadata_kg import kg_summary, metadata_kg
from crslab_mscrs.data.inspired import InspiredConverter
from crslab_mscrs.data.inspired_kg import InspiredKG
from crslab_mscrs.data.inspired_layout import ConvertedDataset, write_inspired_layout
from crslab_mscrs.data.item_names import clean_name
from crslab_mscrs.data.report import SPLITS, BuildReport

CUSTOM_VERSION = "crslab-mscrs-custom-1"
CATALOGUE_FILE = "catalogue.jsonl"
ITEM_ID_MAP_FILE = "item_id_map.json"
#: CRSLab's own dataset names: a user dataset may not shadow them (compared case-insensitively)
RESERVED_NAMES = ("ReDial", "Inspired", "TGReDial", "GoRecDial", "OpenDialKG", "DuRecDial")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_ROLE_TAGS = {"Seeker": "SEEKER", "Recommender": "RECOMMENDER"}


def check_dataset_name(name: str) -> str:
    """A valid CRSLab name for a user dataset (letters, digits, ``_``; not a CRSLab dataset)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"dataset name {name!r}: use a letter then letters, digits or '_' (at most 64)")
    if name.lower() in {n.lower() for n in RESERVED_NAMES}:
        raise ValueError(f"dataset name {name!r} is one of CRSLab's own datasets {list(RESERVED_NAMES)}; "
                         "choose another")
    return name


def custom_dataset_dir(data_root: Path, name: str, tokenize: str = "nltk") -> Path:
    return Path(data_root) / "dataset" / name.lower() / tokenize


def _entity_kg(user_kg: UserKG, catalogue: Dict[str, CatalogueItem]) -> InspiredKG:
    entity2id = {entity: idx for idx, entity in enumerate(user_kg.entities, start=1)}
    relation2id: Dict[str, int] = {}
    subkg: Dict[str, List[List[int]]] = {}
    for head, relation, tail in user_kg.triples:
        rel = relation2id.setdefault(relation, len(relation2id))
        subkg.setdefault(str(entity2id[head]), []).append([rel, entity2id[tail]])
    item_ids = [entity2id[item.entity] for item in catalogue.values()]
    return InspiredKG(entity2id, subkg, item_ids, {idx: rel for rel, idx in relation2id.items()})


def _as_turns(conversation: Conversation, catalogue: Dict[str, CatalogueItem]) -> list:
    """The messages as INSPIRED raw turns, for :class:`InspiredConverter`."""
    return [{"role": _ROLE_TAGS[m.role], "text": m.text,
             "movie_link": [catalogue[i].entity for i in m.items], "movie_name": [catalogue[i].name for i in m.items],
             "entity_link": list(m.entities)} for m in conversation.messages]


def read_splits(source: Path, catalogue, known_entities, options: BuildOptions, carve: dict) -> Dict[str, list]:
    """Raw conversations per split: ``valid.jsonl`` or a carve of train, then ``options.limit``."""
    source = Path(source)
    splits = {name: read_conversations(source / SPLIT_FILES[name], name, catalogue, known_entities)
              for name in ("train", "test")}
    valid_path = source / SPLIT_FILES["valid"]
    if valid_path.is_file():
        splits["valid"] = read_conversations(valid_path, "valid", catalogue, known_entities)
        carve["valid"] = str(SPLIT_FILES["valid"])
    else:
        splits["train"], splits["valid"] = carve_valid(splits["train"], options.valid_fraction, options.seed)
        carve["valid"] = f"carved from train (valid_fraction {options.valid_fraction}, seed {options.seed})"
    seen: Dict[str, str] = {}
    for name in SPLITS:
        for conv in splits[name]:
            if conv.conv_id in seen:
                raise CustomFormatError(Path(conv.where.rsplit(":", 1)[0]), int(conv.where.rsplit(":", 1)[1]),
                                        f"conv_id {conv.conv_id!r} already used at {seen[conv.conv_id]}")
            seen[conv.conv_id] = conv.where
    for name in SPLITS:
        require_conversations(name, splits[name], source / SPLIT_FILES[name if name != "valid" or valid_path.is_file()
                                                                        else "train"],
                              "" if name != "valid" or valid_path.is_file() else " (carved from train)")
    return {name: splits[name][:options.split_limit(name)] for name in SPLITS}


def build_custom(source: Path, data_root: Path, name: str, options: Optional[BuildOptions] = None,
                 echo: bool = True, source_label: Optional[str] = None, notes: Sequence[str] = ()) -> BuildReport:
    """Build ``<data_root>/dataset/<name lower>/nltk`` (+ KGSF copy mask) from a user dataset folder.

    ``source_label`` (default: the folder) is recorded as the source; ``notes`` go into the report.

    Returns the :class:`BuildReport` (also saved as ``build_report.json``/``.txt``).
    """
    from crslab_mscrs.registry import register_custom_dataset

    started = time.perf_counter()
    name = check_dataset_name(name)
    options = options or BuildOptions()
    source, data_root = Path(source), Path(data_root)
    out_dir = custom_dataset_dir(data_root, name)
    if out_dir.exists() and not (out_dir / INFO_FILE).is_file():
        raise FileExistsError(f"{out_dir} exists and is not a user dataset (no {INFO_FILE}); choose another name")

    catalogue = read_catalogue(source)
    user_kg = read_kg(source, catalogue)
    kg_source = f"{KG_FILE}" + (f" + {ENTITIES_FILE}" if user_kg and user_kg.listed else "")
    if user_kg is None:
        user_kg = metadata_kg(catalogue, source)
        kg_source = "built from the catalogue metadata (genres, people, years, attributes)"
    kg = _entity_kg(user_kg, catalogue)
    carve: dict = {}
    raw = read_splits(source, catalogue, set(kg.entity2id), options, carve)

    report = BuildReport(dataset=name, output_dir=str(out_dir.relative_to(data_root)),
                         settings={**options.as_dict(), **carve, "source": source_label or str(source.resolve())})
    report.notes.extend(notes)
    converter = InspiredConverter(kg.entity2id, report)
    splits = {split: [converter.convert(_as_turns(conv, catalogue), conv.conv_id, conv.where, report.splits[split],
                                        collect_titles=split == "train") for conv in raw[split]]
              for split in SPLITS}
    report.entity_kg.update({"source": kg_source, "relations_by_edges": kg_summary(user_kg)})
    if not user_kg.listed and kg_source.startswith("built"):
        report.notes.append(f"no {KG_FILE}: the KG was built from the catalogue metadata "
                            f"({len(user_kg.entities) - len(catalogue)} metadata entities, "
                            f"{len(user_kg.triples)} edges)")
    report.entity_linking = {"method": "the conversations' own 'entities' lists (no linking from text)",
                             "entity_mentions": sum(c.entity_mentions for c in report.splits.values())}
    named = {item.entity: (clean_name(item.name) or item.name, "items.jsonl name") for item in catalogue.values()}
    feedback = {conv.conv_id: {str(kg.entity2id[catalogue[i].entity]): {"seen": s, "liked": l}
                               for i, (s, l) in conv.feedback.items()}
                for split in SPLITS for conv in raw[split] if conv.feedback}

    def extra_files(staging: Path, written: InspiredKG) -> None:
        write_json(staging / INFO_FILE, {"crslab_name": name, "version": CUSTOM_VERSION, "layout": "inspired",
                                         "kg": kg_source, "source": report.settings["source"]}, compact=False)
        write_json(staging / ITEM_ID_MAP_FILE, {i: written.entity2id[c.entity] for i, c in catalogue.items()
                                                if c.entity in written.entity2id})
        write_catalogue(staging / CATALOGUE_FILE, catalogue, written.entity2id)
        if feedback:
            write_json(staging / FEEDBACK_FILE, feedback)

    if options.compact_kg:
        raise ValueError("compact_kg is for the embedded sample; a user dataset keeps its whole KG")
    register_custom_dataset(name, CUSTOM_VERSION)  # the KGSF copy mask's version is looked up by name
    data = ConvertedDataset(name, CUSTOM_VERSION, splits, kg, named, converter.title_tokens)
    write_inspired_layout(data, out_dir, data_root, options, report, started, echo, extra_files)
    if echo:
        for note in report.notes:
            print(f"note: {note}")
    return report


def write_catalogue(path: Path, catalogue: Dict[str, CatalogueItem], entity2id: Dict[str, int]) -> None:
    """The catalogue in the feature pipeline's user-file format (``features.catalogue``)."""
    with Path(path).open("w", encoding="utf-8") as handle:
        for item in catalogue.values():
            record = {"item_id": entity2id[item.entity], "title": item.name, "year": item.year,
                      "genres": item.genres, "director": item.director, "stars": item.stars, "plot": item.plot,
                      "images": [item.image] if item.image else []}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
