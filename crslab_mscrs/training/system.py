"""CRSLab system for MSCRS / UniCRS: prompt pre-training -> recommendation -> conversation.

Follows MSCRS (SIGIR 2025) / UniCRS (KDD 2022) training, with the authors' bugs fixed
(``docs/MSCRS_DESIGN.md`` sections 5-8):

- each stage (``stages: [pretrain, rec, conv]``) has its own section ``pretrain:`` /
  ``rec:`` / ``conv:`` (epoch, batch_size, optimizer {name: AdamW, lr, weight_decay},
  warmup_steps, gradient_accumulation_steps, eval_batch_size, gradient_clip, max_steps =
  at most this many training batches per epoch, for smoke runs), validate (default true;
  false: no valid pass, the last epoch's weights are the chosen ones, for time-bounded runs);
- the checkpoint is chosen on the VALIDATION split (rec: ``rec_select_metric``, default
  Recall@50; conv: validation loss, not dist@k, bug 7) and the TEST split is evaluated
  once, with the chosen weights. Pre-training recall is logged as "pretrain (inflated,
  response in input)" and never reported as a result;
- the conversation stage starts from the recommendation stage's chosen prompt / entity
  encoder weights, graphs on (bug 2); its ``<movie>`` placeholders are filled with the
  recommender's top items, computed with the recommendation weights;
- a checkpoint every epoch under ``save/<run_name>/`` (see :mod:`.checkpoint`); ``resume:
  true`` or CRSLab's ``-rs`` flag resumes a killed run from its last finished epoch;
- bf16 autocast on CUDA only; seeds from ``seed``; tensorboard with CRSLab's ``-tb``.
"""
from __future__ import annotations

import math
import sys
import time
from contextlib import contextmanager, nullcontext
from math import ceil
from pathlib import Path
from typing import Dict, List, Optional, Sequence, TextIO

import torch
import torch.nn.functional as F
from crslab.evaluator.metrics.base import AverageMetric
from crslab.system.base import BaseSystem
from loguru import logger
from tqdm import tqdm

from crslab_mscrs.training.checkpoint import (CHECKPOINT_VERSION, atomic_save, capture_rng, load_checkpoint,
                                                  load_trainable_state, restore_rng, seed_everything,
                                                  trainable_state, trainable_tensors)
from crslab_mscrs.training.entity_linking import EntityLinker
from crslab_mscrs.training import run_folder
from crslab_mscrs.training.generation_journal import (JOURNAL_NAME, GenerationJournal, rows_fingerprint,
                                                            state_fingerprint)
from crslab_mscrs.batches.movie_mentions import count_placeholders, fill_placeholders
from crslab_mscrs.training.optim import build_optimizer
from crslab_mscrs.training.outputs import generation_metrics, write_metrics_file, write_rankings_file
from crslab_mscrs.batches.text import entity_display_name, turn_text

STAGES = ("pretrain", "rec", "conv")
PRETRAIN_LOG_NAME = "pretrain (inflated, response in input)"
DEFAULT_RUN_DEPTH = 100


def find_prompt_crs(model: torch.nn.Module):
    """The :class:`PromptCRS` inside CRSLab's model wrapper (and DataParallel)."""
    for module in model.modules():
        if all(callable(getattr(module, name, None)) for name in ("entity_table", "recommend", "converse",
                                                                    "generate", "pretrain")) \
                and hasattr(module, "item_ids"):
            return module
    raise TypeError(f"{type(model).__name__} holds no PromptCRS (entity_table/recommend/pretrain/converse/"
                    "generate + item_ids): is `model:` MSCRS or UniCRS?")


