"""ReDial raw JSONL -> CRSLab's ReDial ``nltk`` format (loaded by CRSLab's own ``ReDialDataset``).

Li et al., "Towards Deep Conversational Recommendations", NeurIPS 2018 (CC BY 4.0).

Choices (all reported in ``build_report.json``):

* **Splits.** test = the official test file; valid = a seeded ``valid_fraction`` carve of
  the train pool (``crslab_format.carve_valid``); train = the rest of the pool.
* **One utterance per raw message**, in message order, ``utt_id`` = 0-based message
  index (CRSLab merges consecutive same-role messages at load time). The 869
  ``iEvaLM_valid`` conversations arrive already merged; they are kept as they are.
* **Roles.** ``senderWorkerId == initiatorWorkerId`` -> ``Seeker``, ``==
  respondentWorkerId`` -> ``Recommender`` (ReDial's initiator is the movie seeker). Every
  pool conversation, the 869 that carry only ``senderWorkerId``+``text`` per message
  included, has both ids at the conversation level; a sender matching neither is
  resolved when the conversation has exactly two senders and the other one matched,
  otherwise the build fails naming the conversation.
* **Movies.** ``@<movieId>`` -> the DBpedia URI from ``kg/id2entity.jsonl``; movies whose
  URI is null there are entities under their raw ReDial id (``"75962"``), which is how
  this KG lineage stores them. Ids found in neither are *unknown*: counted with examples.
  In ``text`` the mention is replaced by the movie's name tokens (``mid2name_redial``,
  else the conversation's ``movieMentions`` title without its year; an unnamed id stays
  ``@id``), as CRSLab-lineage data does.
* **Entities.** Non-movie DBpedia entities linked in the message text (not inside
  movie titles) by :mod:`crslab_mscrs.data.entity_linking`.
* **Item names.** ``item_names.json`` (entity id -> movie name, read by the MSCRS system
  to mask movie mentions): see :mod:`crslab_mscrs.data.item_names`; coverage reported.
* **Ids.** ``entity2id.json``/``dbpedia_subkg.json``/``movie_ids.json`` are the shared KG
  files unchanged (ids 1..64362; id 0, CRSLab's ``pad_entity``, belongs to no URI)
  unless ``compact_kg`` is set (embedded sample).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Set

from tqdm import tqdm

from crslab_mscrs.data.build_options import BuildOptions
from crslab_mscrs.data.copy_mask import build_copy_mask, save_copy_mask, staged_dataset_and_mask
from crslab_mscrs.data.crslab_format import (carve_valid, dataset_version, read_json, require_conversations,
                                            write_built_marker, write_json)
from crslab_mscrs.data.entity_linking import EntityLinker, kg_linker
from crslab_mscrs.data.item_names import redial_named_entities, write_item_names
from crslab_mscrs.data.jsonl import read_jsonl
from crslab_mscrs.data.kg_subset import compact_kg, one_hop_out
from crslab_mscrs.data.report import SPLITS, BuildReport, SplitCounts, UnknownMovies
from crslab_mscrs.data.tokenize import word_tokenize
from crslab_mscrs.data.vocabularies import build_vocabularies
from crslab_mscrs.data.word_graph import write_redial_word_graph

CRSLAB_NAME = "ReDial"
MENTION = re.compile(r"@(\d+)")
_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")
SEEKER, RECOMMENDER = "Seeker", "Recommender"


@dataclass
class RedialKG:
    """The shared ReDial KG files (``<source>/redial/kg``)."""
    entity2id: Dict[str, int]
    subkg: Dict[str, List[List[int]]]
    movie_ids: List[int]
    movie_uri: Dict[str, Optional[str]]
    movie_name: Dict[str, str]

    @classmethod
    def load(cls, kg_dir: Path) -> "RedialKG":
        kg_dir = Path(kg_dir)

        def load(name):
            return read_json(kg_dir / name)

        return cls(load("entity2id.json"), load("dbpedia_subkg.json"), load("movie_ids.json"),
                   load("id2entity.jsonl"), load("mid2name_redial.json"))

    def movie_entity(self, movie_id: str) -> Optional[str]:
        """The entity (URI, or the raw id for DBpedia-less movies) of a ReDial movie id."""
        uri = self.movie_uri.get(movie_id)
        if uri and uri in self.entity2id:
            return uri
        if movie_id in self.entity2id:
            return movie_id
        return None


def assign_roles(record: dict) -> List[str]:
    """``Seeker``/``Recommender`` for each message of a raw conversation (see module doc)."""
    conv_id = record.get("conversationId")
    by_worker = {}
    if record.get("initiatorWorkerId") is not None:
        by_worker[record["initiatorWorkerId"]] = SEEKER
    if record.get("respondentWorkerId") is not None:
        by_worker[record["respondentWorkerId"]] = RECOMMENDER
    senders = list(dict.fromkeys(m.get("senderWorkerId") for m in record["messages"]))
    unmatched = [s for s in senders if s not in by_worker]
    if unmatched:
        matched_roles = {by_worker[s] for s in senders if s in by_worker}
        if len(senders) == 2 and len(unmatched) == 1 and len(matched_roles) == 1:
            by_worker[unmatched[0]] = RECOMMENDER if matched_roles == {SEEKER} else SEEKER
        else:
            raise ValueError(f"ReDial conversation {conv_id}: cannot tell the roles of senders "
                             f"{unmatched} (initiator {record.get('initiatorWorkerId')}, "
                             f"respondent {record.get('respondentWorkerId')})")
    return [by_worker[m.get("senderWorkerId")] for m in record["messages"]]


class RedialConverter:
    """Converts raw ReDial conversations to CRSLab dialogues, counting as it goes."""

    def __init__(self, kg: RedialKG, linker: EntityLinker, unknown: UnknownMovies):
        self.kg, self.linker, self.unknown = kg, linker, unknown
        self.title_tokens: Set[str] = set()

    def movie_title(self, movie_id: str, mentions: dict) -> Optional[str]:
        name = self.kg.movie_name.get(movie_id)
        if not name and movie_id in mentions:
            name = _YEAR.sub("", mentions[movie_id] or "").strip()
        return name or None

    def convert_message(self, text: str, record: dict, utt_id: int, collect_titles: bool):
        """``(tokens, movie_uris, entity_uris)`` of one message."""
        tokens: List[str] = []
        movies: List[str] = []
        entities: List[str] = []
        mentions = record.get("movieMentions") or {}
        cursor = 0
        for match in list(MENTION.finditer(text)) + [None]:
            plain = text[cursor:match.start() if match else len(text)]
            plain_tokens = word_tokenize(plain)
            tokens.extend(plain_tokens)
            entities.extend(e for e in self.linker.link(plain_tokens) if e not in entities)
            if match is None:
                break
            cursor = match.end()
            movie_id = match.group(1)
            title = self.movie_title(movie_id, mentions)
            title_tokens = word_tokenize(title) if title else ["@" + movie_id]
            tokens.extend(title_tokens)
            if collect_titles and title:
                self.title_tokens.update(title_tokens)
            entity = self.kg.movie_entity(movie_id)
            if entity is None:
                self.unknown.add(movie_id, record.get("conversationId"), utt_id, title)
            elif entity not in movies:
                movies.append(entity)
        return tokens, movies, entities

    def convert(self, record: dict, counts: SplitCounts, collect_titles: bool = False) -> dict:
        roles = assign_roles(record)
        dialog = []
        for utt_id, (message, role) in enumerate(zip(record["messages"], roles)):
            tokens, movies, entities = self.convert_message(message.get("text") or "", record, utt_id,
                                                            collect_titles)
            dialog.append({"utt_id": utt_id, "role": role, "text": tokens, "movies": movies,
                           "entity": entities, "word": []})
            counts.utterances += 1
            counts.movie_mentions += len(movies)
            counts.entity_mentions += len(entities)
            counts.recommendation_instances += role == RECOMMENDER and bool(movies)
        counts.conversations += 1
        counts.add_crslab_view(dialog)
        return {"conv_id": str(record["conversationId"]), "dialog": dialog}


def redial_dir(data_root: Path) -> Path:
    return Path(data_root) / "dataset" / "redial" / "nltk"


def load_redial_splits(raw_dir: Path, options: BuildOptions,
                       carve: Optional[dict] = None) -> Dict[str, List[dict]]:
    """Raw records per split: the seeded valid carve of the pool, then ``options.limit``.
    ``carve`` (if given) receives the pool/carve sizes before the limit."""
    raw_dir = Path(raw_dir)
    pool = read_jsonl(raw_dir / "train_pool.jsonl")
    train, valid = carve_valid(pool, options.valid_fraction, options.seed)
    test = read_jsonl(raw_dir / "test_data.jsonl", limit=options.split_limit("test"))
    splits = {"train": train, "valid": valid, "test": test}
    if carve is not None:
        carve.update({"train_pool": len(pool), "train_carved": len(train), "valid_carved": len(valid)})
    splits = {name: records[:options.split_limit(name)] for name, records in splits.items()}
    for name, file_name in (("train", "train_pool.jsonl"), ("valid", "train_pool.jsonl"), ("test", "test_data.jsonl")):
        note = f" (valid_fraction {options.valid_fraction} of it)" if name == "valid" else ""
        require_conversations(name, splits[name], raw_dir / file_name, note)
    return splits


def build_redial(source_root: Path, data_root: Path, options: Optional[BuildOptions] = None,
                 echo: bool = True) -> BuildReport:
    """Build ``<data_root>/dataset/redial/nltk`` (+ KGSF copy mask) from ``<source_root>/redial``.

    Returns the :class:`BuildReport` (also saved as ``build_report.json``/``.txt``).
    """
    started = time.perf_counter()
    options = options or BuildOptions()
    source_root, data_root = Path(source_root), Path(data_root)
    out_dir = redial_dir(data_root)
    kg = RedialKG.load(source_root / "redial" / "kg")
    carve: dict = {}
    raw = load_redial_splits(source_root / "redial" / "raw", options, carve)

    report = BuildReport(dataset=CRSLAB_NAME, output_dir=str(out_dir.relative_to(data_root)),
                         settings={**options.as_dict(), **carve})
    linker = kg_linker(kg.entity2id, kg.movie_ids, kg.subkg)
    converter = RedialConverter(kg, linker, report.unknown_movies)
    splits: Dict[str, List[dict]] = {}
    for name in SPLITS:
        splits[name] = [converter.convert(rec, report.splits[name], collect_titles=name == "train")
                        for rec in tqdm(raw[name], desc=f"ReDial {name}", leave=False)]

    token2id, graph = build_vocabularies(splits, options)
    # the previous build stays until this block succeeds
    with staged_dataset_and_mask(data_root, out_dir, CRSLAB_NAME) as (tmp_dir, mask_dir):
        _write_build(kg, splits, token2id, graph, converter, options, report, source_root, tmp_dir, mask_dir)
        report.finish(tmp_dir, started, echo)
    return report


def _write_build(kg: RedialKG, splits, token2id, graph, converter: RedialConverter, options: BuildOptions,
                 report: BuildReport, source_root: Path, out_dir: Path, mask_dir: Path) -> None:
    """Write every file of the build into the staged folders ``out_dir`` / ``mask_dir``."""
    entity2id, subkg, movie_ids = kg.entity2id, kg.subkg, kg.movie_ids
    if options.compact_kg:
        entity2id, subkg, movie_ids = _compact(kg, splits, out_dir, options, report)

    for name in SPLITS:
        write_json(out_dir / f"{name}_data.json", splits[name])
    write_json(out_dir / "token2id.json", token2id)
    write_json(out_dir / "entity2id.json", entity2id)
    write_json(out_dir / "dbpedia_subkg.json", subkg)
    write_json(out_dir / "movie_ids.json", movie_ids)
    write_redial_word_graph(graph, out_dir)
    report.item_names = _write_names(kg, source_root / "redial" / "items" / "item_metadata.csv", out_dir,
                                     entity2id, movie_ids)
    save_copy_mask(mask_dir, CRSLAB_NAME, build_copy_mask(token2id, graph.word2id, converter.title_tokens))
    write_built_marker(out_dir, dataset_version("redial"))

    report.items = len(movie_ids)
    report.entities = len(entity2id)
    report.token_vocab_size = len(token2id)
    report.entity_linking = {"method": "lower-cased token n-gram match against DBpedia URI names",
                             "surface_names": len(converter.linker), **converter.linker.stats.as_dict()}
    report.word_graph = graph.summary()
    report.entity_kg.setdefault("pad_entity_id_0", _owner_of_id0(entity2id))
    report.notes.append("roles: senderWorkerId == initiatorWorkerId -> Seeker, == respondentWorkerId "
                        "-> Recommender (all conversations carry both ids)")
    report.notes.append("@movieId mentions replaced in text by the movie name tokens")


def _write_names(kg: RedialKG, metadata_csv: Path, out_dir: Path, entity2id: Dict[str, int],
                 movie_ids: List[int]) -> dict:
    """``item_names.json`` (see :mod:`crslab_mscrs.data.item_names`); returns its coverage."""
    movie_entity = {m: kg.movie_entity(m) for m in set(kg.movie_uri) | set(kg.movie_name)}
    csv_path = metadata_csv if metadata_csv.is_file() else None
    named = redial_named_entities(movie_entity, kg.movie_name, csv_path)
    coverage = write_item_names(out_dir, named, entity2id, movie_ids)
    if csv_path is None:
        coverage["note"] = f"{metadata_csv} absent: names from mid2name_redial.json only"
    return coverage


def _owner_of_id0(entity2id: Dict[str, int]) -> Optional[str]:
    return next((uri for uri, idx in entity2id.items() if idx == 0), None)


def _compact(kg: RedialKG, splits, out_dir: Path, options: BuildOptions, report: BuildReport):
    """1-hop KG around the dialogues' entities, re-indexed; writes ``entity_id_map.json``."""
    seeds = {kg.entity2id[e] for convs in splits.values() for conv in convs for utt in conv["dialog"]
             for e in utt["movies"] + utt["entity"]}
    keep = one_hop_out(kg.subkg, seeds)
    small = compact_kg(kg.entity2id, kg.subkg, kg.movie_ids, keep)
    labelled = {kg.entity2id[m] for convs in splits.values() for conv in convs for utt in conv["dialog"]
                for m in utt["movies"]}
    if len(small.movie_ids) < options.min_items:
        raise ValueError(f"compact ReDial KG keeps {len(small.movie_ids)} items (< {options.min_items}); "
                         "CRSLab ranks the top 50 items: use more conversations")
    assert labelled <= set(small.new_to_old.values())
    write_json(out_dir / "entity_id_map.json", {str(k): v for k, v in small.new_to_old.items()})
    report.entity_kg.update({"compact": True, "seed_entities": len(seeds), "kept_entities": len(keep),
                             "heads": len(small.subkg),
                             "edges": sum(len(v) for v in small.subkg.values())})
    return small.entity2id, small.subkg, small.movie_ids
