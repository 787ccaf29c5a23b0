"""A tiny, deterministic CRSLab-format dataset (processed samples, vocab, side data) for tests,
smoke runs and usage examples of the MSCRS system; no files, no hub, no downloads.

60 films ("Red River", "Blue Moon", ...) with a DBpedia-like URI each, 5 genres, a KG
linking each film to its genre, and short dialogues in which the seeker names a genre
and the recommender suggests a film of that genre. Samples look exactly like CRSLab's
ReDial samples (``_augment_and_add``) plus ``conv_id`` / ``turn_index``.
"""
from __future__ import annotations

import random
from copy import copy
from pathlib import Path
from typing import Dict, List, Tuple

import torch

ADJECTIVES = ["red", "blue", "silent", "wild", "lost", "golden"]
NOUNS = ["river", "moon", "city", "garden", "storm", "island", "road", "house", "star", "forest"]
GENRES = ["Comedy", "Horror", "Drama", "Western", "Musical"]
N_ITEMS = len(ADJECTIVES) * len(NOUNS)
WORDS = ["hi", "hello", "i", "like", "love", "movies", "movie", "have", "you", "seen", "?", "yes", "no",
         "it", "was", "great", "thanks", "bye", "try", "maybe", "what", "about", ".", ",", "(", ")", "2011"]
SPECIALS = ["__pad__", "__start__", "__end__", "__unk__"]


def _title(item: int) -> List[str]:
    adjective, noun = ADJECTIVES[item // len(NOUNS)], NOUNS[item % len(NOUNS)]
    return [adjective.capitalize(), noun.capitalize()]


def toy_vocab_and_side_data() -> Tuple[dict, dict]:
    words = SPECIALS + WORDS + [g.lower() for g in GENRES] + [w.capitalize() for w in ADJECTIVES + NOUNS]
    tok2ind = {w: i for i, w in enumerate(words)}
    entity2id = {"<http://dbpedia.org/resource/Padding>": 0}
    for item in range(N_ITEMS):
        entity2id[f"<http://dbpedia.org/resource/{'_'.join(_title(item))}_(film)>"] = item + 1
    for g, genre in enumerate(GENRES):
        entity2id[f"<http://dbpedia.org/resource/{genre}>"] = N_ITEMS + 1 + g
    id2entity = {i: e for e, i in entity2id.items()}
    edges = set()
    for item in range(N_ITEMS):
        genre_entity = N_ITEMS + 1 + item % len(GENRES)
        edges.add((item + 1, genre_entity, 0))
        edges.add((genre_entity, item + 1, 1))
    for entity in range(1, len(entity2id)):
        edges.add((entity, entity, 2))
    vocab = {"tok2ind": tok2ind, "ind2tok": {i: w for w, i in tok2ind.items()}, "entity2id": entity2id,
             "id2entity": id2entity, "word2id": {}, "vocab_size": len(tok2ind), "n_entity": len(entity2id),
             "n_word": 1, "pad": 0, "start": 1, "end": 2, "unk": 3, "pad_entity": 0, "pad_word": 0}
    side_data = {"entity_kg": {"edge": sorted(edges), "n_relation": 3, "entity": list(entity2id)},
                 "word_kg": {"edge": [], "entity": []},
                 "item_entity_ids": list(range(1, N_ITEMS + 1))}
    return vocab, side_data


def _dialogue(rng: random.Random) -> List[dict]:
    genre = rng.randrange(len(GENRES))
    films = [i for i in range(N_ITEMS) if i % len(GENRES) == genre]
    first, second = rng.sample(films, 2)
    g_word, g_entity = GENRES[genre].lower(), N_ITEMS + 1 + genre
    return [
        {"role": "Seeker", "text": ["hi", "i", "like", g_word, "movies"], "entity": [g_entity], "movie": []},
        {"role": "Recommender", "text": ["have", "you", "seen"] + _title(first) + ["(", "2011", ")", "?"],
         "entity": [], "movie": [first + 1]},
        {"role": "Seeker", "text": ["no", ",", "what", "about", "it", "?"], "entity": [], "movie": []},
        {"role": "Recommender", "text": ["try"] + _title(second) + [".", "it", "was", "great"],
         "entity": [], "movie": [second + 1]},
        {"role": "Seeker", "text": ["thanks", "bye"], "entity": [], "movie": []},
    ]


def _samples(conv_id: str, dialogue: List[dict], tok2ind: Dict[str, int]) -> List[dict]:
    """CRSLab's ``_augment_and_add`` on one dialogue, with conversation tags."""
    samples, context_tokens, context_entities, context_items, seen = [], [], [], [], set()
    for k, turn in enumerate(dialogue):
        ids = [tok2ind.get(w, 3) for w in turn["text"]]
        if context_tokens:
            samples.append({"role": turn["role"], "context_tokens": copy(context_tokens), "response": ids,
                            "context_entities": copy(context_entities), "context_words": [],
                            "context_items": copy(context_items), "items": list(turn["movie"]),
                            "conv_id": conv_id, "turn_index": k})
        context_tokens.append(ids)
        context_items += turn["movie"]
        for entity in turn["entity"] + turn["movie"]:
            if entity not in seen:
                seen.add(entity)
                context_entities.append(entity)
    return samples


def toy_splits(n_train: int = 12, n_valid: int = 4, n_test: int = 4, seed: int = 0) -> Dict[str, List[dict]]:
    vocab, _ = toy_vocab_and_side_data()
    rng = random.Random(seed)
    splits = {}
    for name, count in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        samples = []
        for c in range(count):
            samples += _samples(f"{name}{c}", _dialogue(rng), vocab["tok2ind"])
        splits[name] = samples
    return splits


def write_toy_graphs(folder: Path) -> Path:
    """Co-occurrence (entities) and text / image kNN graphs (items) for the toy KG."""
    from crslab_mscrs.graphs.cooccurrence import Graph
    from crslab_mscrs.graphs.storage import save_graph
    from crslab_mscrs.model.graph_files import GRAPH_FILES

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n_entity = N_ITEMS + 1 + len(GENRES)
    same_genre = [(i + 1, j + 1) for i in range(N_ITEMS) for j in range(N_ITEMS)
                  if i != j and i % len(GENRES) == j % len(GENRES) and abs(i - j) <= 10]
    co = [(i + 1, N_ITEMS + 1 + i % len(GENRES)) for i in range(N_ITEMS)]
    co += [(b, a) for a, b in co]
    graphs = {"use_cooccurrence_graph": co, "use_text_graph": same_genre,
              "use_image_graph": [(a, b) for a, b in same_genre if (a + b) % 3]}
    for key, pairs in graphs.items():
        index = torch.tensor(pairs, dtype=torch.long).t()
        save_graph(Graph(index, torch.ones(index.shape[1]), n_entity), folder / GRAPH_FILES[key],
                   parameters={"toy": True})
    return folder