class MSCRSSystem(BaseSystem):
    """Trains and evaluates MSCRS / UniCRS through CRSLab."""

    writes_own_outputs = True  # the CLI does not attach its generic test capture

    def __init__(self, opt, train_dataloader, valid_dataloader, test_dataloader, vocab, side_data,
                 restore_system=False, interact=False, debug=False, tensorboard=False):
        self._resume_requested = bool(restore_system) or bool(opt.get("resume", False))
        self.seed = int(opt.get("seed", 0) if opt.get("seed") is not None else 0)
        seed_everything(self.seed)  # before the model is built: same seed, same initial weights
        super().__init__(opt, train_dataloader, valid_dataloader, test_dataloader, vocab, side_data,
                         False, interact, debug, tensorboard)
        # CRSLab wraps the model in DataParallel on GPU: weights are saved from the bare
        # module so checkpoints move between CPU and GPU runs
        self.net = self.model.module if isinstance(self.model, torch.nn.DataParallel) else self.model
        self.core = find_prompt_crs(self.net)
        self.item_ids = torch.as_tensor(self.core.item_ids).long().cpu()
        for loader in self._loaders():
            loader.attach_tokenizers(self.core.lm_tokenizer, self.core.text_tokenizer)
            loader.set_item_ids(self.item_ids.tolist())
        self.id2entity = {int(k): v for k, v in vocab.get("id2entity", {}).items()}
        self.stages = list(opt.get("stages", STAGES))
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ValueError(f"config key 'stages': unknown stage(s) {unknown}; use a list of {list(STAGES)}")
        self.run_dir = self._run_dir(opt)
        self.ranking_depth = min(int(opt.get("ranking_depth", DEFAULT_RUN_DEPTH)), len(self.item_ids))
        self.placeholder = opt.get("movie_placeholder", "<movie>")
        self.use_bf16 = self.device.type == "cuda" and bool(opt.get("bf16", True))
        self.results: Dict[str, dict] = {}
        self.writer = None
        if tensorboard and not interact:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))
        self._global_step = 0
        self._accumulated = 0
        self._demo_index = None

    # -- helpers ---------------------------------------------------------------------------
    def _loaders(self):
        seen = []
        for loader in (self.train_dataloader, self.valid_dataloader, self.test_dataloader):
            if loader is not None and all(loader is not s for s in seen):
                seen.append(loader)
        return seen

    def _run_dir(self, opt) -> Path:
        return run_folder.run_dir(opt, self.seed)

    def _section(self, stage: str) -> dict:
        section = self.opt.get(stage)
        if not isinstance(section, dict):
            raise KeyError(f"config section '{stage}:' is missing (needed because stages lists '{stage}')")
        for key in ("epoch", "batch_size"):
            if key not in section:
                raise KeyError(f"config key '{stage}.{key}' is missing")
        return section

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.use_bf16 else nullcontext()

    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device) for k, v in batch.items() if isinstance(v, torch.Tensor)}

    def _log_scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None and value is not None and math.isfinite(value):
            self.writer.add_scalar(tag, value, step)

    def _score_entity_ids(self, width: int) -> torch.Tensor:
        """Entity id of each score column: the item set, or all entities (pre-training)."""
        return self.item_ids if width == len(self.item_ids) else torch.arange(width)

    # -- CRSLab API ----------------------------------------------------------------------
    def restore_model(self):
        """CRSLab's ``-rs``: resume from ``<run_dir>/last.pth`` (done in :meth:`fit`) or, in
        ``interact``, load the chosen weights."""
        self._resume_requested = True

    def save_model(self):
        """CRSLab's ``-ss``: the final weights (trainable part) to ``<run_dir>/final.pth``."""
        atomic_save({"version": CHECKPOINT_VERSION, "model": trainable_state(self.net)},
                    self.run_dir / "final.pth")
        logger.info(f"[Saved final weights to {self.run_dir / 'final.pth'}]")

    def step(self, batch, stage, mode):
        """One batch of ``stage`` (pretrain / rec / conv) in ``mode`` (train / valid / test).

        Returns the model output (``RecOutput`` / ``ConvOutput``); in train mode the loss
        is back-propagated (gradient accumulation and the optimizer step included).
        """
        assert stage in STAGES and mode in ("train", "valid", "test")
        inputs = self._to_device(batch)
        with self._autocast():
            # once per step (bug 6), shared by prompt and scoring; in training only the rows it reads
            table = self.core.entity_table(self.core.step_rows(inputs, stage))
            if stage == "pretrain":
                output = self.core.pretrain(inputs, entity_table=table)
            elif stage == "rec":
                output = self.core.recommend(inputs, entity_table=table)
            else:
                output = self.core.converse(inputs, entity_table=table)
        if mode == "train":
            self._backward(output.loss)
            self.evaluator.optim_metrics.add(f"{stage}_loss", AverageMetric(float(output.loss.detach())))
        return output

    def _backward(self, loss: torch.Tensor) -> None:
        (loss.float() / self.grad_accum).backward()
        self._accumulated += 1
        if self._accumulated >= self.grad_accum:
            self._optimizer_step()

    def _optimizer_step(self) -> None:
        if self._accumulated == 0:
            return
        if self.gradient_clip > 0:
            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad],
                                           self.gradient_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self._accumulated = 0
        self._global_step += 1

    # -- training --------------------------------------------------------------------------
    def fit(self):
        checkpoint = None
        if self._resume_requested:
            checkpoint = load_checkpoint(self.run_dir / "last.pth")
            if checkpoint is None:
                logger.warning(f"[resume requested but {self.run_dir / 'last.pth'} does not exist: starting fresh]")
            else:
                load_trainable_state(self.net, checkpoint["model"], str(self.run_dir / "last.pth"))
                self.results = checkpoint.get("results", {})
                current = checkpoint.get("current") or {}
                where = (f"stage {current['stage']}: {current['epoch_done'] + 1} epoch(s) done"
                         + (f", then {current['partial']['batches_done']} batches of epoch "
                            f"{current['partial']['epoch']}" if current.get("partial") else "")
                         if current else "between stages")
                logger.info(f"[Resuming {self.run_dir}: finished stages {checkpoint['completed']}, {where}]")
        completed = list(checkpoint["completed"]) if checkpoint else []
        for stage in self.stages:
            if stage in completed:
                logger.info(f"[Stage {stage} already finished: skipped]")
                continue
            current = checkpoint.get("current") if checkpoint else None
            resume_from = checkpoint if current and current.get("stage") == stage else None
            self._train_stage(stage, completed, resume_from)
            completed.append(stage)
        self._write_outputs()
        self._copy_rankings_if_missing()
        return self.results

    def _copy_rankings_if_missing(self) -> None:
        """A resumed run whose rec stage finished earlier still delivers ``rankings_out``."""
        import shutil

        source, target = self.run_dir / "rankings.jsonl", self.opt.get("rankings_out")
        if target and source.is_file() and not Path(target).is_file():
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)

    def _train_stage(self, stage: str, completed: List[str], checkpoint: Optional[dict]) -> None:
        section = self._section(stage)
        epochs, batch_size = int(section["epoch"]), int(section["batch_size"])
        self.grad_accum = max(1, int(section.get("gradient_accumulation_steps", 1)))
        self.gradient_clip = float(section.get("gradient_clip", -1) or -1)
        max_batches = section.get("max_batches_per_epoch", section.get("max_steps"))
        time_limit = _minutes(section, stage, "time_limit_min")
        checkpoint_every = _minutes(section, stage, "checkpoint_every_min")
        validate = section.get("validate", True)
        if not isinstance(validate, bool):
            raise ValueError(f"config key '{stage}.validate' must be true or false, got {validate!r}")
        if stage == "conv":
            self._attach_demonstrations()
        task = {"pretrain": "pretrain", "rec": "rec", "conv": "conv"}[stage]
        n_batches = self.train_dataloader.num_batches(task, batch_size)
        if max_batches:
            n_batches = min(n_batches, int(max_batches))
        total_steps = ceil(n_batches / self.grad_accum) * epochs
        self.optimizer, self.scheduler = build_optimizer(self.model, section, total_steps)
        progress = {"stage": stage, "epoch_done": -1, "best_value": None, "best_epoch": None, "history": []}
        partial = None  # where a mid-epoch checkpoint left the epoch it was in
        if checkpoint is not None:
            progress = dict(checkpoint["current"])
            partial = progress.pop("partial", None)
            if partial is not None:
                if (partial.get("batch_size"), partial.get("grad_accum")) != (batch_size, self.grad_accum):
                    raise ValueError(
                        f"{self.run_dir / 'last.pth'} was written inside epoch {partial['epoch']} of stage "
                        f"{stage} with {stage}.batch_size={partial.get('batch_size')} and "
                        f"{stage}.gradient_accumulation_steps={partial.get('grad_accum')}; the config now says "
                        f"{batch_size} and {self.grad_accum}: resume with the same values or start a new run")
                partial = dict(partial, rng=checkpoint["rng"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.scheduler.load_state_dict(checkpoint["scheduler"])
            self._global_step = int(checkpoint.get("global_step", 0))
            restore_rng(checkpoint["rng"])
        logger.info(f"[Stage {stage}: {epochs} epochs x {n_batches} batches of {batch_size}, "
                    f"{total_steps} optimizer steps, from epoch {progress['epoch_done'] + 1}"
                    + (f", batch {partial['batches_done']}]" if partial else "]"))
        deadline = time.time() + 60.0 * time_limit if time_limit else None

        def save_partial(state: dict) -> None:
            self._save_last(completed, dict(progress, partial=state))
            self._on_partial_checkpoint_saved(stage, state["epoch"], state["batches_done"])

        for epoch in range(progress["epoch_done"] + 1, epochs):
            epoch_started = time.time()
            resume = partial if partial is not None and partial["epoch"] == epoch else None
            partial = None
            out_of_time = self._train_epoch(stage, epoch, batch_size, max_batches, deadline,
                                            checkpoint_every=checkpoint_every, save_partial=save_partial,
                                            resume=resume)
            if resume is not None:
                epoch_started -= resume.get("seconds", 0.0)
            if validate:
                value = self._validate(stage, epoch, int(section.get("eval_batch_size", batch_size)))
                maximise = stage != "conv"
                improved = progress["best_value"] is None or (value > progress["best_value"] if maximise
                                                              else value < progress["best_value"])
            else:  # no valid pass: the latest epoch is the chosen one
                value, improved = None, True
            entry = {"epoch": epoch, "valid": value}
            if out_of_time:
                entry["time_limit_reached"] = True
            progress["history"].append(entry)
            if improved:
                progress["best_value"], progress["best_epoch"] = value, epoch
                atomic_save({"version": CHECKPOINT_VERSION, "stage": stage, "epoch": epoch, "valid": value,
                             "model": trainable_state(self.net)}, self.run_dir / f"{stage}_best.pth")
                logger.info(f"[{stage}: new best on valid ({value:.4f}) at epoch {epoch}]" if validate
                            else f"[{stage}: validation off, epoch {epoch} kept]")
            progress["epoch_done"] = epoch
            progress["train_seconds"] = progress.get("train_seconds", 0.0) + time.time() - epoch_started
            if out_of_time:  # the stage ends here: later epochs are skipped, also after a resume
                progress["epoch_done"] = epochs - 1
                logger.warning(f"[{stage}: time limit of {time_limit} min reached in epoch {epoch}: "
                               f"stage ends after {epoch + 1} of {epochs} epochs]")
            self._save_last(completed, progress)
            self._on_checkpoint_saved(stage, epoch)
            if out_of_time:
                break
        self._finish_stage(stage, progress, int(section.get("eval_batch_size", batch_size)))
        self._save_last(completed + [stage], None)

    def _on_checkpoint_saved(self, stage: str, epoch: int) -> None:
        """Hook called after each epoch's checkpoint is on disk (tests simulate kills here)."""

    def _on_partial_checkpoint_saved(self, stage: str, epoch: int, batches_done: int) -> None:
        """Hook called after each mid-epoch checkpoint is on disk (tests simulate kills here)."""

    def _save_last(self, completed: List[str], progress: Optional[dict]) -> None:
        atomic_save({"version": CHECKPOINT_VERSION, "completed": list(completed), "current": progress,
                     "model": trainable_state(self.net),
                     "optimizer": self.optimizer.state_dict() if progress else None,
                     "scheduler": self.scheduler.state_dict() if progress else None,
                     "global_step": self._global_step, "rng": capture_rng(), "results": self.results},
                    self.run_dir / "last.pth")

    def _train_epoch(self, stage: str, epoch: int, batch_size: int, max_batches,
                     deadline: Optional[float] = None, checkpoint_every: Optional[float] = None,
                     save_partial=None, resume: Optional[dict] = None) -> bool:
        """Train one epoch; returns True when ``deadline`` (a ``time.time()`` value, the
        stage's ``time_limit_min``) passed and the epoch was cut short after a batch.

        Every ``checkpoint_every`` minutes (``<stage>.checkpoint_every_min``), right after an
        optimizer step, ``save_partial`` writes a mid-epoch checkpoint: batches done, random
        state of the epoch's start (it draws the batch order) and seconds trained. ``resume``
        (such a checkpoint plus its random state ``rng``) continues the epoch after them:
        same order, same batches, same random draws as an uninterrupted epoch."""
        self.model.train()
        self.evaluator.reset_metrics()
        getter = {"pretrain": self.train_dataloader.get_pretrain_data, "rec": self.train_dataloader.get_rec_data,
                  "conv": self.train_dataloader.get_conv_data}[stage]
        self.optimizer.zero_grad(set_to_none=True)
        self._accumulated = 0
        started = time.time()
        start_batch = int(resume["batches_done"]) if resume else 0
        if resume:
            restore_rng(resume["epoch_rng"])
        epoch_rng = capture_rng()
        batches = getter(batch_size, shuffle=True, max_batches=max_batches, start_batch=start_batch)
        if resume:
            restore_rng(resume["rng"])
            logger.info(f"[{stage} epoch {epoch}: resumed after batch {start_batch}]")
        out_of_time, n_batches, last_save = False, start_batch, time.time()
        for batch in batches:  # the getter already stops after max_batches
            self.step(batch, stage, "train")
            n_batches += 1
            if deadline is not None and time.time() >= deadline:
                out_of_time = True
                break
            if checkpoint_every and save_partial is not None and self._accumulated == 0 \
                    and time.time() - last_save >= 60.0 * checkpoint_every:
                seconds = time.time() - started + (resume.get("seconds", 0.0) if resume else 0.0)
                save_partial({"epoch": epoch, "batches_done": n_batches, "epoch_rng": epoch_rng,
                              "seconds": seconds, "batch_size": batch_size, "grad_accum": self.grad_accum})
                last_save = time.time()
        self._optimizer_step()  # leftover accumulated gradients
        loss = self.evaluator.optim_metrics.report().get(f"{stage}_loss")
        loss_value = loss.value() if loss is not None else float("nan")
        done_here = n_batches - start_batch
        logger.info(f"[{stage} epoch {epoch}: train loss {loss_value:.4f} over {done_here} batches"
                    + (f" (after resuming at batch {start_batch})" if start_batch else "")
                    + f" ({time.time() - started:.0f}s){', time limit reached' if out_of_time else ''}]")
        self._log_scalar(f"{stage}/train_loss", loss_value, epoch)
        return out_of_time

    # -- evaluation ----------------------------------------------------------------------------
    @torch.no_grad()
    def _validate(self, stage: str, epoch: int, batch_size: int) -> float:
        """Validation value used to choose the checkpoint (higher is better except conv loss)."""
        self.model.eval()
        if stage == "conv":
            nll, tokens = self._conv_nll(self.valid_dataloader, batch_size)
            loss = nll / max(tokens, 1)
            logger.info(f"[conv epoch {epoch}: valid loss {loss:.4f}, ppl {math.exp(min(loss, 50)):.2f}]")
            self._log_scalar("conv/valid_loss", loss, epoch)
            return loss
        if stage == "pretrain":
            metrics = self._pretrain_metrics(self.valid_dataloader, batch_size)
            logger.info(f"[{PRETRAIN_LOG_NAME} epoch {epoch} valid: {metrics}]")
            self._log_scalar("pretrain/valid_recall@50_inflated", metrics["recall@50"], epoch)
            return metrics["recall@50"]
        metrics, _ = self._rec_metrics(self.valid_dataloader, batch_size, mode="valid", epoch=epoch)
        key = self.opt.get("rec_select_metric", "recall@50")
        if key not in metrics:
            if key.startswith("recall@") and any(k.startswith("recall@") for k in metrics):
                # fewer items than the cut-off (tiny item sets): the deepest recall available
                fallback = max((k for k in metrics if k.startswith("recall@")), key=lambda k: int(k.split("@")[1]))
                logger.warning(f"[rec_select_metric {key} needs more items than {len(self.item_ids)}: using {fallback}]")
                key = fallback
            else:
                raise KeyError(f"config key 'rec_select_metric': {key!r} is not one of {sorted(metrics)}")
        for name, value in metrics.items():
            self._log_scalar(f"rec/valid_{name}", value, epoch)
        return metrics[key]

    def _pretrain_metrics(self, loader, batch_size: int) -> dict:
        hits = {1: 0, 10: 0, 50: 0}
        n, loss_sum = 0, 0.0
        for batch in loader.get_pretrain_eval_data(batch_size):
            output = self.step(batch, "pretrain", "valid")
            scores = getattr(output, "entity_scores", None)
            scores = (output_scores(output) if scores is None else scores).float().cpu()
            columns = self._score_entity_ids(scores.shape[1])
            top = columns[torch.topk(scores, min(50, scores.shape[1]), dim=-1).indices]
            for row, label in zip(top.tolist(), batch["labels"].tolist()):
                for k in hits:
                    hits[k] += int(label in row[:k])
            if output.loss is not None:
                loss_sum += float(output.loss) * len(top)
            n += len(top)
        out = {f"recall@{k}": v / max(n, 1) for k, v in hits.items()}
        out["loss"] = loss_sum / max(n, 1)
        return out

    def _rank_turns(self, loader, batch_size: int, desc_mode: str):
        """Yield (meta row, ranked entity ids, score row) for every recommendation turn."""
        for batch in loader.get_rec_eval_data(batch_size):
            output = self.step(batch, "rec", desc_mode)
            scores = output_scores(output).float().cpu()
            order = torch.topk(scores, self.ranking_depth, dim=-1).indices
            ranked = self.item_ids[order]
            meta = batch["meta"]
            for i in range(len(order)):
                yield ({k: v[i] for k, v in meta.items()}, ranked[i].tolist(), scores[i])

    def _rec_metrics(self, loader, batch_size: int, mode: str, epoch: int = -1):
        """CRSLab evaluator metrics (one sample per (turn, item), like CRSLab) + turn rankings."""
        self.evaluator.reset_metrics()
        item_column = {int(e): j for j, e in enumerate(self.item_ids.tolist())}
        rankings, loss_sum, n_labels = {}, 0.0, 0
        for meta, ranked, scores in self._rank_turns(loader, batch_size, mode):
            rankings[(meta["conv_ids"], meta["turn_indices"])] = ranked
            for label in meta["items"]:
                self.evaluator.rec_evaluate(ranked[:50], int(label))
                if int(label) in item_column:
                    loss_sum += float(F.cross_entropy(scores[None], torch.tensor([item_column[int(label)]])))
                    n_labels += 1
        self.evaluator.optim_metrics.add("rec_loss", AverageMetric(loss_sum, max(n_labels, 1)))
        self.evaluator.report(epoch=epoch, mode=mode)
        report = self.evaluator.rec_metrics.report()
        metrics = {name.replace("hit@", "recall@"): float(metric.value()) for name, metric in report.items()}
        metrics["loss"] = loss_sum / max(n_labels, 1)
        metrics["n_turns"], metrics["n_samples"] = len(rankings), n_labels
        return metrics, rankings

    def _conv_nll(self, loader, batch_size: int):
        """Summed token NLL and token count of the references (teacher forcing)."""
        nll, tokens = 0.0, 0
        for batch in loader.get_conv_data(batch_size, shuffle=False):
            output = self.step(batch, "conv", "valid")
            count = int((batch["labels"][:, 1:] != -100).sum())
            nll += float(output.loss) * count
            tokens += count
        return nll, tokens

    def _finish_stage(self, stage: str, progress: dict, batch_size: int) -> None:
        """Load the weights chosen on validation and evaluate the test split ONCE."""
        best_path = self.run_dir / f"{stage}_best.pth"
        best = load_checkpoint_weights(best_path)
        if best is not None:
            load_trainable_state(self.net, best, str(best_path))
        logger.info(f"[{stage}: chosen epoch {progress['best_epoch']} (valid {progress['best_value']})]")
        self.model.eval()
        summary = {"chosen_epoch": progress["best_epoch"], "valid_selection_value": progress["best_value"],
                   "valid_history": progress["history"],
                   "train_seconds": round(progress.get("train_seconds", 0.0), 1)}  # train + valid passes
        with torch.no_grad():
            if stage == "pretrain":
                summary["note"] = PRETRAIN_LOG_NAME + ": not a result"
            elif stage == "rec":
                metrics, rankings = self._rec_metrics(self.test_dataloader, batch_size, mode="test")
                summary["test"] = metrics
                self._test_rankings = rankings
                self._write_rankings(rankings)
            else:
                summary["test"] = self._conv_test(batch_size)
        self.results[stage] = summary
        self._write_outputs()

    def _conv_test(self, batch_size: int) -> dict:
        """Perplexity and generation metrics on the test split; the replies go to
        ``test_replies.jsonl``. Progress is journaled, so a killed run resumes the pass."""
        journal = GenerationJournal(self.run_dir / JOURNAL_NAME,
                                    self._generation_key(self.test_dataloader, batch_size))
        if journal.nll is None:
            nll, tokens = self._conv_nll(self.test_dataloader, batch_size)
            journal.record_nll(nll, tokens)
        else:
            nll, tokens = journal.nll
            logger.info(f"[conv test: teacher-forced pass and {journal.n_done} replies reused from {journal.path}]")
        loss = nll / max(tokens, 1)
        replies = self.generate_replies(self.test_dataloader, batch_size, journal=journal)
        hyps = [r["reply"] for r in replies]
        refs = [r["reference"] for r in replies]
        recommended = [r["n_slots"] > 0 for r in replies]
        metrics = {"loss": loss, "ppl": math.exp(min(loss, 50)), "n_tokens": tokens,
                   "generation": generation_metrics(hyps, refs, recommended, nll, tokens)}
        samples_path = self.run_dir / "test_replies.jsonl"
        samples_path.parent.mkdir(parents=True, exist_ok=True)
        import json
        with samples_path.open("w", encoding="utf-8") as handle:
            for r in replies:
                handle.write(json.dumps(r) + "\n")
        journal.remove()
        logger.info(f"[conv test: loss {loss:.4f}, ppl {metrics['ppl']:.2f}; replies in {samples_path}]")
        return metrics

    def _generation_key(self, loader, batch_size: int) -> dict:
        """What the test replies depend on: a journal made under another key is not reused."""
        turns = [loader.turns[i] for i in loader.generation_rows()]
        generation = self._generation_kwargs()
        options = getattr(self.opt, "opt", self.opt)  # CRSLab's Config keeps its dict in .opt
        shaping = {k: v for k, v in sorted(options.items())
                   if k.endswith("_max_length") or "demonstration" in k or k in ("lm", "text_encoder")}
        return {"weights": state_fingerprint(trainable_tensors(self.net)),
                "rows": rows_fingerprint((t.conv_id, t.turn_index) for t in turns), "n_rows": len(turns),
                "batch_size": batch_size, "generation": generation, "inputs": {k: str(v) for k, v in shaping.items()},
                "device": self.device.type, "bf16": self.use_bf16,
                "sampling_seed": self.seed if generation["do_sample"] else None}

    # -- retrieved demonstrations (option) ------------------------------------------------
    def _demonstration_index(self):
        """The training-turn index of ``use_demonstrations`` (None when the option is off)."""
        if not self.opt.get("use_demonstrations"):
            return None
        if self._demo_index is None:
            from crslab_mscrs.training.demonstrations import DemonstrationIndex

            self._demo_index = DemonstrationIndex(
                self.core, self.train_dataloader, k=int(self.opt.get("n_demonstrations", 3)),
                max_length=int(self.opt.get("demonstration_max_length", 128)),
                context_turns=int(self.opt.get("demonstration_context_turns", 2)), device=self.device)
        return self._demo_index

    def _attach_demonstrations(self) -> None:
        index = self._demonstration_index()
        if index is not None:
            for loader in self._loaders():
                if loader.demonstrations is None:
                    index.attach(loader)

    # -- generation with slot filling ------------------------------------------------------
    def _generation_kwargs(self) -> dict:
        return {"max_new_tokens": int(self.opt.get("max_new_tokens", 50)),
                "num_beams": int(self.opt.get("num_beams", 1)), "do_sample": bool(self.opt.get("do_sample", False)),
                "top_p": self.opt.get("top_p"), "no_repeat_ngram_size": int(self.opt.get("no_repeat_ngram_size", 3))}

    @contextmanager
    def _weights(self, path: Path):
        """Temporarily use the weights saved at ``path`` (when it exists)."""
        weights = load_checkpoint_weights(path)
        if weights is None:
            yield False
            return
        current = trainable_state(self.net)
        load_trainable_state(self.net, weights, str(path))
        try:
            yield True
        finally:
            load_trainable_state(self.net, current, "in-memory weights")

    @torch.no_grad()
    def generate_replies(self, loader, batch_size: int, journal: Optional[GenerationJournal] = None) -> List[dict]:
        """Generate a reply for every recommender turn and fill its ``<movie>`` slots with
        the recommender's top items (ranked with the rec stage's chosen weights).

        With a ``journal``, the replies it holds are reused and each new batch is added to it
        before the next starts. With ``do_sample``, each batch samples from its own seed
        (run seed and row number), so a resumed pass draws what an uninterrupted one would.

        Items are ranked only for the replies that have a slot (``top_items`` is empty for the
        others): on CPU the ranking pass costs as much as a second prefill of every context."""
        self.model.eval()
        self._attach_demonstrations()
        rows = loader.generation_rows()
        raw_replies = [r["raw"] for r in journal.replies] if journal else []
        tokenizer = self.core.lm_tokenizer
        kwargs = self._generation_kwargs()
        starts = range(len(raw_replies), len(rows), batch_size)
        for start in tqdm(starts, desc="generate", leave=False, initial=ceil(len(raw_replies) / batch_size),
                          total=ceil(len(rows) / batch_size)):
            batch = loader.generation_batchify(rows[start:start + batch_size])
            with self._sampling_rng(start if kwargs["do_sample"] else None), self._autocast():
                new_tokens = self.core.generate(self._to_device(batch), **kwargs)
            texts = [text.strip() for text in tokenizer.batch_decode(new_tokens.cpu(), skip_special_tokens=True)]
            if journal is not None:
                meta = batch["meta"]
                journal.append([{"conv_id": meta["conv_ids"][i], "turn_index": meta["turn_indices"][i], "raw": text}
                                for i, text in enumerate(texts)])
                self._on_replies_saved(start + len(texts))
            raw_replies.extend(texts)
        meta = loader.generation_meta(rows)
        metas = [{"conv_id": meta["conv_ids"][i], "turn_index": meta["turn_indices"][i],
                  "reference": meta["references"][i]} for i in range(len(rows))]
        with_slots = [i for i, raw in enumerate(raw_replies) if count_placeholders(raw, self.placeholder)]
        top_items = self._top_items_of_rows(loader, with_slots, batch_size)
        replies = []
        for i, (raw, meta) in enumerate(zip(raw_replies, metas)):
            items = top_items.get(i, [])
            names = [self.item_name(e) for e in items]
            replies.append({**meta, "raw": raw, "reply": fill_placeholders(raw, names, self.placeholder),
                            "n_slots": count_placeholders(raw, self.placeholder), "top_items": items[:3]})
        return replies

    @contextmanager
    def _sampling_rng(self, row: Optional[int]):
        """For sampled generation: a seed of its own per batch, global RNG state untouched."""
        if row is None:
            yield
            return
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed * 1_000_003 + row)
            yield

    def _on_replies_saved(self, n_done: int) -> None:
        """Hook called after each journaled generation batch (tests simulate kills here)."""

    def _top_items_of_rows(self, loader, indices: List[int], batch_size: int, k: int = 10) -> Dict[int, List[int]]:
        """Top-``k`` items (rec stage's chosen weights) of the generation rows ``indices``."""
        if not indices:
            return {}
        rows = loader.generation_rows()
        top: Dict[int, List[int]] = {}
        with self._weights(self.run_dir / "rec_best.pth") as found:
            if not found:
                logger.warning("[no rec_best.pth: <movie> slots are filled with the current weights' ranking]")
            for start in range(0, len(indices), batch_size):
                chunk = indices[start:start + batch_size]
                batch = loader.generation_batchify([rows[i] for i in chunk])
                scores = output_scores(self.step(batch, "rec", "test")).float().cpu()
                ranked = self.item_ids[torch.topk(scores, min(k, scores.shape[1]), dim=-1).indices].tolist()
                top.update(zip(chunk, ranked))
        return top

    def item_name(self, entity_id: int) -> str:
        uri = self.id2entity.get(int(entity_id))
        return entity_display_name(uri) if uri else str(entity_id)

    # -- outputs ---------------------------------------------------------------------------
    def _write_rankings(self, rankings) -> None:
        write_rankings_file(self.run_dir / "rankings.jsonl", rankings, self.ranking_depth)
        if self.opt.get("rankings_out"):
            write_rankings_file(self.opt["rankings_out"], rankings, self.ranking_depth)

    def _write_outputs(self) -> None:
        metrics = {"model": self.opt.get("model_name"), "dataset": self.opt.get("dataset"), "seed": self.seed,
                   "device": self._device_summary(), "stages": self.results}
        write_metrics_file(self.run_dir / "metrics.json", metrics)
        if self.opt.get("metrics_out"):
            write_metrics_file(self.opt["metrics_out"], metrics)

    def _device_summary(self) -> dict:
        """Where the run trained: device, GPU name and peak GPU memory, bf16 autocast."""
        summary = {"device": str(self.device), "bf16_autocast": self.use_bf16}
        if self.device.type == "cuda":
            summary["gpu"] = torch.cuda.get_device_name(self.device)
            summary["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(self.device) / 2 ** 20, 1)
        return summary

    # -- interaction -----------------------------------------------------------------------
    @torch.no_grad()
    def interact(self, stdin: Optional[TextIO] = None, stdout: Optional[TextIO] = None,
                 top_k: Optional[int] = None):
        """Chat on stdin/stdout: each user line gets a generated reply (``<movie>`` filled)
        and the top-k recommended items. ``[EXIT]`` or end of input stops."""
        stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
        top_k = int(top_k or self.opt.get("interact_top_k", 3))
        conv_weights = self.run_dir / "conv_best.pth"
        final = load_checkpoint_weights(conv_weights)
        if final is not None:
            load_trainable_state(self.net, final, str(conv_weights))
            print(f"Loaded {conv_weights} (recommendations: {self.run_dir / 'rec_best.pth'}).", file=stdout)
        else:
            print(f"No checkpoint {conv_weights}: chatting with UNTRAINED weights.", file=stdout)
        self.model.eval()
        linker = EntityLinker(self.vocab.get("entity2id", {}), set(self.item_ids.tolist()))
        loader = self.test_dataloader or self.train_dataloader
        context: List[str] = []
        entities: List[int] = []
        print("Enter [EXIT] to quit.", file=stdout, flush=True)

        def read_line() -> str:  # a visible prompt; piped input is echoed so transcripts read well
            print("You: ", end="", file=stdout, flush=True)
            line = stdin.readline()
            if not (hasattr(stdin, "isatty") and stdin.isatty()):
                print(line.rstrip("\n"), file=stdout, flush=True)
            return line

        for line in iter(read_line, ""):
            text = line.strip()
            if not text:
                continue
            if "[EXIT]" in text:
                break
            context.append(turn_text(text, is_system=False))
            for entity in linker.link(text):
                if entity not in entities:
                    entities.append(entity)
            batch = loader.live_batch(context, entities)
            index = self._demonstration_index()
            if index is not None:
                from crslab_mscrs.training.demonstrations import demonstration_tensors

                batch.update(demonstration_tensors(index.retrieve(batch["prompt_ids"], [None]), index.pad_id))
            with self._weights(self.run_dir / "rec_best.pth"):
                scores = output_scores(self.step(batch, "rec", "test")).float().cpu()[0]
            items = self.item_ids[torch.topk(scores, min(max(top_k, 10), len(scores))).indices].tolist()
            with self._autocast():
                new_tokens = self.core.generate(self._to_device(batch), **self._generation_kwargs())
            raw = self.core.lm_tokenizer.decode(new_tokens[0].cpu(), skip_special_tokens=True).strip()
            names = [self.item_name(e) for e in items]
            reply = fill_placeholders(raw, names, self.placeholder)
            used = items[:count_placeholders(raw, self.placeholder)]
            print(f"System: {reply}", file=stdout, flush=True)
            print("Recommended: " + "; ".join(names[:top_k]), file=stdout, flush=True)
            context.append(turn_text(reply, is_system=True))
            entities.extend(e for e in used if e not in entities)
        return context


def _minutes(section: dict, stage: str, key: str) -> Optional[float]:
    """A stage's positive number of minutes (``time_limit_min``, ``checkpoint_every_min``) or None."""
    value = section.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
        raise ValueError(f"config key '{stage}.{key}' must be a positive number of minutes or null, got {value!r}")
    return value


def output_scores(output) -> torch.Tensor:
    """Item (or entity) scores of a ``RecOutput``."""
    for name in ("item_scores", "scores", "logits"):
        value = getattr(output, name, None)
        if value is not None:
            return value
    raise TypeError(f"{type(output).__name__} has no item_scores")


def load_checkpoint_weights(path: Path) -> Optional[dict]:
    path = Path(path)
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)["model"]
