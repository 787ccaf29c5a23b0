"""INSPIRED raw JSONL -> CRSLab's INSPIRED ``nltk`` format (loaded by CRSLab's ``InspiredDataset``).

Hayati et al., "INSPIRED: Toward Sociable Recommendation Dialog Systems", EMNLP 2020.

Choices (all reported in ``build_report.json``):

* **Splits.** The official train/valid/test files (801/99/99 dialogues); ``conv_id`` is
  ``"<split>-<line index>"``. One utterance per turn, ``utt_id`` = 0-based turn index,
  ``SEEKER``/``RECOMMENDER`` -> ``Seeker``/``Recommender`` (anything else fails, naming
  file and line).
* **Movies / entities.** The dataset's own DBpedia links (``movie_link``,
  ``entity_link``); links missing from ``kg/entity2id.json`` are counted as unknown.
  The text already names the movies, so ``text`` is the tokenised turn.
* **Ids.** ``entity2id.json`` is the shared INSPIRED file unchanged (ids 0..17319). Note
  that id 0, CRSLab's ``pad_entity``, IS an entity (reported as ``pad_entity_id_0``).
* **Items.** ``movie_ids.json`` = ``kg/item_ids.json`` plus every labelled movie (any
  split) that is in ``entity2id`` but not in that list, because CRSLab ranks
  ``scores[:, item_ids]`` and an unlisted label could never be hit (count reported).
* **Item names.** ``item_names.json`` (entity id -> movie name): the dialogues'
  ``movie_name`` spellings, then ``items/item_mapping_guess.csv`` (see
  :mod:`crslab_mscrs.data.item_names`); coverage reported.
* **KG.** ``dbpedia_subkg.txt`` = ``head_uri\\trelation_uri\\ttail_uri`` for every edge of
  ``kg/dbpedia_subkg.json`` except the ``self_loop`` relation (CRSLab's loader adds its
  own ``SELF_LOOP`` edges).
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Set

from tqdm import tqdm

from crslab_mscrs.data.build_options import BuildOptions
from crslab_mscrs.data.copy_mask import build_copy_mask, save_copy_mask, staged_dataset_and_mask
from crslab_mscrs.data.crslab_format import dataset_version, require_conversations, write_built_marker, write_json
from crslab_mscrs.data.inspired_kg import InspiredKG, write_inspired_kg
from crslab_mscrs.data.item_names import inspired_named_entities, write_item_names
from crslab_mscrs.data.jsonl import iter_jsonl
from crslab_mscrs.data.kg_subset import compact_kg, one_hop_out
from crslab_mscrs.data.report import SPLITS, BuildReport, SplitCounts
from crslab_mscrs.data.tokenize import word_tokenize
from crslab_mscrs.data.vocabularies import build_vocabularies
from crslab_mscrs.data.word_graph import write_inspired_word_graph

CRSLAB_NAME = "Inspired"
ROLES = {"SEEKER": "Seeker", "RECOMMENDER": "Recommender"}


def inspired_dir(data_root: Path) -> Path:
    return Path(data_root) / "dataset" / "inspired" / "nltk"


class InspiredConverter:
    """Converts raw INSPIRED dialogues to CRSLab dialogues, counting as it goes."""

    def __init__(self, entity2id: Dict[str, int], report: BuildReport):
        self.entity2id = entity2id
        self.report = report
        self.title_tokens: Set[str] = set()
        self.unknown_entities = 0
        self.movie_names: Dict[str, Counter] = defaultdict(Counter)  # uri -> spellings in the text

    def convert(self, turns: list, conv_id: str, where: str, counts: SplitCounts,
                collect_titles: bool = False) -> dict:
        if not isinstance(turns, list):
            raise ValueError(f"{where}: expected a list of turns, got {type(turns).__name__}")
        dialog = []
        for utt_id, turn in enumerate(turns):
            role = ROLES.get(turn.get("role"))
            if role is None:
                raise ValueError(f"{where}: turn {utt_id} has role {turn.get('role')!r}, "
                                 f"expected one of {sorted(ROLES)}")
            tokens = word_tokenize(turn.get("text") or "")
            movies: List[str] = []
            for uri, name in zip(turn.get("movie_link") or [], turn.get("movie_name") or []):
                if uri not in self.entity2id:
                    self.report.unknown_movies.add(uri, conv_id, utt_id, name)
                elif uri not in movies:
                    movies.append(uri)
                if uri in self.entity2id and name:
                    self.movie_names[uri][name] += 1
                if collect_titles and name:
                    self.title_tokens.update(word_tokenize(name))
            entities: List[str] = []
            for uri in turn.get("entity_link") or []:
                if uri not in self.entity2id:
                    self.unknown_entities += 1
                elif uri not in entities:
                    entities.append(uri)
            dialog.append({"utt_id": utt_id, "role": role, "text": tokens, "movies": movies,
                           "entity": entities, "word": []})
            counts.utterances += 1
            counts.movie_mentions += len(movies)
            counts.entity_mentions += len(entities)
            counts.recommendation_instances += role == "Recommender" and bool(movies)
        counts.conversations += 1
        counts.add_crslab_view(dialog)
        return {"conv_id": conv_id, "dialog": dialog}


def build_inspired(source_root: Path, data_root: Path, options: Optional[BuildOptions] = None,
                   echo: bool = True) -> BuildReport:
    """Build ``<data_root>/dataset/inspired/nltk`` (+ KGSF copy mask) from ``<source_root>/inspired``."""
    started = time.perf_counter()
    options = options or BuildOptions()
    source_root, data_root = Path(source_root), Path(data_root)
    out_dir = inspired_dir(data_root)
    kg = InspiredKG.load(source_root / "inspired" / "kg")
    settings = options.as_dict()
    settings["valid_fraction"] = settings["seed"] = None  # INSPIRED ships its own valid split
    report = BuildReport(dataset=CRSLAB_NAME, output_dir=str(out_dir.relative_to(data_root)),
                         settings=settings)
    converter = InspiredConverter(kg.entity2id, report)
    splits: Dict[str, List[dict]] = {}
    for name in SPLITS:
        path = source_root / "inspired" / "raw" / f"{name}_data_dbpedia.jsonl"
        splits[name] = [
            converter.convert(turns, f"{name}-{i}", f"{path}:{line_no}", report.splits[name],
                              collect_titles=name == "train")
            for i, (line_no, turns) in enumerate(tqdm(iter_jsonl(path, options.split_limit(name)),
                                                      desc=f"INSPIRED {name}", leave=False))]
        require_conversations(name, splits[name], path)

    token2id, graph = build_vocabularies(splits, options)
    labelled = {kg.entity2id[m] for convs in splits.values() for conv in convs
                for utt in conv["dialog"] for m in utt["movies"]}
    extra_items = sorted(labelled - set(kg.item_ids))
    kg.item_ids = list(kg.item_ids) + extra_items
    report.entity_kg["labelled_movies_added_to_items"] = len(extra_items)
    report.entity_kg["pad_entity_id_0"] = next((u for u, i in kg.entity2id.items() if i == 0), None)
    # the previous build stays until this block succeeds
    with staged_dataset_and_mask(data_root, out_dir, CRSLAB_NAME) as (tmp_dir, mask_dir):
        _write_build(kg, splits, token2id, graph, converter, options, report, source_root, tmp_dir, mask_dir)
        report.finish(tmp_dir, started, echo)
    return report


def _write_build(kg: InspiredKG, splits, token2id, graph, converter: InspiredConverter, options: BuildOptions,
                 report: BuildReport, source_root: Path, out_dir: Path, mask_dir: Path) -> None:
    """Write every file of the build into the staged folders ``out_dir`` / ``mask_dir``."""
    if options.compact_kg:
        seeds = {kg.entity2id[e] for convs in splits.values() for conv in convs
                 for utt in conv["dialog"] for e in utt["movies"] + utt["entity"]}
        keep = one_hop_out(kg.subkg, seeds)
        small = compact_kg(kg.entity2id, kg.subkg, kg.item_ids, keep)
        if len(small.movie_ids) < options.min_items:
            raise ValueError(f"compact INSPIRED KG keeps {len(small.movie_ids)} items "
                             f"(< {options.min_items}): use more conversations")
        kg = InspiredKG(small.entity2id, small.subkg, small.movie_ids, kg.relation_names)
        write_json(out_dir / "entity_id_map.json", {str(k): v for k, v in small.new_to_old.items()})
        report.entity_kg.update({"compact": True, "seed_entities": len(seeds), "kept_entities": len(keep),
                                 "pad_entity_id_0": None})

    for name in SPLITS:
        write_json(out_dir / f"{name}_data.json", splits[name])
    write_json(out_dir / "token2id.json", token2id)
    kg_counts = write_inspired_kg(kg, out_dir)
    write_inspired_word_graph(graph, out_dir)
    mapping_csv = source_root / "inspired" / "items" / "item_mapping_guess.csv"
    named = inspired_named_entities(converter.movie_names, mapping_csv if mapping_csv.is_file() else None)
    report.item_names = write_item_names(out_dir, named, kg.entity2id, kg.item_ids)
    save_copy_mask(mask_dir, CRSLAB_NAME, build_copy_mask(token2id, graph.word2id, converter.title_tokens))
    write_built_marker(out_dir, dataset_version("inspired"))

    report.items = len(kg.item_ids)
    report.entities = len(kg.entity2id)
    report.token_vocab_size = len(token2id)
    report.entity_linking = {"method": "INSPIRED's own entity_link annotations",
                             "unknown_entity_links": converter.unknown_entities,
                             "entity_mentions": sum(c.entity_mentions for c in report.splits.values())}
    report.entity_kg.update(kg_counts)
    report.word_graph = graph.summary()
