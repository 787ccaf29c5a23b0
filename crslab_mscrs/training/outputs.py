"""Test outputs of a run: ``rankings.jsonl`` (per recommendation turn), ``metrics.json`` and
``test_replies.jsonl``, in the run folder and (``rankings_out`` / ``metrics_out``) where the
config asks (:class:`RunOutputs`).

``rankings.jsonl`` follows the schema of :mod:`crslab_mscrs.evaluation.rankings` (one line
per test recommendation turn: ``conv_id``, ``turn_index``, ``ranked_items`` = top item
entity ids, best first) and is written with its ``write_rankings_file``, which validates
every line.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from loguru import logger

from crslab_mscrs.atomic_files import replacing, write_text_atomic
from crslab_mscrs.training import distributed

TurnKey = Tuple[str, int]


class RunOutputs:
    """Writes the outputs of one run (``settings``: :class:`~.settings.RunSettings`;
    ``device_summary``: where the run trained, for ``metrics.json``)."""

    def __init__(self, settings, ranking_depth: int, device_summary: Callable[[], dict]):
        self.settings, self.run_dir = settings, Path(settings.run_dir)
        self.ranking_depth, self.device_summary = ranking_depth, device_summary

    def write_rankings(self, rankings: Dict[TurnKey, List[int]]) -> None:
        from crslab_mscrs.evaluation.rankings import write_rankings_file

        if not distributed.is_writer():  # torchrun: rank 0 writes
            return
        for path in [self.run_dir / "rankings.jsonl"] + ([self.settings.rankings_out] if self.settings.rankings_out
                                                         else []):
            count = write_rankings_file(path, rankings, self.ranking_depth)
            logger.info(f"[Wrote {count} test rankings to {path}]")

    def copy_rankings_if_missing(self) -> None:
        """A resumed run whose rec stage finished earlier still delivers ``rankings_out``."""
        source, target = self.run_dir / "rankings.jsonl", self.settings.rankings_out
        if not distributed.is_writer():
            return
        if target and source.is_file() and not Path(target).is_file():
            with replacing(target) as tmp:
                shutil.copyfile(source, tmp)

    def write_metrics(self, results: Dict[str, dict]) -> None:
        if not distributed.is_writer():
            return
        metrics = {"model": self.settings.model_name, "dataset": self.settings.dataset, "seed": self.settings.seed,
                   "device": self.device_summary(), "stages": results}
        write_metrics_file(self.run_dir / "metrics.json", metrics)
        if self.settings.metrics_out:
            write_metrics_file(self.settings.metrics_out, metrics)

    def write_replies(self, replies: List[dict]) -> Path:
        """``test_replies.jsonl``: one generated reply per test recommender turn."""
        path = self.run_dir / "test_replies.jsonl"
        if not distributed.is_writer():
            return path
        write_text_atomic(path, "".join(json.dumps(reply) + "\n" for reply in replies))
        return path


def write_metrics_file(path, metrics: dict) -> None:
    path = Path(path)
    write_text_atomic(path, json.dumps(_jsonable(metrics), indent=2, sort_keys=True) + "\n")
    logger.info(f"[Wrote metrics to {path}]")


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def generation_metrics(hypotheses: Sequence[str], references: Sequence[str],
                       recommended: Sequence[bool], nll_sum: Optional[float],
                       n_tokens: Optional[int], slot_counts: Optional[Sequence[int]] = None,
                       system_prefix: bool = False) -> dict:
    """Generation metrics of the test replies via :mod:`crslab_mscrs.evaluation.generation`;
    ``paper_conventions`` holds the same replies scored as the papers' scripts do
    (:func:`~crslab_mscrs.evaluation.generation.paper_convention_metrics`; ``system_prefix``:
    MSCRS's "System: " prefix).

    Returns ``{"available": False, "error": ...}`` when that module is missing or fails:
    metrics are reported absent, never made up.
    """
    try:
        from crslab_mscrs.evaluation import generation as gen
    except ImportError as err:
        return {"available": False, "error": f"crslab_mscrs.evaluation.generation: {err}"}
    try:
        out = {"available": True, **_call_generation_module(gen, hypotheses, references, recommended,
                                                            nll_sum, n_tokens)}
        out["paper_conventions"] = gen.paper_convention_metrics(hypotheses, references, system_prefix,
                                                                slot_counts).as_dict()
        return out
    except Exception as err:  # a metric bug must not lose the run's other results
        logger.exception("generation metrics failed")
        return {"available": False, "error": repr(err)}


def _call_generation_module(gen, hypotheses, references, recommended, nll_sum, n_tokens) -> dict:
    """Corpus metrics on lower-cased word tokens of the FILLED replies vs the references;
    ``item_ratio`` = share of generated replies with at least one ``<movie>`` slot
    (the slots are filled with item names before the other metrics are computed)."""
    hyp_tokens = [gen.tokenize(h, lowercase=True) for h in hypotheses]
    ref_tokens = [[gen.tokenize(r, lowercase=True)] for r in references]
    out = dict(gen.corpus_generation_metrics(hyp_tokens, ref_tokens))
    out["item_ratio"] = sum(bool(r) for r in recommended) / max(len(recommended), 1)
    out["n_replies"] = len(hypotheses)
    out["embedding_metrics"] = "n/a (no word vectors)" if out.get("greedy") is None else "fastText"
    if nll_sum is not None and n_tokens:
        out["ppl"] = gen.perplexity(nll_sum, n_tokens)
    return out
