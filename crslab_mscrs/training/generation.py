"""Test generation of the conversation stage: replies, ``<movie>`` slot filling, journal.

Every recommender turn of the test split gets a generated reply; its ``<movie>`` slots are
filled, in rank order, with the names (:class:`~crslab_mscrs.data.item_names.ItemNames`) of
the recommender's top items, ranked with the rec stage's chosen weights (``rec_best.pth``).
The pass is journaled (:mod:`.generation_journal`), so a run killed while generating
resumes it. Metrics: perplexity of the references and the generation metrics of
:mod:`crslab_mscrs.evaluation.generation` on the filled replies (``outputs.generation_metrics``).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from math import ceil
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from loguru import logger
from tqdm import tqdm

from crslab_mscrs.batches.movie_mentions import count_placeholders, fill_placeholders
from crslab_mscrs.training import distributed
from crslab_mscrs.training.checkpoint import temporary_weights, trainable_tensors
from crslab_mscrs.training.generation_journal import (JOURNAL_NAME, GenerationJournal, rows_fingerprint,
                                                      state_fingerprint)
from crslab_mscrs.training.outputs import generation_metrics
from crslab_mscrs.training.settings import GenerationSettings, generation_inputs

SLOT_CANDIDATES = 10
"""Items ranked per reply with a slot (a reply rarely has more than a few slots)."""


def fill_reply(raw: str, items: Sequence[int], item_names, placeholder: str) -> dict:
    """A raw reply with its ``<movie>`` slots filled by the names of ``items`` (best first)."""
    names = [item_names.name(e) for e in items]
    return {"raw": raw, "reply": fill_placeholders(raw, names, placeholder),
            "n_slots": count_placeholders(raw, placeholder), "top_items": list(items[:3])}


class Generation:
    """Test replies of ``system`` (an :class:`~.system.MSCRSSystem`)."""

    def __init__(self, system):
        self.system = system

    def on_replies_saved(self, n_done: int) -> None:
        """Hook called after each journaled generation batch (tests simulate kills here)."""

    def conv_test(self, batch_size: int) -> dict:
        """Perplexity and generation metrics on the test split; the replies go to
        ``test_replies.jsonl``. Progress is journaled, so a killed run resumes the pass."""
        system = self.system
        key = self.journal_key(system.test_dataloader, batch_size)
        journal = distributed.shared_journal(lambda: GenerationJournal(system.run_dir / JOURNAL_NAME, key))
        if journal.nll is None:
            nll, tokens = system.evaluation.conv_nll(system.test_dataloader, batch_size)
            journal.record_nll(nll, tokens)
        else:
            nll, tokens = journal.nll
            logger.info(f"[conv test: teacher-forced pass and {journal.n_done} replies reused from {journal.path}]")
        loss = nll / max(tokens, 1)
        replies = self.generate_replies(system.test_dataloader, batch_size, journal=journal)
        metrics = {"loss": loss, "ppl": math.exp(min(loss, 50)), "n_tokens": tokens,
                   "generation": generation_metrics([r["reply"] for r in replies], [r["reference"] for r in replies],
                                                    [r["n_slots"] > 0 for r in replies], nll, tokens,
                                                    slot_counts=[r["n_slots"] for r in replies],
                                                    system_prefix=system.opt.get("model") == "MSCRS")}
        path = system.outputs.write_replies(replies)
        journal.remove()
        logger.info(f"[conv test: loss {loss:.4f}, ppl {metrics['ppl']:.2f}; replies in {path}]")
        return metrics

    def journal_key(self, loader, batch_size: int) -> dict:
        """What the test replies depend on: a journal made under another key is not reused."""
        system = self.system
        turns = [loader.turns[i] for i in loader.generation_rows()]
        generation = GenerationSettings.from_opt(system.opt).as_kwargs()
        return {"weights": state_fingerprint(trainable_tensors(system.net)),
                "rows": rows_fingerprint((t.conv_id, t.turn_index) for t in turns), "n_rows": len(turns),
                "batch_size": batch_size, "generation": generation, "inputs": generation_inputs(system.opt),
                "device": system.device.type, "bf16": system.use_bf16,
                "sampling_seed": system.settings.seed if generation["do_sample"] else None}

    @torch.no_grad()
    def generate_replies(self, loader, batch_size: int, journal: Optional[GenerationJournal] = None) -> List[dict]:
        """Generate a reply for every recommender turn and fill its ``<movie>`` slots with
        the recommender's top items (ranked with the rec stage's chosen weights).

        With a ``journal``, the replies it holds are reused and each new batch is added to it
        before the next starts. With ``do_sample``, each batch samples from its own seed
        (run seed and row number), so a resumed pass draws what an uninterrupted one would.

        Items are ranked only for the replies that have a slot (``top_items`` is empty for the
        others): on CPU the ranking pass costs as much as a second prefill of every context."""
        system = self.system
        system.model.eval()
        system.demonstrations.attach(system.loaders())
        rows = loader.generation_rows()
        raw_replies = [r["raw"] for r in journal.replies] if journal else []
        tokenizer = system.core.lm_tokenizer
        kwargs = GenerationSettings.from_opt(system.opt).as_kwargs()
        starts = range(len(raw_replies), len(rows), batch_size)

        def generate_batch(start: int):
            batch = loader.generation_batchify(rows[start:start + batch_size])
            with self.sampling_rng(start if kwargs["do_sample"] else None), system.autocast():
                new_tokens = system.core.generate(system.to_device(batch), **kwargs)
            texts = [text.strip() for text in tokenizer.batch_decode(new_tokens.cpu(), skip_special_tokens=True)]
            meta = batch["meta"]
            return [{"conv_id": meta["conv_ids"][i], "turn_index": meta["turn_indices"][i], "raw": text}
                    for i, text in enumerate(texts)]

        parallel = system.data_parallel  # torchrun: one batch per rank per round, gathered in order
        progress = tqdm(total=ceil(len(rows) / batch_size), initial=ceil(len(raw_replies) / batch_size),
                        desc="generate", leave=False)
        for starts_of_round in parallel.rounds(starts):
            for start, records in zip(starts_of_round, parallel.map_batches(starts_of_round, generate_batch)):
                if journal is not None:
                    journal.append(records)
                    self.on_replies_saved(start + len(records))
                raw_replies.extend(record["raw"] for record in records)
                progress.update(1)
        progress.close()
        meta = loader.generation_meta(rows)
        placeholder = system.settings.placeholder
        with_slots = [i for i, raw in enumerate(raw_replies) if count_placeholders(raw, placeholder)]
        top_items = self.top_items_of_rows(loader, with_slots, batch_size)
        return [{"conv_id": meta["conv_ids"][i], "turn_index": meta["turn_indices"][i],
                 "reference": meta["references"][i],
                 **fill_reply(raw, top_items.get(i, []), system.item_names, placeholder)}
                for i, raw in enumerate(raw_replies)]

    @contextmanager
    def sampling_rng(self, row: Optional[int]):
        """For sampled generation: a seed of its own per batch, global RNG state untouched."""
        if row is None:
            yield
            return
        device = self.system.device
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.system.settings.seed * 1_000_003 + row)
            yield

    def top_items_of_rows(self, loader, indices: List[int], batch_size: int,
                          k: int = SLOT_CANDIDATES) -> Dict[int, List[int]]:
        """Top-``k`` items (rec stage's chosen weights) of the generation rows ``indices``."""
        if not indices:
            return {}
        system = self.system
        rows = loader.generation_rows()
        top: Dict[int, List[int]] = {}
        with temporary_weights(system.net, system.run_dir / "rec_best.pth") as found:
            if not found:
                logger.warning("[no rec_best.pth: <movie> slots are filled with the current weights' ranking]")
            chunks = [indices[start:start + batch_size] for start in range(0, len(indices), batch_size)]

            def rank_chunk(chunk: List[int]) -> List[List[int]]:
                return system.evaluation.top_items(loader.generation_batchify([rows[i] for i in chunk]), k)

            for chunk, items in zip(chunks, system.data_parallel.map_batches(chunks, rank_chunk)):
                top.update(zip(chunk, items))
        return top


def refill_replies(rows: List[dict], item_names, placeholder: str) -> Tuple[List[dict], int, int]:
    """Fill the slots of stored ``test_replies.jsonl`` rows again from their ``raw`` reply and
    ``top_items`` (e.g. after a fix of the item names). A row with more slots than stored
    items (only the top 3 are stored) is kept as it is. Returns ``(rows, changed, kept)``."""
    out, changed, kept = [], 0, 0
    for row in rows:
        if row["n_slots"] > len(row["top_items"]):
            out.append(row)
            kept += 1
            continue
        filled = {**row, **fill_reply(row["raw"], row["top_items"], item_names, placeholder)}
        filled["top_items"] = row["top_items"]
        changed += filled["reply"] != row["reply"]
        out.append(filled)
    return out, changed, kept
