"""CRSLab system for MSCRS / UniCRS: prompt pre-training -> recommendation -> conversation.

The adapter between CRSLab's :class:`~crslab.system.base.BaseSystem` (model, loaders,
evaluator, ``-rs`` / ``-ss`` / ``--interact`` flags) and the modules that own each job
(``docs/model.md``, sections "Training stages" and "Defects of the authors' code"):

- :mod:`.settings`: every config key and its default;
- :mod:`.loop`: stages, epochs, gradient accumulation, time limits, checkpoints, resume;
- :mod:`.validation`: validation / test ranking metrics and the conv NLL;
- :mod:`.generation`: test replies, ``<movie>`` slot filling, generation journal;
- :mod:`.outputs`: ``rankings.jsonl``, ``metrics.json``, ``test_replies.jsonl``;
- :mod:`.chat`: interactive mode; :mod:`.demonstrations`: option ``use_demonstrations``.

bf16 autocast on CUDA only (``bf16``); seeds from ``seed``; tensorboard with CRSLab's ``-tb``.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Dict, List, Optional, TextIO

import torch
from crslab.evaluator.metrics.base import AverageMetric
from crslab.system.base import BaseSystem
from loguru import logger

from crslab_mscrs import host_memory
from crslab_mscrs.training.checkpoint import save_weights, seed_everything
from crslab_mscrs.training.demonstrations import Demonstrations
from crslab_mscrs.training import distributed
from crslab_mscrs.training.generation import Generation
from crslab_mscrs.training.loop import TrainingLoop
from crslab_mscrs.training import run_folder
from crslab_mscrs.training.outputs import RunOutputs
from crslab_mscrs.training.run_lock import RunLock
from crslab_mscrs.training.settings import STAGES, RunSettings
from crslab_mscrs.training.validation import Evaluation

MODES = ("train", "valid", "test")


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
        self.settings = RunSettings.from_opt(opt)
        self.resume_requested = bool(restore_system) or self.settings.resume
        seed_everything(self.settings.seed)  # before the model is built: same seed, same initial weights
        super().__init__(opt, train_dataloader, valid_dataloader, test_dataloader, vocab, side_data,
                         False, interact, debug, tensorboard)
        # CRSLab wraps the model in DataParallel on GPU: weights are saved from the bare
        # module so checkpoints move between CPU and GPU runs
        self.net = self.model.module if isinstance(self.model, torch.nn.DataParallel) else self.model
        if self.device.type == "cpu" and self.settings.cpu_malloc_mmap_threshold:
            why_not = host_memory.set_mmap_threshold(self.settings.cpu_malloc_mmap_threshold)
            logger.info(f"[cpu_malloc_mmap_threshold: {why_not}: left as it is]" if why_not else
                        f"[cpu_malloc_mmap_threshold: tensors of >= {self.settings.cpu_malloc_mmap_threshold} "
                        f"bytes are returned to the system when freed]")
        self.core = find_prompt_crs(self.net)
        self.item_ids = torch.as_tensor(self.core.item_ids).long().cpu()
        for loader in self.loaders():
            loader.attach_tokenizers(self.core.lm_tokenizer, self.core.text_tokenizer)
            loader.set_item_ids(self.item_ids.tolist())
        self.item_names = train_dataloader.item_names  # the one resolver (data/item_names.py)
        # refuses a folder of another recipe; under torchrun rank 0 creates it first
        self.run_dir = distributed.rank_zero_first(lambda: run_folder.open_run_dir(self.settings.run_dir, opt))
        self.data_parallel = distributed.DataParallel()  # identity in one process
        self.data_parallel.broadcast_parameters(self.net)
        if self.data_parallel.enabled and self.core.config.contrastive_weight > 0:
            logger.warning("[torchrun: the contrastive loss's in-batch negatives are each rank's shard, "
                           "not the global batch]")
        self.ranking_depth = min(self.settings.ranking_depth, len(self.item_ids))
        self.use_bf16 = self.device.type == "cuda" and self.settings.bf16
        self.writer = None
        if tensorboard and not interact and distributed.is_writer():
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))
        self.demonstrations = Demonstrations(self.settings.demonstrations, self.core, train_dataloader, self.device)
        self.outputs = RunOutputs(self.settings, self.ranking_depth, self.device_summary)
        self.evaluation = Evaluation(self)
        self.generation = Generation(self)
        self.loop = TrainingLoop(self)

    @property
    def results(self) -> Dict[str, dict]:
        """``metrics.json`` ``stages`` so far."""
        return self.loop.results

    # -- what the components share -------------------------------------------------------------
    def loaders(self) -> List:
        """The distinct train / valid / test loaders."""
        seen = []
        for loader in (self.train_dataloader, self.valid_dataloader, self.test_dataloader):
            if loader is not None and all(loader is not s for s in seen):
                seen.append(loader)
        return seen

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.use_bf16 else nullcontext()

    def to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device) for k, v in batch.items() if isinstance(v, torch.Tensor)}

    def log_scalar(self, tag: str, value: Optional[float], step: int) -> None:
        if self.writer is not None and value is not None and math.isfinite(value):
            self.writer.add_scalar(tag, value, step)

    def device_summary(self) -> dict:
        """Where the run trained: device, GPU name and peak GPU memory, bf16 autocast."""
        summary = {"device": str(self.device), "bf16_autocast": self.use_bf16}
        if self.device.type == "cuda":
            summary["gpu"] = torch.cuda.get_device_name(self.device)
            summary["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(self.device) / 2 ** 20, 1)
        return summary

    # -- CRSLab API ------------------------------------------------------------------------------
    def restore_model(self):
        """CRSLab's ``-rs``: resume from ``<run_dir>/last.pth`` (done in :meth:`fit`) or, in
        ``interact``, load the chosen weights."""
        self.resume_requested = True

    def save_model(self):
        """CRSLab's ``-ss``: the final weights (trainable part) to ``<run_dir>/final.pth``."""
        save_weights(self.run_dir / "final.pth", self.net)
        logger.info(f"[Saved final weights to {self.run_dir / 'final.pth'}]")

    def step(self, batch, stage, mode):
        """One batch of ``stage`` (pretrain / rec / conv) in ``mode`` (train / valid / test).

        Returns the model output (``RecOutput`` / ``ConvOutput``); in train mode the loss
        is back-propagated (gradient accumulation and the optimizer step: :mod:`.loop`).
        """
        assert stage in STAGES and mode in MODES
        inputs = self.to_device(batch)
        with self.autocast():
            # once per step (bug 6), shared by prompt and scoring; in training only the rows it reads
            table = self.core.entity_table(self.core.step_rows(inputs, stage))
            if stage == "pretrain":
                output = self.core.pretrain(inputs, entity_table=table)
            elif stage == "rec":
                output = self.core.recommend(inputs, entity_table=table)
            else:
                output = self.core.converse(inputs, entity_table=table)
        if mode == "train":
            loss = self.data_parallel.local_loss(output.loss, batch, stage)  # this rank's share
            self.loop.backward(loss.scaled)
            self.evaluator.optim_metrics.add(f"{stage}_loss", AverageMetric(loss.value))
        return output

    def fit(self):
        """Train and test every stage, holding the run folder's lock (:mod:`.run_lock`)."""
        with RunLock(self.run_dir):
            return self.loop.fit()

    def interact(self, stdin: Optional[TextIO] = None, stdout: Optional[TextIO] = None,
                 top_k: Optional[int] = None, stderr: Optional[TextIO] = None):
        """Chat on stdin/stdout, messages on stderr (:func:`.chat.chat`)."""
        from crslab_mscrs.training.chat import chat

        return chat(self, stdin, stdout, top_k, stderr)
