"""Record what a CRSLab system predicts on the test split, without touching its code.

:func:`attach_test_capture` wraps three methods of a built system instance:

- ``step`` remembers the current mode, so only ``mode == 'test'`` is recorded;
- ``rec_evaluate(rec_predict, item_label)`` (KBRD, KGSF, ReDial and our systems all call
  it with the scores over all entities) records the top-``k`` item entity ids per row;
- ``evaluator.report`` records CRSLab's test metrics;
- ``evaluator.gen_evaluate(hyp, refs)`` (KBRD and KGSF call it per generated test reply
  with the decoded words) records ``(hyp, refs[0])``, so that :func:`write_outputs` scores
  the replies with OUR generation metrics (CRSLab's ``standard`` evaluator counts character
  n-grams for Dist, docs/evaluation.md) under ``stages.conv.test.generation``, the key our
  systems use, which puts KBRD/KGSF in the same generation table as UniCRS/MSCRS.

CRSLab's recommendation dataloaders emit one row per (recommender turn, movie) in dataset
order when ``shuffle=False``, so rows are matched to ``(conv_id, turn_index)`` tags (see
:mod:`crslab_mscrs.compat.conversation_tags`) by replaying the same filter. Rows of
one turn share the context, so the first row's ranking is the turn's ranking.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from crslab_mscrs.evaluation.rankings import MIN_RANKING_LENGTH
from crslab_mscrs.evaluation.rankings import TurnKey


def recommendation_row_tags(dataset, scale: float = 1.0) -> List[Tuple[str, int]]:
    """(conv_id, turn_index) of each row CRSLab's rec dataloaders build from ``dataset``.

    ``scale`` mirrors CRSLab's ``scale`` option, which keeps the first
    ``ceil(len(rows) * scale)`` rows after processing.
    """
    tags = []
    for sample in dataset:
        if sample.get("role") == "Recommender":
            for _ in sample.get("items", []):
                tags.append((sample.get("conv_id"), sample.get("turn_index")))
    return tags[:math.ceil(len(tags) * scale)]


class TestCapture:
    """Holds the captured test rankings and metrics of one run."""

    def __init__(self, item_ids, depth: int = MIN_RANKING_LENGTH):
        self.item_ids = torch.as_tensor(list(item_ids), dtype=torch.long)
        self.depth = min(depth, len(self.item_ids))
        self.mode: Optional[str] = None
        self.rows: List[List[int]] = []
        self.metrics: dict = {}
        self.replies: List[Tuple[str, str]] = []  # (generated reply, reference) of test turns

    def record_scores(self, rec_predict: torch.Tensor) -> None:
        scores = rec_predict.detach().float().cpu()[:, self.item_ids]
        top = torch.topk(scores, self.depth, dim=-1).indices
        self.rows.extend(self.item_ids[top].tolist())

    def turn_rankings(self, tags: List[Tuple[str, int]]) -> Dict[TurnKey, List[int]]:
        """``{(conv_id, turn_index): ranked items}``: the first row of each tagged turn."""
        if len(tags) != len(self.rows):
            raise RuntimeError(f"captured {len(self.rows)} test rows but the test split has {len(tags)} "
                               "recommendation rows: was the test loader shuffled?")
        out: Dict[TurnKey, List[int]] = {}
        for (conv_id, turn_index), ranked in zip(tags, self.rows):
            if conv_id is not None:
                out.setdefault((conv_id, turn_index), ranked)
        return out


def _metric_values(report: dict) -> dict:
    out = {}
    for name, metric in report.items():
        value = metric.value() if hasattr(metric, "value") else metric
        out[name] = None if value is None else float(value)
    return out


def attach_test_capture(system, item_ids) -> TestCapture:
    """Wrap ``system`` so its test predictions and metrics land in the returned capture."""
    capture = TestCapture(item_ids)
    original_step = system.step
    original_rec_evaluate = system.rec_evaluate

    def step(batch, stage, mode, *args, **kwargs):
        capture.mode = mode
        return original_step(batch, stage, mode, *args, **kwargs)

    def rec_evaluate(rec_predict, item_label, *args, **kwargs):
        if capture.mode == "test":
            capture.record_scores(rec_predict)
        return original_rec_evaluate(rec_predict, item_label, *args, **kwargs)

    system.step = step
    system.rec_evaluate = rec_evaluate
    evaluator = getattr(system, "evaluator", None)
    if evaluator is not None:
        original_report = evaluator.report

        def report(*args, **kwargs):
            result = original_report(*args, **kwargs)
            mode = kwargs.get("mode", args[1] if len(args) > 1 else "test")
            if mode == "test":
                for group in ("rec_metrics", "gen_metrics"):
                    metrics = getattr(evaluator, group, None)
                    if metrics is not None:
                        capture.metrics.update(_metric_values(metrics.report()))
            return result

        evaluator.report = report
        original_gen_evaluate = getattr(evaluator, "gen_evaluate", None)
        if original_gen_evaluate is not None:
            def gen_evaluate(hyp, refs, *args, **kwargs):
                if capture.mode == "test":
                    capture.replies.append((str(hyp), str(refs[0]) if refs else ""))
                return original_gen_evaluate(hyp, refs, *args, **kwargs)

            evaluator.gen_evaluate = gen_evaluate
    return capture


CRSLAB_STRUCTURE_TOKENS = ("__start__", "__end__", "__null__")
"""Tokens CRSLab's ``ind2txt`` leaves in decoded replies and references (the references
start with ``__start__``); they are not words and are removed before scoring, otherwise a
reply of nothing but ``__start__`` would share a unigram with every reference.
``__unk__`` stays: it stands for a real word outside the model's vocabulary."""


