"""The stage / epoch training loop: pretrain -> rec -> conv, resumable after a kill.

Follows MSCRS (SIGIR 2025) / UniCRS (KDD 2022) training with the authors' bugs fixed
(``docs/model.md``, sections "Training stages" and "Defects of the authors' code"):

- each stage has its own section (:class:`~.settings.StageSettings`): epochs, batch size,
  AdamW with linear warmup/decay, gradient accumulation and clipping, at most
  ``max_batches_per_epoch`` training batches per epoch, a ``time_limit_min`` after which the
  stage ends (the batch that passes it is the last), ``validate`` (false: no valid pass,
  the last epoch is the chosen one);
- the epoch kept is chosen on the VALIDATION split (:mod:`.validation`) and the TEST split
  is evaluated once, with the chosen weights (:meth:`TrainingLoop.test_stage`);
- the conversation stage starts from the recommendation stage's chosen weights (bug 2): the
  weights simply stay loaded between stages;
- ``last.pth`` after every epoch, every ``checkpoint_every_min`` minutes inside an epoch and
  after every stage (:class:`~.run_state.RunCheckpoint`); a resumed run goes on from there with
  the same batch order and random draws as an uninterrupted one.
"""
from __future__ import annotations

import time
from math import ceil
from typing import Dict, List, Optional

import torch
from loguru import logger

from crslab_mscrs.training.checkpoint import (load_checkpoint, load_checkpoint_weights, load_trainable_state,
                                              save_run_checkpoint, save_weights, trainable_state)
from crslab_mscrs.training.optim import build_optimizer
from crslab_mscrs.training.run_state import EpochRecord, PartialEpoch, RngState, RunCheckpoint, StageProgress
from crslab_mscrs.training.settings import StageSettings

PRETRAIN_LOG_NAME = "pretrain (inflated, response in input)"


