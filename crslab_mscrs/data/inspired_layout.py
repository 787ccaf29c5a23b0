"""Writing converted dialogues + a KG as a CRSLab INSPIRED-layout ``nltk`` folder, atomically.

One owner of the tail every INSPIRED-layout builder shares (the INSPIRED builder,
:mod:`crslab_mscrs.data.inspired`, and the generic builder of user datasets,
:mod:`crslab_mscrs.data.custom.builder`): TRAIN vocabularies and word graph, labelled items
added to the item list, the optional compact KG, the files CRSLab's ``InspiredDataset``
reads (``{split}_data.json``, ``token2id.json``, ``entity2id.json``, ``movie_ids.json``,
``dbpedia_subkg.txt``, ``word2id.json``, ``concept_subkg.txt``), ``item_names.json``, the
KGSF copy mask, the build report and the ``.built`` marker. The dataset folder and the copy
mask are staged together and swapped in only when everything was written
(:func:`crslab_mscrs.data.copy_mask.staged_dataset_and_mask`, docs/data.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Set

from crslab_mscrs.data.build_options import BuildOptions
from crslab_mscrs.data.copy_mask import build_copy_mask, save_copy_mask, staged_dataset_and_mask
from crslab_mscrs.data.crslab_format import write_built_marker, write_json
from crslab_mscrs.data.inspired_kg import InspiredKG, write_inspired_kg
from crslab_mscrs.data.item_names import NamedEntities, write_item_names
from crslab_mscrs.data.kg_subset import compact_kg, one_hop_out
from crslab_mscrs.data.report import SPLITS, BuildReport
from crslab_mscrs.data.vocabularies import build_vocabularies
from crslab_mscrs.data.word_graph import write_inspired_word_graph


@dataclass
class ConvertedDataset:
    """What a converter hands to :func:`write_inspired_layout`."""
    crslab_name: str            # CRSLab dataset name (``Inspired``, or the user's name)
    version: str                # second line of ``.built`` (what the registered loader expects)
    splits: Dict[str, List[dict]]
    kg: InspiredKG
    named: NamedEntities = field(default_factory=dict)     # entity key -> (item name, source)
    title_tokens: Set[str] = field(default_factory=set)     # TRAIN movie-title tokens (copy mask)


def write_inspired_layout(data: ConvertedDataset, out_dir: Path, data_root: Path, options: BuildOptions,
                          report: BuildReport, started: float, echo: bool = True,
                          extra_files: Optional[Callable[[Path, InspiredKG], None]] = None) -> InspiredKG:
    """Write ``data`` into ``out_dir`` (see module doc); returns the KG as written (compacted
    when ``options.compact_kg``). ``extra_files(folder, kg)`` may add files before ``.built``."""
    kg, splits = data.kg, data.splits
    token2id, graph = build_vocabularies(splits, options)
    labelled = {kg.entity2id[m] for convs in splits.values() for conv in convs
                for utt in conv["dialog"] for m in utt["movies"]}
    extra_items = sorted(labelled - set(kg.item_ids))
    kg.item_ids = list(kg.item_ids) + extra_items
    report.entity_kg["labelled_movies_added_to_items"] = len(extra_items)
    report.entity_kg["pad_entity_id_0"] = next((u for u, i in kg.entity2id.items() if i == 0), None)
    # the previous build (dataset and copy mask) stays until this block succeeds
    with staged_dataset_and_mask(data_root, out_dir, data.crslab_name) as (tmp_dir, mask_dir):
        if options.compact_kg:
            seeds = {kg.entity2id[e] for convs in splits.values() for conv in convs
                     for utt in conv["dialog"] for e in utt["movies"] + utt["entity"]}
            keep = one_hop_out(kg.subkg, seeds)
            small = compact_kg(kg.entity2id, kg.subkg, kg.item_ids, keep)
            if len(small.movie_ids) < options.min_items:
                raise ValueError(f"compact {data.crslab_name} KG keeps {len(small.movie_ids)} items "
                                 f"(< {options.min_items}): use more conversations")
            kg = InspiredKG(small.entity2id, small.subkg, small.movie_ids, kg.relation_names)
            write_json(tmp_dir / "entity_id_map.json", {str(k): v for k, v in small.new_to_old.items()})
            report.entity_kg.update({"compact": True, "seed_entities": len(seeds), "kept_entities": len(keep),
                                     "pad_entity_id_0": None})
        for name in SPLITS:
            write_json(tmp_dir / f"{name}_data.json", splits[name])
        write_json(tmp_dir / "token2id.json", token2id)
        report.entity_kg.update(write_inspired_kg(kg, tmp_dir))
        write_inspired_word_graph(graph, tmp_dir)
        report.item_names = write_item_names(tmp_dir, data.named, kg.entity2id, kg.item_ids)
        if extra_files is not None:
            extra_files(tmp_dir, kg)
        save_copy_mask(mask_dir, data.crslab_name, build_copy_mask(token2id, graph.word2id, data.title_tokens))
        write_built_marker(tmp_dir, data.version)
        report.items = len(kg.item_ids)
        report.entities = len(kg.entity2id)
        report.token_vocab_size = len(token2id)
        report.word_graph = graph.summary()
        report.finish(tmp_dir, started, echo)
    return kg
