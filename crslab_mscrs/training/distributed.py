"""Data-parallel training under ``torchrun`` (``torch.distributed``: NCCL on GPUs, gloo on CPU).

``torchrun --nproc_per_node=N run_crslab.py --config ...`` starts N processes; each builds
the same model from the same seed (rank 0's trainable weights are then broadcast, as DDP
does), and:

- **training**: every rank draws the same batch order (same seed, Python ``random``); the
  config's ``batch_size`` stays the GLOBAL batch and rank ``r`` takes rows ``r::N`` of each
  global batch (:meth:`DataParallel.shard_rows`, DistributedSampler-style). Each rank's loss
  is weighted by its share of the global batch (rows; label tokens for conv, whose loss is a
  token mean), and the trainable gradients are summed across ranks once per optimizer step
  (:meth:`DataParallel.sync_gradients`, DDP's bucketed all-reduce with ``no_sync`` during
  accumulation). The frozen LM has no gradients and is never communicated. So one optimizer
  step sees the gradient of the global batch's loss, as a 1-process run does.
- **evaluation**: rank ``r`` computes the batches ``k`` with ``k % N == r`` of the 1-process
  batching (:meth:`DataParallel.map_batches`); the per-batch results are gathered and put
  back in order, so rankings, metrics and replies equal a 1-process run's.
- **outputs**: only rank 0 writes checkpoints, run files and logs (:func:`is_writer`);
  the others wait at a barrier after each checkpoint.

Why not ``torch.nn.parallel.DistributedDataParallel``: the system drives the model through
several methods (``entity_table``, ``recommend``, ``converse``), not ``forward``, so DDP's
hooks would not see the steps; the all-reduce here is what DDP does for the parameters that
train. In-batch negatives of the optional contrastive loss (``contrastive_weight > 0``) are
the rank's shard, not the global batch (a warning says so).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar

import torch
import torch.distributed as dist
from loguru import logger

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Shard:
    """This process's place in the job: ``rank`` of ``world_size`` (1: no distribution)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def current() -> Shard:
    """The shard of this process (from the initialised process group; else a single one)."""
    if dist.is_available() and dist.is_initialized():
        return Shard(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return Shard()


def is_writer() -> bool:
    """Whether this process writes files and logs (rank 0, or the only process; after the
    group is gone, torchrun's ``RANK``)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def barrier() -> None:
    if current().enabled:
        dist.barrier()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(use_cuda: Optional[bool] = None) -> Shard:
    """Join the process group torchrun describes (``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR``...):
    NCCL when CUDA is available (device ``cuda:LOCAL_RANK``), gloo otherwise. A no-op outside
    torchrun or when the group exists already."""
    if not launched_by_torchrun() or dist.is_initialized():
        return current()
    use_cuda = torch.cuda.is_available() if use_cuda is None else use_cuda
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    quiet_other_ranks()
    return current()


def quiet_other_ranks() -> None:
    """Rank-0-only logging: other ranks keep errors only, and no progress bars."""
    if is_writer():
        return
    import sys

    os.environ["TQDM_DISABLE"] = "1"
    from functools import partialmethod

    from tqdm import tqdm

    tqdm.__init__ = partialmethod(tqdm.__init__, disable=True)
    logger.remove()
    logger.add(sys.stderr, level="ERROR")


def rank_zero_first(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0, then on the others (e.g. creating the run folder)."""
    shard = current()
    if shard.enabled and shard.rank != 0:
        dist.barrier()
    out = fn()
    if shard.enabled and shard.rank == 0:
        dist.barrier()
    return out


def broadcast_object(obj: T) -> T:
    """Rank 0's ``obj`` on every rank."""
    if not current().enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_object(obj: T) -> List[T]:
    """``obj`` of every rank, in rank order."""
    shard = current()
    if not shard.enabled:
        return [obj]
    out: List = [None] * shard.world_size
    dist.all_gather_object(out, obj)
    return out


@dataclass(frozen=True)
class LocalLoss:
    """A rank's share of a global batch: ``scaled`` back-propagates, ``value`` is the loss of
    the whole global batch (what a 1-process run logs)."""

    scaled: torch.Tensor
    value: float


class DataParallel:
    """Sharding, loss weighting, gradient all-reduce and gathering for one run; in a single
    process every method is the identity (the 1-process path is unchanged)."""

    def __init__(self, shard: Optional[Shard] = None):
        self.shard = shard or current()
        self.losses: List[float] = []   # global loss of every training batch, in order (the loss curve)
        self.padding_batches = 0        # batches this rank ran with weight 0 (no rows of its own)

    @property
    def enabled(self) -> bool:
        return self.shard.enabled

    def _device(self, tensor_device: torch.device) -> torch.device:
        """Where collectives run: CUDA for NCCL, CPU for gloo."""
        return tensor_device if dist.get_backend() == "nccl" else torch.device("cpu")

    # -- setup ---------------------------------------------------------------------------------
    def broadcast_parameters(self, model: torch.nn.Module) -> None:
        """Rank 0's trainable weights (and dense buffers) on every rank, as DDP does at
        construction (sparse buffers, the graphs, are built from the same files everywhere)."""
        if not self.enabled:
            return
        tensors = [p for p in model.parameters() if p.requires_grad] + list(model.buffers())
        with torch.no_grad():
            for tensor in (t for t in tensors if t.layout == torch.strided):
                moved = tensor.data.to(self._device(tensor.device))
                dist.broadcast(moved, src=0)
                tensor.data.copy_(moved)

    # -- training ------------------------------------------------------------------------------
    def shard_rows(self, rows: Sequence[T]) -> Tuple[List[T], bool]:
        """This rank's rows ``rank::world`` of a global batch; when it has none (a last batch
        smaller than the world), the batch's first row, flagged as padding (weight 0)."""
        if not self.enabled:
            return list(rows), False
        mine = list(rows[self.shard.rank::self.shard.world_size])
        return (mine, False) if mine else (list(rows[:1]), True)

    def local_loss(self, loss: torch.Tensor, batch: dict, stage: str) -> LocalLoss:
        """Weight this rank's mean loss by its share of the global batch (rows, or label tokens
        for conv), so that the summed gradients are those of the global batch's mean loss."""
        if not self.enabled:
            value = float(loss.detach())
            self.losses.append(value)
            return LocalLoss(loss, value)
        if batch.get(PADDING_KEY):
            count = 0.0
            self.padding_batches += 1
        elif stage == "conv":
            count = float((batch["labels"][:, 1:] != -100).sum())
        else:
            count = float(batch["input_ids"].shape[0])
        stats = torch.tensor([count, count * float(loss.detach())], dtype=torch.float64,
                             device=self._device(loss.device))
        dist.all_reduce(stats)
        total, loss_sum = float(stats[0]), float(stats[1])
        value = loss_sum / max(total, 1.0)
        self.losses.append(value)
        return LocalLoss(loss * (count / max(total, 1.0)), value)

    def sync_gradients(self, model: torch.nn.Module) -> None:
        """Sum the gradients of the trainable parameters across ranks (one flat all-reduce per
        dtype). A parameter without a gradient on every rank keeps none, as in one process."""
        if not self.enabled:
            return
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            return
        if any(p.grad is not None and p.grad.is_sparse for p in params):
            raise NotImplementedError("sparse gradients are not supported under torchrun")
        device = self._device(params[0].device)
        has_grad = torch.tensor([float(p.grad is not None) for p in params], dtype=torch.float32, device=device)
        dist.all_reduce(has_grad)
        by_dtype = {}
        for p, flag in zip(params, has_grad.tolist()):
            if flag > 0:
                by_dtype.setdefault(p.dtype, []).append(p)
        for dtype, group in by_dtype.items():
            flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).to(device)
                              for p in group])
            dist.all_reduce(flat)
            offset = 0
            for p in group:
                n = p.numel()
                grad = flat[offset:offset + n].view_as(p).to(p.device, dtype)
                offset += n
                if p.grad is None:
                    p.grad = grad.clone()
                else:
                    p.grad.copy_(grad)

    # -- evaluation ----------------------------------------------------------------------------
    def map_batches(self, batches: Iterable[T], fn: Callable[[T], R]) -> Iterator[R]:
        """``fn`` of every batch, in order; under torchrun rank ``r`` computes batches
        ``k % world == r`` and the results are gathered (every rank gets all of them).
        ``batches`` should build lazily: skipped ones are still drawn from the iterator."""
        if not self.enabled:
            for batch in batches:
                yield fn(batch)
            return
        rank, world = self.shard.rank, self.shard.world_size
        mine = [(k, fn(batch)) for k, batch in enumerate(batches) if k % world == rank]
        gathered = sorted((pair for part in all_gather_object(mine) for pair in part), key=lambda pair: pair[0])
        for _, result in gathered:
            yield result

    def rounds(self, items: Sequence[T]) -> Iterator[List[T]]:
        """``items`` in groups of ``world`` (one per rank): for passes that journal each group."""
        step = self.shard.world_size
        for start in range(0, len(items), step):
            yield list(items[start:start + step])


PADDING_KEY = "shard_padding"
"""Batch key set (True) on a rank's padding batch: it runs, with weight 0."""


class JournalView:
    """What non-zero ranks see of rank 0's generation journal: its contents, no writes."""

    def __init__(self, nll, replies: List[dict], path):
        self.nll, self.replies, self.path = nll, replies, path

    @property
    def n_done(self) -> int:
        return len(self.replies)

    def append(self, replies: List[dict]) -> None:
        self.replies.extend(replies)

    def record_nll(self, nll: float, tokens: int) -> None:
        self.nll = (nll, tokens)

    def remove(self) -> None:
        pass


def shared_journal(make: Callable[[], T]) -> T:
    """Rank 0 opens the journal (``make``); the other ranks get a :class:`JournalView` of it."""
    if not current().enabled:
        return make()
    journal = make() if is_writer() else None
    state = broadcast_object((journal.nll, list(journal.replies), journal.path) if journal is not None else None)
    return journal if journal is not None else JournalView(state[0], list(state[1]), state[2])


def shutdown() -> None:
    """Leave the process group (end of a torchrun run); rank stays readable via env vars."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
