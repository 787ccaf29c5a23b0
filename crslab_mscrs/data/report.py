"""Build reports: what a dataset build produced, saved beside the data.

Every build prints and saves ``build_report.json`` and ``build_report.txt`` (a short
table) in the dataset folder. Counted per split: conversations, utterances (one per raw
message / turn) and recommendation instances (recommender utterances with >= 1 movie
known to the KG). ``crslab_rec_turns`` / ``crslab_rec_pairs`` count what CRSLab's loaders
will make of it: consecutive same-role utterances merged, the first turn dropped (it has
no context), recommender turns with >= 1 movie, and (turn, movie) training pairs.
Unknown movie ids are counted with examples, never dropped silently.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

from crslab_mscrs.data.turns import group_by_role

SPLITS = ("train", "valid", "test")


@dataclass
class SplitCounts:
    conversations: int = 0
    utterances: int = 0
    recommendation_instances: int = 0
    movie_mentions: int = 0
    entity_mentions: int = 0
    crslab_rec_turns: int = 0
    crslab_rec_pairs: int = 0

    def add_crslab_view(self, dialog: List[dict]) -> None:
        """Count the recommendation samples CRSLab's ReDial/INSPIRED loaders derive."""
        for role, utterances in group_by_role(dialog)[1:]:
            n_movies = sum(len(utt["movies"]) for utt in utterances)
            if role == "Recommender" and n_movies:
                self.crslab_rec_turns += 1
                self.crslab_rec_pairs += n_movies


@dataclass
class UnknownMovies:
    """Movie mentions that could not be mapped to a KG entity."""
    mentions: int = 0
    ids: Counter = field(default_factory=Counter)
    examples: List[dict] = field(default_factory=list)
    max_examples: int = 10

    def add(self, movie_id: str, conv_id, utt_id: int, name=None) -> None:
        self.mentions += 1
        self.ids[movie_id] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append({"movie_id": movie_id, "name": name, "conv_id": conv_id, "utt_id": utt_id})

    def as_dict(self) -> dict:
        return {"mentions": self.mentions, "distinct_ids": len(self.ids),
                "most_frequent": [[k, v] for k, v in self.ids.most_common(10)],
                "examples": self.examples}


@dataclass
class BuildReport:
    dataset: str
    output_dir: str  # relative to the data root, e.g. "dataset/redial/nltk"
    splits: Dict[str, SplitCounts] = field(default_factory=lambda: {s: SplitCounts() for s in SPLITS})
    items: int = 0
    entities: int = 0
    token_vocab_size: int = 0
    unknown_movies: UnknownMovies = field(default_factory=UnknownMovies)
    entity_linking: dict = field(default_factory=dict)
    word_graph: dict = field(default_factory=dict)
    entity_kg: dict = field(default_factory=dict)
    item_names: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "output_dir": self.output_dir,
            "splits": {name: vars(counts) for name, counts in self.splits.items()},
            "items": self.items,
            "entities": self.entities,
            "token_vocab_size": self.token_vocab_size,
            "unknown_movies": self.unknown_movies.as_dict(),
            "entity_linking": self.entity_linking,
            "word_graph": self.word_graph,
            "entity_kg": self.entity_kg,
            "item_names": self.item_names,
            "settings": self.settings,
            "notes": self.notes,
            "elapsed_s": round(self.elapsed_s, 2),
        }

    def table(self) -> str:
        """A short fixed-width summary."""
        lines = [f"{self.dataset} -> <data root>/{self.output_dir}",
                 f"{'split':<6} {'convs':>7} {'utts':>8} {'rec_inst':>9} {'movies':>8} {'entities':>9} "
                 f"{'crslab_rec':>11} {'rec_pairs':>10}"]
        for name, c in self.splits.items():
            lines.append(f"{name:<6} {c.conversations:>7} {c.utterances:>8} {c.recommendation_instances:>9} "
                         f"{c.movie_mentions:>8} {c.entity_mentions:>9} {c.crslab_rec_turns:>11} "
                         f"{c.crslab_rec_pairs:>10}")
        lines.append(f"items {self.items}  entities {self.entities}  tokens {self.token_vocab_size}  "
                     f"unknown movie mentions {self.unknown_movies.mentions} "
                     f"({len(self.unknown_movies.ids)} ids)")
        if self.word_graph:
            lines.append(f"word graph: {self.word_graph.get('source')} "
                         f"{self.word_graph.get('n_words')} words, {self.word_graph.get('n_edges')} edges")
        if self.item_names:
            lines.append(f"item names: {self.item_names.get('named')} of {self.item_names.get('items')} items "
                         f"({self.item_names.get('file')})")
        lines.append(f"built in {self.elapsed_s:.1f} s")
        return "\n".join(lines)

    def finish(self, directory: Path, started: float, echo: bool = True) -> Path:
        """Record the time since ``started`` (``time.perf_counter()``) and :meth:`save`."""
        self.elapsed_s = time.perf_counter() - started
        return self.save(directory, echo)

    def save(self, directory: Path, echo: bool = True) -> Path:
        directory = Path(directory)
        path = directory / "build_report.json"
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        (directory / "build_report.txt").write_text(self.table() + "\n", encoding="utf-8")
        if echo:
            print(self.table())
        return path