def strip_structure_tokens(text: str) -> str:
    return " ".join(word for word in text.split() if word not in CRSLAB_STRUCTURE_TOKENS)


def generation_summary(replies: List[Tuple[str, str]], item_names) -> dict:
    """Our generation metrics of captured ``(reply, reference)`` pairs, after removing
    CRSLab's structure tokens; ``item_ratio`` from item placeholders or catalogue names in
    the replies (:mod:`crslab_mscrs.evaluation.item_mentions`). Perplexity is left to CRSLab's
    own report: it is per token of the model's word vocabulary, not comparable with a
    subword LM's."""
    from crslab_mscrs.evaluation.item_mentions import ItemNameMatcher
    from crslab_mscrs.training.outputs import generation_metrics

    hypotheses = [strip_structure_tokens(hyp) for hyp, _ in replies]
    references = [strip_structure_tokens(ref) for _, ref in replies]
    recommended = ItemNameMatcher(item_names).recommended(hypotheses)
    return generation_metrics(hypotheses, references, recommended, None, None)


def rescore_replies(metrics_path, item_names) -> dict:
    """Recompute ``stages.conv.test.generation`` of a finished CRSLab-model run from the
    ``test_replies.jsonl`` beside its ``metrics.json`` (e.g. after a fix of the scoring);
    returns the new generation metrics."""
    metrics_path = Path(metrics_path)
    replies_path = metrics_path.with_name("test_replies.jsonl")
    if not replies_path.is_file():
        raise FileNotFoundError(f"{replies_path}: no captured test replies to score")
    from crslab_mscrs.data.jsonl import iter_jsonl

    replies = []
    for number, row in iter_jsonl(replies_path):
        try:
            replies.append((str(row["reply"]), str(row["reference"])))
        except (KeyError, TypeError) as err:
            raise ValueError(f"{replies_path}:{number}: not a {{reply, reference}} JSON object ({err})")
    payload = json.loads(metrics_path.read_text(encoding="utf-8"))
    generation = generation_summary(replies, item_names)
    payload["stages"] = {"conv": {"test": {"generation": generation}}}
    from crslab_mscrs.atomic_files import write_text_atomic

    write_text_atomic(metrics_path, json.dumps(payload, indent=2))
    return generation


def write_outputs(capture: TestCapture, test_dataset, rankings_out=None, metrics_out=None,
                  extra: Optional[dict] = None, scale: float = 1.0, item_names=()) -> None:
    """Write rankings.jsonl / metrics.json for a finished run (each only when requested);
    captured test replies are scored and, next to ``metrics_out``, written to
    ``test_replies.jsonl``."""
    if rankings_out:
        from crslab_mscrs.evaluation.rankings import write_rankings_file

        write_rankings_file(rankings_out, capture.turn_rankings(recommendation_row_tags(test_dataset, scale)),
                            capture.depth)
    if metrics_out:
        path = Path(metrics_out)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"crslab_test_metrics": capture.metrics, **(extra or {})}
        if capture.replies:
            stages = payload.setdefault("stages", {})
            stages.setdefault("conv", {})["test"] = {"generation": generation_summary(capture.replies, item_names)}
            with (path.parent / "test_replies.jsonl").open("w", encoding="utf-8") as f:
                for hyp, ref in capture.replies:
                    f.write(json.dumps({"reply": hyp, "reference": ref}) + "\n")
        path.write_text(json.dumps(payload, indent=2), encoding="utf-8")
