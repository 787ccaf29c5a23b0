"""Tiny random inputs for tests, smoke runs and usage examples (no data, no hub).

A 10-entity KG (entity 0 = padding, items 1..5) with three relations whose raw ids are not
0..R-1 (to exercise the remapping), a co-occurrence graph over entities, text and image kNN
graphs over the items, and batches in the model/system contract format.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import torch

TINY_N_ENTITY = 10
TINY_ITEM_IDS = [1, 2, 3, 4, 5]
TINY_RELATIONS = (3, 7, 12)  # raw ids, remapped to 0..2


def tiny_side_data() -> Dict[str, object]:
    """CRSLab-style ``side_data`` and ``vocab`` pieces for the tiny KG."""
    edges = []
    for head in range(1, TINY_N_ENTITY):
        tail = head % (TINY_N_ENTITY - 1) + 1
        relation = TINY_RELATIONS[head % len(TINY_RELATIONS)]
        edges += [(head, tail, relation), (tail, head, relation)]
    edges += [(entity, entity, TINY_RELATIONS[0]) for entity in range(1, TINY_N_ENTITY)]
    return {"entity_kg": {"edge": edges, "n_relation": len(TINY_RELATIONS), "entity": list(range(TINY_N_ENTITY))},
            "item_entity_ids": list(TINY_ITEM_IDS)}


def tiny_vocab() -> Dict[str, int]:
    return {"n_entity": TINY_N_ENTITY, "pad_entity": 0}


def _graph(pairs, num_nodes=TINY_N_ENTITY, weights=None) -> Dict[str, object]:
    index = torch.tensor(pairs, dtype=torch.long).t()
    index = torch.cat([index, index.flip(0)], dim=1)  # symmetric
    weight = torch.tensor(weights if weights else [1.0] * len(pairs), dtype=torch.float32).repeat(2)
    return {"edge_index": index, "edge_weight": weight, "num_nodes": num_nodes}


def tiny_graphs() -> Dict[str, Dict[str, object]]:
    """Co-occurrence (entities, weighted), text and image (items only) graphs, entity id space."""
    return {
        "use_cooccurrence_graph": _graph([(1, 6), (2, 7), (3, 1), (8, 9), (4, 2)], weights=[3, 1, 2, 1, 5]),
        "use_text_graph": _graph([(1, 2), (2, 3), (4, 5)]),
        "use_image_graph": _graph([(1, 5), (3, 4)]),
    }


def write_tiny_graph_files(folder: Path) -> Path:
    """Write the tiny graphs as ``cooccurrence_graph.pt`` etc. into ``folder``."""
    from crslab_mscrs.model.graph_files import GRAPH_FILES

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:  # with a manifest entry, so the stale-file check of the graph storage accepts them
        from crslab_mscrs.graphs.cooccurrence import Graph
        from crslab_mscrs.graphs.storage import save_graph
    except ImportError:
        save_graph = None
    for key, graph in tiny_graphs().items():
        if save_graph is None:
            torch.save(graph, folder / GRAPH_FILES[key])
        else:
            save_graph(Graph(graph["edge_index"], graph["edge_weight"], graph["num_nodes"]), folder / GRAPH_FILES[key])
    return folder


def tiny_opt(features_dir: Optional[Path] = None, lm: str = "tiny-random-gpt2", **overrides) -> Dict[str, object]:
    """A flat CRSLab ``opt`` for :meth:`PromptCRS.from_opt` with tiny random models."""
    opt = {"lm": lm, "text_encoder": "tiny-random-bert", "num_bases": 2, "n_prefix_rec": 3, "n_prefix_conv": 4,
           "lightgcn_layers": 2, "lambda_text": 1.0, "lambda_image": 1.0, "use_cooccurrence_graph": True,
           "use_text_graph": True, "use_image_graph": True, "contrastive_weight": 0.0}
    if features_dir is not None:
        opt["features_dir"] = str(features_dir)
    opt.update(overrides)
    return opt


def _left_pad(rows, pad_id: int, left: bool = True):
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span] = torch.tensor(row)
        mask[i, span] = 1
    return ids, mask


def tiny_batch(lm_tokenizer, text_tokenizer, task: str = "rec", entity_lists=None, labels=None,
               contexts=None, responses=None) -> Dict[str, torch.Tensor]:
    """A batch in the contract format for ``task`` in rec / pretrain / conv / generate."""
    contexts = contexts or ["User: I loved the matrix, anything similar?", "User: hi"]
    entity_lists = entity_lists if entity_lists is not None else [[1, 6], [2]]
    prompt = text_tokenizer(contexts, padding=True, return_tensors="pt")
    entity_ids, entity_mask = _left_pad([row or [0] for row in entity_lists], 0, left=False)
    entity_mask = entity_mask.bool() & (entity_ids != 0)
    batch = {"prompt_input_ids": prompt["input_ids"], "prompt_attention_mask": prompt["attention_mask"],
             "entity_ids": entity_ids, "entity_mask": entity_mask}
    eos = lm_tokenizer.eos_token
    context_ids = [lm_tokenizer(text + eos + "System: ", add_special_tokens=False)["input_ids"]
                   for text in contexts]
    pad = lm_tokenizer.pad_token_id
    if task in ("rec", "pretrain", "generate"):
        batch["input_ids"], batch["attention_mask"] = _left_pad(context_ids, pad, left=True)
        if task != "generate":
            batch["labels"] = torch.tensor(labels if labels is not None else TINY_ITEM_IDS[:len(contexts)])
    elif task == "conv":
        responses = responses or ["try <movie>, it is great." + eos, "hello! what do you like?" + eos]
        response_ids = [lm_tokenizer(text, add_special_tokens=False)["input_ids"] for text in responses]
        rows = [c + r for c, r in zip(context_ids, response_ids)]
        batch["input_ids"], batch["attention_mask"] = _left_pad(rows, pad, left=False)
        label_rows = [[-100] * len(c) + r for c, r in zip(context_ids, response_ids)]
        batch["labels"], _ = _left_pad(label_rows, -100, left=False)
    else:
        raise ValueError(f"unknown task {task!r}")
    return batch


class single_thread:
    """Context manager: run torch on one thread (tiny models are ~50x faster on a shared CPU,
    where several intra-op threads spin against each other)."""

    def __enter__(self):
        self._threads = torch.get_num_threads()
        torch.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        torch.set_num_threads(self._threads)
        return False
