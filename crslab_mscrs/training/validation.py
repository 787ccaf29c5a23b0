"""Validation and test evaluation of a stage: ranking metrics, pre-training recall, conv NLL.

- rec: one metric vocabulary (docs/evaluation.md): per-turn ``recall@k`` / ``ndcg@k`` /
  ``mrr@k`` (a turn's labels, averaged over turns, :func:`crslab_mscrs.evaluation.ranking.ranking_metrics`),
  per-mention ``recall@k_mention`` etc., and CRSLab's own evaluator under ITS names, one sample
  per (turn, label item): ``hit@k`` (never renamed recall), ``crslab_ndcg@k``, ``crslab_mrr@k``;
  plus the ranking of every test turn for ``rankings.jsonl``. The checkpoint is chosen on
  ``rec_select_metric`` (default per-turn ``recall@50``), which the stage's summary names
  (``valid_selection_metric``);
- pretrain: recall@1/10/50 over all entities, logged as "pretrain (inflated, response in
  input)": the response is in the input, so it is never reported as a result;
- conv: summed token NLL of the references under teacher forcing (the conv checkpoint is
  chosen on validation loss, not dist@k: bug 7 in ``docs/model.md``).
"""
from __future__ import annotations

import math
from typing import Dict, Iterator, List, Tuple

import torch
import torch.nn.functional as F
from crslab.evaluator.metrics.base import AverageMetric
from loguru import logger

from crslab_mscrs.evaluation.instances import RecInstance
from crslab_mscrs.evaluation.ranking import ranking_metrics
from crslab_mscrs.training.loop import PRETRAIN_LOG_NAME

TurnKey = Tuple[str, int]


def output_scores(output) -> torch.Tensor:
    """Item (or entity) scores of a ``RecOutput``."""
    for name in ("item_scores", "scores", "logits"):
        value = getattr(output, name, None)
        if value is not None:
            return value
    raise TypeError(f"{type(output).__name__} has no item_scores")


