"""torchrun-style data parallelism (``crslab_mscrs.training.distributed``): a 2-process gloo
run on the toy data with tiny random models equals a 1-process run with the same global batch.

Tolerance: the two runs do the same arithmetic except that (a) each rank pads its half of a
batch to its own longest row and (b) the global mean loss and gradient are sums in another
order (rank shares, then an all-reduce). Both change float32 results by rounding only
(~1e-7 relative per op): the largest relative difference of the loss curves measured here is
2.2e-7. So the loss curves and test metrics must agree to 1e-5 (relative, 45x that), and the
rankings and replies, computed from weights that agree to that level, must be identical."""
import json
import os
import socket
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import crslab_mscrs  # noqa: F401  (compat + registration)
from crslab_mscrs import paths
from crslab_mscrs.batches.dataloader import MSCRSDataLoader
from crslab_mscrs.training import distributed
from crslab_mscrs.training.system import MSCRSSystem
from crslab_mscrs.training.toy import toy_splits, toy_vocab_and_side_data, write_toy_graphs

LOSS_RTOL = 1e-5


class Opt(dict):
    """CRSLab's ``Config`` as the system reads it: ``[]`` gives None for a missing key."""

    def __getitem__(self, key):
        return self.get(key)

    @property
    def opt(self):
        return self


def section(epochs, batch_size=5):
    return {"epoch": epochs, "batch_size": batch_size, "eval_batch_size": 3,
            "optimizer": {"name": "AdamW", "lr": 3e-3, "weight_decay": 0.01}, "warmup_steps": 1}


class SimulatedKill(Exception):
    pass


def run_toy(root: str, run_name: str, stages=("pretrain", "rec", "conv"), kill_after=None, resume=False,
            **overrides) -> dict:
    """Train the toy system in this process (one rank of a job, or the only process);
    ``kill_after=(stage, epoch)`` stops it once that epoch's checkpoint is saved."""
    torch.set_num_threads(1)
    # every process reads the same (empty) data root: the default ./data, or one an earlier test of
    # this process pointed CRSLab at, may hold a ReDial item_names.json that changes the masking
    previous_root = paths.data_root()
    paths.set_data_root(os.path.join(root, "data"))
    try:
        return _run_toy(root, run_name, stages, kill_after, resume, **overrides)
    finally:
        paths.set_data_root(previous_root)


def _run_toy(root, run_name, stages, kill_after, resume, **overrides) -> dict:
    vocab, side = toy_vocab_and_side_data()
    splits = toy_splits(n_train=6, n_valid=2, n_test=2)
    features = os.path.join(root, "features")
    if distributed.is_writer() and not os.path.isdir(features):  # rank 0 writes, the others wait
        write_toy_graphs(features)
    distributed.barrier()
    opt = Opt(dataset="ReDial", tokenize="nltk", model="MSCRS", model_name="MSCRS", gpu=[-1], evaluator="rec",
              seed=0, lm="tiny-random-gpt2", text_encoder="tiny-random-bert", features_dir=str(features),
              save_dir=os.path.join(root, "save"), run_name=run_name, n_prefix_rec=2, n_prefix_conv=2,
              max_new_tokens=4, stages=list(stages), pretrain=section(1), rec=section(2, batch_size=11),
              conv=section(1))
    opt.update(overrides)
    loaders = [MSCRSDataLoader(opt, splits[name], vocab) for name in ("train", "valid", "test")]
    system = MSCRSSystem(opt, *loaders, vocab, side, restore_system=resume)
    if kill_after is not None:
        def kill(stage, epoch):
            if (stage, epoch) == kill_after:
                raise SimulatedKill
        system.loop.on_epoch_saved = kill
    system.fit()
    return {"losses": system.data_parallel.losses, "run_dir": str(system.run_dir),
            "padding_batches": system.data_parallel.padding_batches}


def worker(rank: int, world: int, port: int, root: str, run_name: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        result = run_toy(root, run_name)
        try:  # the same job killed after the first rec epoch, then resumed
            run_toy(root, run_name + "_resumed", kill_after=("rec", 0))
        except SimulatedKill:
            result["resumed"] = run_toy(root, run_name + "_resumed", resume=True)
        with open(f"{out}.{rank}.json", "w") as handle:
            json.dump(result, handle)
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    single = run_toy(str(root), "one_process")
    out = str(root / "ddp_result")
    mp.spawn(worker, args=(2, free_port(), str(root), "two_processes", out), nprocs=2, join=True)
    ranks = [json.loads(open(f"{out}.{r}.json").read()) for r in range(2)]
    return SimpleNamespace(single=single, ranks=ranks)


def read(run: dict, name: str) -> str:
    return open(os.path.join(run["run_dir"], name)).read()


def test_two_processes_follow_the_loss_curve_of_one(runs):
    single, (rank0, rank1) = runs.single["losses"], runs.ranks
    assert len(single) == 3 + 2 * 2 + 3  # pre-training and conv 12 rows in 5s, 2 rec epochs in 11s
    assert rank0["losses"] == rank1["losses"]  # every rank logs the global batch's loss
    # 12 rec rows in batches of 11: the last global batch has 1 row, rank 1 runs it with weight 0
    assert (rank0["padding_batches"], rank1["padding_batches"]) == (0, 2)
    assert rank0["losses"] == pytest.approx(single, rel=LOSS_RTOL)


def test_two_processes_write_the_files_of_one(runs):
    single, rank0 = runs.single, runs.ranks[0]
    assert read(rank0, "rankings.jsonl") == read(single, "rankings.jsonl")
    assert read(rank0, "test_replies.jsonl") == read(single, "test_replies.jsonl")
    one = json.loads(read(single, "metrics.json"))["stages"]
    two = json.loads(read(rank0, "metrics.json"))["stages"]
    for stage in ("rec", "conv"):
        assert two[stage]["chosen_epoch"] == one[stage]["chosen_epoch"]
    assert two["rec"]["test"] == pytest.approx(one["rec"]["test"], rel=LOSS_RTOL)
    for key in ("loss", "ppl", "n_tokens"):
        assert two["conv"]["test"][key] == pytest.approx(one["conv"]["test"][key], rel=LOSS_RTOL)
    generation_one, generation_two = one["conv"]["test"]["generation"], two["conv"]["test"]["generation"]
    assert generation_two.pop("ppl") == pytest.approx(generation_one.pop("ppl"), rel=LOSS_RTOL)
    assert generation_two == generation_one  # computed from the same replies


def test_a_killed_two_process_run_resumes_to_the_same_result(runs):
    uninterrupted = runs.ranks[0]
    resumed = uninterrupted["resumed"]
    n_after = len(resumed["losses"])  # the batches trained after the resume: rec epoch 1 and conv
    assert 0 < n_after < len(uninterrupted["losses"])
    assert resumed["losses"] == uninterrupted["losses"][-n_after:]
    for name in ("rankings.jsonl", "test_replies.jsonl"):
        assert read(resumed, name) == read(uninterrupted, name)


def test_rows_of_a_global_batch_are_split_between_ranks():
    parallel = distributed.DataParallel(distributed.Shard(rank=1, world_size=2))
    assert parallel.shard_rows([10, 11, 12, 13, 14]) == ([11, 13], False)
    assert parallel.shard_rows([10]) == ([10], True)  # nothing left for rank 1: padding, weight 0
    assert distributed.DataParallel(distributed.Shard()).shard_rows([10]) == ([10], False)