class TrainingLoop:
    """Trains the stages of a run; ``system`` is the :class:`~.system.MSCRSSystem` (model,
    loaders, ``step``, evaluation and generation components)."""

    def __init__(self, system):
        self.system = system
        self.results: Dict[str, dict] = {}   # metrics.json ``stages``
        self.optimizer = self.scheduler = None
        self.grad_accum, self.gradient_clip = 1, -1.0
        self.accumulated = 0
        self.global_step = 0

    # -- hooks (tests simulate kills here) ----------------------------------------------------
    def on_epoch_saved(self, stage: str, epoch: int) -> None:
        """Called after each epoch's ``last.pth`` is on disk."""

    def on_partial_saved(self, stage: str, epoch: int, batches_done: int) -> None:
        """Called after each mid-epoch ``last.pth`` is on disk."""

    # -- gradient accumulation ---------------------------------------------------------------
    def backward(self, loss: torch.Tensor) -> None:
        """Back-propagate one training batch; step the optimizer every ``grad_accum`` batches."""
        (loss.float() / self.grad_accum).backward()
        self.accumulated += 1
        if self.accumulated >= self.grad_accum:
            self.optimizer_step()

    def optimizer_step(self) -> None:
        if self.accumulated == 0:
            return
        self.system.data_parallel.sync_gradients(self.system.model)  # torchrun: sum over ranks
        if self.gradient_clip > 0:
            torch.nn.utils.clip_grad_norm_([p for p in self.system.model.parameters() if p.requires_grad],
                                           self.gradient_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.accumulated = 0
        self.global_step += 1

    # -- the run -------------------------------------------------------------------------------
    def resume_point(self) -> Optional[RunCheckpoint]:
        system = self.system
        if not system.resume_requested:
            return None
        path = system.run_dir / "last.pth"
        checkpoint = load_checkpoint(path)
        if checkpoint is None:
            logger.warning(f"[resume requested but {path} does not exist: starting fresh]")
            return None
        load_trainable_state(system.net, checkpoint.model, str(path))
        self.results = checkpoint.results
        if checkpoint.current is None:  # between stages: the next stage starts from this random state
            checkpoint.rng.restore()
            self.global_step = checkpoint.global_step
        timed = [stage for stage in system.settings.stages if stage not in checkpoint.completed
                 and StageSettings.from_opt(system.opt, stage).time_limit_min]
        reasons = checkpoint.inexact_reasons(system.device.type, timed)
        if reasons:
            logger.warning(f"[Resuming {system.run_dir}: {checkpoint.describe()}; resume is NOT exact: "
                           f"{'; '.join(reasons)}]")
        else:
            logger.info(f"[Resuming {system.run_dir}: {checkpoint.describe()}; resume is exact (weights, "
                        "optimizer and random state as saved)]")
        return checkpoint

    def fit(self) -> Dict[str, dict]:
        checkpoint = self.resume_point()
        completed = list(checkpoint.completed) if checkpoint else []
        for stage in self.system.settings.stages:
            if stage in completed:
                logger.info(f"[Stage {stage} already finished: skipped]")
                continue
            current = checkpoint.current if checkpoint else None
            resume_from = checkpoint if current is not None and current.stage == stage else None
            self.train_stage(stage, completed, resume_from)
            completed.append(stage)
        self.system.outputs.write_metrics(self.results)
        self.system.outputs.copy_rankings_if_missing()
        return self.results

    def save_last(self, completed: List[str], progress: Optional[StageProgress]) -> None:
        save_run_checkpoint(RunCheckpoint(
            completed=list(completed), current=progress, model=trainable_state(self.system.net),
            optimizer=self.optimizer.state_dict() if progress else None,
            scheduler=self.scheduler.state_dict() if progress else None,
            global_step=self.global_step, rng=RngState.capture(), results=self.results,
            device=self.system.device.type, cpu_threads=torch.get_num_threads()),
            self.system.run_dir / "last.pth")

    def train_stage(self, stage: str, completed: List[str], checkpoint: Optional[RunCheckpoint]) -> None:
        system = self.system
        settings = StageSettings.from_opt(system.opt, stage)
        self.grad_accum, self.gradient_clip = settings.gradient_accumulation_steps, settings.gradient_clip
        if stage == "conv":
            system.demonstrations.attach(system.loaders())
        n_batches = system.train_dataloader.num_batches(stage, settings.batch_size)
        self.full_epoch_batches = n_batches  # before max_batches_per_epoch: metrics.json "budget"
        if settings.max_batches_per_epoch:
            n_batches = min(n_batches, settings.max_batches_per_epoch)
        total_steps = ceil(n_batches / self.grad_accum) * settings.epochs
        self.optimizer, self.scheduler = build_optimizer(system.model, settings, total_steps)
        progress, partial, resume_rng = StageProgress(stage), None, None
        if checkpoint is not None:
            progress = checkpoint.current
            partial, progress.partial = progress.partial, None
            if partial is not None and (partial.batch_size, partial.grad_accum) != (settings.batch_size,
                                                                                    self.grad_accum):
                raise ValueError(
                    f"{system.run_dir / 'last.pth'} was written inside epoch {partial.epoch} of stage "
                    f"{stage} with {stage}.batch_size={partial.batch_size} and "
                    f"{stage}.gradient_accumulation_steps={partial.grad_accum}; the config now says "
                    f"{settings.batch_size} and {self.grad_accum}: resume with the same values or start a new run")
            self.optimizer.load_state_dict(checkpoint.optimizer)
            self.scheduler.load_state_dict(checkpoint.scheduler)
            self.global_step = checkpoint.global_step
            resume_rng = checkpoint.rng
            resume_rng.restore()
        logger.info(f"[Stage {stage}: {settings.epochs} epochs x {n_batches} batches of {settings.batch_size}, "
                    f"{total_steps} optimizer steps, from epoch {progress.epoch_done + 1}"
                    + (f", batch {partial.batches_done}]" if partial else "]"))
        deadline = time.time() + 60.0 * settings.time_limit_min if settings.time_limit_min else None

        def save_partial(state: PartialEpoch) -> None:
            progress.partial = state
            self.save_last(completed, progress)
            progress.partial = None
            self.on_partial_saved(stage, state.epoch, state.batches_done)

        for epoch in range(progress.epoch_done + 1, settings.epochs):
            epoch_started = time.time()
            resume = partial if partial is not None and partial.epoch == epoch else None
            partial = None
            out_of_time = self.train_epoch(settings, epoch, deadline, save_partial=save_partial,
                                           resume=resume, resume_rng=resume_rng)
            if resume is not None:
                epoch_started -= resume.seconds
            if settings.validate:
                value = system.evaluation.validate(stage, epoch, settings.eval_batch_size)
            else:  # no valid pass: the latest epoch is the chosen one
                value = None
            improved = progress.improves(value, maximise=stage != "conv")
            progress.history.append(EpochRecord(epoch, value, out_of_time, self.last_epoch_batches))
            if improved:
                progress.best_value, progress.best_epoch = value, epoch
                save_weights(system.run_dir / f"{stage}_best.pth", system.net, stage=stage, epoch=epoch, valid=value)
                logger.info(f"[{stage}: new best on valid ({value:.4f}) at epoch {epoch}]" if settings.validate
                            else f"[{stage}: validation off, epoch {epoch} kept]")
            progress.epoch_done = epoch
            progress.train_seconds += time.time() - epoch_started
            if out_of_time:  # the stage ends here: later epochs are skipped, also after a resume
                progress.epoch_done = settings.epochs - 1
                logger.warning(f"[{stage}: time limit of {settings.time_limit_min} min reached in epoch {epoch}: "
                               f"stage ends after {epoch + 1} of {settings.epochs} epochs]")
            self.save_last(completed, progress)
            self.on_epoch_saved(stage, epoch)
            if out_of_time:
                break
        self.stage_budget = {"epochs": settings.epochs, "batch_size": settings.batch_size,
                             "batches_per_epoch": self.full_epoch_batches,
                             "max_batches_per_epoch": settings.max_batches_per_epoch,
                             "time_limit_min": settings.time_limit_min, "validated": settings.validate}
        self.test_stage(stage, progress, settings.eval_batch_size)
        self.save_last(completed + [stage], None)

    def train_epoch(self, settings: StageSettings, epoch: int, deadline: Optional[float] = None,
                    save_partial=None, resume: Optional[PartialEpoch] = None,
                    resume_rng: Optional[RngState] = None) -> bool:
        """Train one epoch; returns True when ``deadline`` (a ``time.time()`` value, the
        stage's ``time_limit_min``) passed and the epoch was cut short after a batch.

        Every ``checkpoint_every_min`` minutes, right after an optimizer step, ``save_partial``
        writes a mid-epoch checkpoint (:class:`PartialEpoch`). ``resume`` (such a checkpoint,
        with ``resume_rng`` the random state saved with it) continues the epoch after its
        batches: same order, same batches, same random draws as an uninterrupted epoch."""
        system, stage = self.system, settings.name
        system.model.train()
        system.evaluator.reset_metrics()
        getter = {"pretrain": system.train_dataloader.get_pretrain_data, "rec": system.train_dataloader.get_rec_data,
                  "conv": system.train_dataloader.get_conv_data}[stage]
        self.optimizer.zero_grad(set_to_none=True)
        self.accumulated = 0
        started = time.time()
        start_batch = resume.batches_done if resume else 0
        if resume:
            resume.epoch_rng.restore()
        epoch_rng = RngState.capture()
        batches = getter(settings.batch_size, shuffle=True, max_batches=settings.max_batches_per_epoch,
                         start_batch=start_batch)
        if resume:
            resume_rng.restore()
            logger.info(f"[{stage} epoch {epoch}: resumed after batch {start_batch}]")
        out_of_time, n_batches, last_save = False, start_batch, time.time()
        every = settings.checkpoint_every_min
        for batch in batches:  # the getter already stops after max_batches_per_epoch
            system.step(batch, stage, "train")
            n_batches += 1
            if deadline is not None and time.time() >= deadline:
                out_of_time = True
                break
            if every and save_partial is not None and self.accumulated == 0 \
                    and time.time() - last_save >= 60.0 * every:
                seconds = time.time() - started + (resume.seconds if resume else 0.0)
                save_partial(PartialEpoch(epoch, n_batches, epoch_rng, seconds, settings.batch_size,
                                          self.grad_accum))
                last_save = time.time()
        self.optimizer_step()  # leftover accumulated gradients
        self.last_epoch_batches = n_batches  # batches of this epoch, resumed ones included
        loss = system.evaluator.optim_metrics.report().get(f"{stage}_loss")
        loss_value = loss.value() if loss is not None else float("nan")
        logger.info(f"[{stage} epoch {epoch}: train loss {loss_value:.4f} over {n_batches - start_batch} batches"
                    + (f" (after resuming at batch {start_batch})" if start_batch else "")
                    + f" ({time.time() - started:.0f}s){', time limit reached' if out_of_time else ''}]")
        system.log_scalar(f"{stage}/train_loss", loss_value, epoch)
        return out_of_time

    def test_stage(self, stage: str, progress: StageProgress, batch_size: int) -> None:
        """Load the weights chosen on validation and evaluate the test split ONCE."""
        system = self.system
        best_path = system.run_dir / f"{stage}_best.pth"
        best = load_checkpoint_weights(best_path)
        if best is not None:
            load_trainable_state(system.net, best, str(best_path))
        logger.info(f"[{stage}: chosen epoch {progress.best_epoch} (valid {progress.best_value})]")
        system.model.eval()
        selection = {"pretrain": "recall@50 (pretrain, inflated)", "conv": "loss"}.get(
            stage, getattr(system.evaluation, "selection_metric", system.settings.rec_select_metric))
        if not (getattr(self, "stage_budget", None) or {}).get("validated", True):
            selection = "none (validate: false, the last epoch is kept)"
        summary = {"chosen_epoch": progress.best_epoch, "valid_selection_metric": selection,
                   "valid_selection_value": progress.best_value,
                   "valid_history": [h.to_plain() for h in progress.history],
                   "train_seconds": round(progress.train_seconds, 1),  # train + valid passes
                   "budget": getattr(self, "stage_budget", None)}  # crslab_mscrs.evaluation.budget reads it
        with torch.no_grad():
            if stage == "pretrain":
                summary["note"] = PRETRAIN_LOG_NAME + ": not a result"
            elif stage == "rec":
                metrics, rankings = system.evaluation.rec_metrics(system.test_dataloader, batch_size, mode="test")
                summary["test"] = metrics
                system.outputs.write_rankings(rankings)
            else:
                summary["test"] = system.generation.conv_test(batch_size)
        self.results[stage] = summary
        system.outputs.write_metrics(self.results)