class Evaluation:
    """Evaluation passes of ``system`` (an :class:`~.system.MSCRSSystem`); every batch goes
    through ``system.step`` in ``valid`` / ``test`` mode."""

    def __init__(self, system):
        self.system = system

    @property
    def item_ids(self) -> torch.Tensor:
        return self.system.item_ids

    @torch.no_grad()
    def validate(self, stage: str, epoch: int, batch_size: int) -> float:
        """Validation value used to choose the checkpoint (higher is better except conv loss)."""
        system = self.system
        system.model.eval()
        if stage == "conv":
            nll, tokens = self.conv_nll(system.valid_dataloader, batch_size)
            loss = nll / max(tokens, 1)
            logger.info(f"[conv epoch {epoch}: valid loss {loss:.4f}, ppl {math.exp(min(loss, 50)):.2f}]")
            system.log_scalar("conv/valid_loss", loss, epoch)
            return loss
        if stage == "pretrain":
            metrics = self.pretrain_metrics(system.valid_dataloader, batch_size)
            logger.info(f"[{PRETRAIN_LOG_NAME} epoch {epoch} valid: {metrics}]")
            system.log_scalar("pretrain/valid_recall@50_inflated", metrics["recall@50"], epoch)
            return metrics["recall@50"]
        metrics, _ = self.rec_metrics(system.valid_dataloader, batch_size, mode="valid", epoch=epoch)
        key = system.settings.rec_select_metric
        if key not in metrics:
            if key.startswith("recall@") and any(k.startswith("recall@") for k in metrics):
                # fewer items than the cut-off (tiny item sets): the deepest recall available
                fallback = max((k for k in metrics if k.startswith("recall@")), key=lambda k: int(k.split("@")[1]))
                logger.warning(f"[rec_select_metric {key} needs more items than {len(self.item_ids)}: using {fallback}]")
                key = fallback
            else:
                raise KeyError(f"config key 'rec_select_metric': {key!r} is not one of {sorted(metrics)}")
        for name, value in metrics.items():
            system.log_scalar(f"rec/valid_{name}", value, epoch)
        self.selection_metric = key
        return metrics[key]

    def _score_entity_ids(self, width: int) -> torch.Tensor:
        """Entity id of each score column: the item set, or all entities (pre-training)."""
        return self.item_ids if width == len(self.item_ids) else torch.arange(width)

    def pretrain_metrics(self, loader, batch_size: int) -> Dict[str, float]:
        hits = {1: 0, 10: 0, 50: 0}
        n, loss_sum = 0, 0.0

        def score_batch(batch):
            output = self.system.step(batch, "pretrain", "valid")
            scores = getattr(output, "entity_scores", None)
            scores = (output_scores(output) if scores is None else scores).float().cpu()
            columns = self._score_entity_ids(scores.shape[1])
            top = columns[torch.topk(scores, min(50, scores.shape[1]), dim=-1).indices]
            return top.tolist(), batch["labels"].tolist(), None if output.loss is None else float(output.loss)

        for top, labels, loss in self.system.data_parallel.map_batches(loader.get_pretrain_eval_data(batch_size),
                                                                       score_batch):
            for row, label in zip(top, labels):
                for k in hits:
                    hits[k] += int(label in row[:k])
            if loss is not None:
                loss_sum += loss * len(top)
            n += len(top)
        out = {f"recall@{k}": v / max(n, 1) for k, v in hits.items()}
        out["loss"] = loss_sum / max(n, 1)
        return out

    def rank_turns(self, loader, batch_size: int, mode: str) -> Iterator[Tuple[dict, List[int], torch.Tensor]]:
        """Yield (meta row, ranked entity ids, score row) for every recommendation turn."""
        depth = self.system.ranking_depth

        def rank_batch(batch):
            output = self.system.step(batch, "rec", mode)
            scores = output_scores(output).float().cpu()
            order = torch.topk(scores, depth, dim=-1).indices
            ranked = self.item_ids[order]
            meta = batch["meta"]
            # clone: a row view would carry (and, under torchrun, send) the whole batch's storage
            return [({k: v[i] for k, v in meta.items()}, ranked[i].tolist(), scores[i].clone())
                    for i in range(len(order))]

        for rows in self.system.data_parallel.map_batches(loader.get_rec_eval_data(batch_size), rank_batch):
            yield from rows

    def rec_metrics(self, loader, batch_size: int, mode: str, epoch: int = -1
                    ) -> Tuple[Dict[str, float], Dict[TurnKey, List[int]]]:
        """Per-turn and per-mention metrics (ours), CRSLab's evaluator metrics (one sample per
        (turn, item): ``hit@k``, ``crslab_ndcg@k``, ``crslab_mrr@k``) and the turn rankings."""
        evaluator = self.system.evaluator
        evaluator.reset_metrics()
        item_column = {int(e): j for j, e in enumerate(self.item_ids.tolist())}
        rankings, loss_sum, n_labels, turns = {}, 0.0, 0, []
        for meta, ranked, scores in self.rank_turns(loader, batch_size, mode):
            key = (meta["conv_ids"], meta["turn_indices"])
            rankings[key] = ranked
            labels = tuple(int(label) for label in meta["items"] if int(label) in item_column)
            if labels:  # a turn whose labels lie outside the item set is not scored per turn
                turns.append(RecInstance(key[0], int(key[1]), labels, ()))
            for label in meta["items"]:
                evaluator.rec_evaluate(ranked[:50], int(label))
                if int(label) in item_column:
                    loss_sum += float(F.cross_entropy(scores[None], torch.tensor([item_column[int(label)]])))
                    n_labels += 1
        evaluator.optim_metrics.add("rec_loss", AverageMetric(loss_sum, max(n_labels, 1)))
        evaluator.report(epoch=epoch, mode=mode)
        report = evaluator.rec_metrics.report()
        # CRSLab's names for CRSLab's per-(turn, item) metrics: hit@k stays hit@k
        metrics = {(name if name.startswith("hit@") else f"crslab_{name}"): float(metric.value())
                   for name, metric in report.items()}
        if turns:
            ours = ranking_metrics(turns, rankings, ks=(1, 10, 50))
            metrics.update({name: value for name, value in ours.items() if "@" in name})
        metrics["loss"] = loss_sum / max(n_labels, 1)
        metrics["n_turns"], metrics["n_samples"] = len(rankings), n_labels
        return metrics, rankings

    def conv_nll(self, loader, batch_size: int) -> Tuple[float, int]:
        """Summed token NLL and token count of the references (teacher forcing)."""
        nll, tokens = 0.0, 0

        def batch_nll(batch):
            output = self.system.step(batch, "conv", "valid")
            count = int((batch["labels"][:, 1:] != -100).sum())
            return float(output.loss) * count, count

        for batch_sum, count in self.system.data_parallel.map_batches(loader.get_conv_data(batch_size, shuffle=False),
                                                                      batch_nll):
            nll += batch_sum
            tokens += count
        return nll, tokens

    @torch.no_grad()
    def top_items(self, batch: dict, k: int) -> List[List[int]]:
        """Top-``k`` item entity ids of every row of a rec / generation ``batch`` (current weights)."""
        scores = output_scores(self.system.step(batch, "rec", "test")).float().cpu()
        return self.item_ids[torch.topk(scores, min(k, scores.shape[1]), dim=-1).indices].tolist()
