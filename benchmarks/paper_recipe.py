"""The paper's recipe as one command: pre-training, recommendation, conversation and test
generation with the configs' defaults (the authors' epochs, learning rates, warm-ups and batch
sizes: pre-training 5 epochs, rec 5 on ReDial / 20 on INSPIRED, conversation 10), with an
up-front estimate of its wall time and peak memory on this hardware.

    python benchmarks/paper_recipe.py --model mscrs --dataset redial --variant offline --estimate
    python benchmarks/paper_recipe.py --model unicrs --dataset inspired --variant offline     # run it
    python benchmarks/paper_recipe.py --model mscrs --dataset redial --nproc-per-node 4        # 4 GPUs

``--estimate`` builds the system of the config (dataset, frozen models, graphs), times
``--steps`` batches of every step type (training steps of each stage with their optimizer
step, validation / test batches, test generation batches), counts the batches the recipe
runs (train and valid every epoch, test once per stage) and prints the whole run's expected
wall time and the peak memory of the estimate (same models and batch sizes; host RSS, and GPU
memory on CUDA). Step times are per process: under ``--nproc-per-node N`` the estimate
assumes N times the throughput (an upper bound: communication is not timed). Without
``--estimate`` it launches the recipe through the benchmark harness
(``run_benchmark.py --resume``), so a killed recipe resumes from its checkpoint when run
again and its output feeds the benchmark table like any other run.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # this checkout's crslab_mscrs, also when another one is installed
STEP_TYPES = ("pretrain", "pretrain_eval", "rec", "rec_eval", "conv", "conv_eval", "generation")


@dataclass(frozen=True)
class StepTiming:
    """Measured seconds of one batch of a step type (mean of the timed batches after the first
    when more than one was timed)."""

    kind: str
    rows: int
    seconds: float
    n_timed: int
    cpu_seconds: float = 0.0   # process CPU time (all threads): less sensitive to a shared machine


@dataclass(frozen=True)
class StepCount:
    """How many batches of a step type the recipe runs, and why."""

    kind: str
    batches: int
    where: str


@dataclass(frozen=True)
class Estimate:
    config: str
    timings: Dict[str, StepTiming]
    counts: List[StepCount]
    world_size: int
    peak_host_mb: float
    peak_gpu_mb: Optional[float]
    device: str

    @property
    def total_seconds(self) -> float:
        return sum(c.batches * self.timings[c.kind].seconds for c in self.counts) / self.world_size

    @property
    def total_cpu_seconds(self) -> float:
        return sum(c.batches * self.timings[c.kind].cpu_seconds for c in self.counts)

    def report(self) -> str:
        lines = [f"paper recipe {self.config} on {self.device}"
                 + (f", {self.world_size} processes (step times / {self.world_size})" if self.world_size > 1 else "")]
        lines.append(f"{'step type':<14} {'rows':>5} {'s/batch':>9} {'cpu s':>9} {'timed':>5}")
        for kind, t in self.timings.items():
            lines.append(f"{kind:<14} {t.rows:>5} {t.seconds:>9.3f} {t.cpu_seconds:>9.3f} {t.n_timed:>5}")
        lines.append(f"{'batches':>8}  {'step type':<14} {'hours':>8}  where")
        for c in self.counts:
            hours = c.batches * self.timings[c.kind].seconds / self.world_size / 3600
            lines.append(f"{c.batches:>8}  {c.kind:<14} {hours:>8.2f}  {c.where}")
        lines.append(f"expected wall time: {self.total_seconds / 3600:.1f} h ({self.total_seconds:.0f} s), "
                     "training and evaluation steps only (start-up, tokenisation and checkpoints not counted)")
        lines.append(f"CPU time of those steps: {self.total_cpu_seconds / 3600:.1f} h (all processes together)")
        lines.append(f"peak memory (of this estimate, same models and batch sizes): host RSS {self.peak_host_mb:.0f} MB"
                     + (f", GPU {self.peak_gpu_mb:.0f} MB" if self.peak_gpu_mb is not None else ""))
        return "\n".join(lines)


def harness():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run_benchmark

    return run_benchmark


def timed(kind: str, batches: Iterator[dict], step: Callable[[dict], None], steps: int, sync) -> StepTiming:
    """Run ``step`` on ``steps`` batches (built before the clock starts)."""
    seconds, cpu, rows = [], [], 0
    for _ in range(steps):
        batch = next(batches, None)
        if batch is None:
            break
        rows = max(rows, int(batch["input_ids"].shape[0]))
        started, cpu_started = time.perf_counter(), time.process_time()
        step(batch)
        sync()
        seconds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    if not seconds:
        return StepTiming(kind, 0, 0.0, 0)
    first = 1 if len(seconds) > 1 else 0  # the first batch pays lazy set-up
    return StepTiming(kind, rows, sum(seconds[first:]) / (len(seconds) - first), len(seconds),
                      sum(cpu[first:]) / (len(cpu) - first))


def measure(system, steps: int) -> Dict[str, StepTiming]:
    """Seconds per batch of every step type, on the system's own loaders and settings."""
    import torch

    from crslab_mscrs.training.optim import build_optimizer
    from crslab_mscrs.training.settings import GenerationSettings, StageSettings

    cuda = system.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    train, valid, test = system.train_dataloader, system.valid_dataloader, system.test_dataloader
    loop, out = system.loop, {}
    for stage in ("pretrain", "rec", "conv"):
        settings = StageSettings.from_opt(system.opt, stage)
        loop.grad_accum, loop.gradient_clip = settings.gradient_accumulation_steps, settings.gradient_clip
        loop.optimizer, loop.scheduler = build_optimizer(system.model, settings, 10 ** 6)
        if stage == "conv":
            system.demonstrations.attach(system.loaders())
        system.model.train()
        getter = {"pretrain": train.get_pretrain_data, "rec": train.get_rec_data, "conv": train.get_conv_data}[stage]

        def train_step(batch, stage=stage):
            system.step(batch, stage, "train")
            loop.optimizer_step()  # every batch: the recipe's accumulation is 1

        out[stage] = timed(stage, iter(getter(settings.batch_size, shuffle=True)), train_step, steps, sync)
        system.model.eval()
        evaluation = {"pretrain": valid.get_pretrain_eval_data, "rec": valid.get_rec_eval_data,
                      "conv": lambda bs: valid.get_conv_data(bs, shuffle=False)}[stage]
        with torch.no_grad():
            out[f"{stage}_eval"] = timed(f"{stage}_eval", iter(evaluation(settings.eval_batch_size)),
                                         lambda batch, stage=stage: system.step(batch, stage, "valid"), steps, sync)
    conv = StageSettings.from_opt(system.opt, "conv")
    kwargs = GenerationSettings.from_opt(system.opt).as_kwargs()
    rows = test.generation_rows()
    batches = (test.generation_batchify(rows[s:s + conv.eval_batch_size])
               for s in range(0, len(rows), conv.eval_batch_size))

    def generate(batch):
        with torch.no_grad(), system.autocast():
            system.core.generate(system.to_device(batch), **kwargs)
        with torch.no_grad():  # slot filling ranks the reply's items: counted for every reply (upper bound)
            system.evaluation.top_items(batch, 10)

    out["generation"] = timed("generation", iter(batches), generate, steps, sync)
    return out


def count_batches(system) -> List[StepCount]:
    """Batches of each step type in the whole recipe (the config's epochs and batch sizes)."""
    from crslab_mscrs.training.settings import StageSettings

    train, valid, test = system.train_dataloader, system.valid_dataloader, system.test_dataloader
    counts = []
    eval_task = {"pretrain": "pretrain", "rec": "rec_eval", "conv": "conv"}
    for stage in system.settings.stages:
        s = StageSettings.from_opt(system.opt, stage)
        n_train = train.num_batches(stage, s.batch_size)
        if s.max_batches_per_epoch:
            n_train = min(n_train, s.max_batches_per_epoch)
        counts.append(StepCount(stage, n_train * s.epochs, f"{stage}: {s.epochs} epochs x {n_train} batches of "
                                                           f"{s.batch_size}"))
        if s.validate:
            n_valid = valid.num_batches(eval_task[stage], s.eval_batch_size)
            counts.append(StepCount(f"{stage}_eval", n_valid * s.epochs,
                                    f"{stage} valid: {s.epochs} x {n_valid} batches of {s.eval_batch_size}"))
        if stage == "rec":
            n_test = test.num_batches("rec_eval", s.eval_batch_size)
            counts.append(StepCount("rec_eval", n_test, f"rec test: {n_test} batches"))
        if stage == "conv":
            n_test = test.num_batches("conv", s.eval_batch_size)
            counts.append(StepCount("conv_eval", n_test, f"conv test (teacher forcing): {n_test} batches"))
            counts.append(StepCount("generation", n_test, f"test generation + slot ranking: {n_test} batches"))
    return counts


@contextmanager
def built_system(config: Path, data_root: Optional[str], gpu: str, overrides: List[str]):
    """The recipe's system (dataset, loaders, frozen models, graphs) in a throwaway run folder."""
    from crslab_mscrs.cli import build_system
    from crslab_mscrs.config import load_config
    from crslab_mscrs.training.checkpoint import seed_everything

    opt = load_config(str(config), overrides)
    seed_everything(int(opt["seed"]))
    with tempfile.TemporaryDirectory() as save_dir:  # leaves no run folder
        system, _ = build_system(opt, data_root, save_dir, gpu)
        yield system


def estimate(config: Path, data_root: Optional[str], gpu: str, steps: int, world_size: int,
             overrides: List[str]) -> Estimate:
    import torch

    with built_system(config, data_root, gpu, overrides) as system:
        timings = measure(system, steps)
        counts = count_batches(system)
        device = str(system.device)
    peak_gpu = torch.cuda.max_memory_allocated() / 2 ** 20 if torch.cuda.is_available() and gpu != "-1" else None
    peak_host = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return Estimate(str(config.relative_to(REPO_ROOT) if config.is_relative_to(REPO_ROOT) else config),
                    timings, counts, world_size, peak_host, peak_gpu, device)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=("mscrs", "unicrs"), required=True)
    p.add_argument("--dataset", choices=("redial", "inspired"), required=True)
    p.add_argument("--variant", default=None, help="config variant, e.g. offline (<dataset>_<variant>.yaml)")
    p.add_argument("--estimate", action="store_true", help="time each step type and print the plan; run nothing")
    p.add_argument("--counts", action="store_true",
                   help="print the batches of every step type the recipe runs (no timing; to multiply by "
                        "per-step times measured elsewhere, e.g. on a GPU)")
    p.add_argument("--steps", type=int, default=2, help="timed batches per step type (--estimate)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--gpu", default="auto", help="run_crslab.py -g (auto: GPU 0 when CUDA is available)")
    p.add_argument("--nproc-per-node", type=int, default=None, help="torchrun processes (one per GPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/paper_recipe", help="benchmark output folder (the run)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    bench = harness()
    config = bench.model_config_path(Path("config"), args.model, args.dataset, False, args.variant)
    if config is None:
        raise SystemExit(f"error: no config for {args.model} on {args.dataset} (variant {args.variant})")
    if args.counts:
        from crslab_mscrs.cli import quiet_when_not_a_terminal, resolve_gpu

        quiet_when_not_a_terminal()
        with built_system(config, args.data_root, resolve_gpu(args.gpu), args.overrides) as system:
            for count in count_batches(system):
                print(f"{count.batches:>8}  {count.kind:<14} {count.where}")
        return 0
    if args.estimate:
        from crslab_mscrs.cli import quiet_when_not_a_terminal, resolve_gpu

        quiet_when_not_a_terminal()
        result = estimate(config, args.data_root, resolve_gpu(args.gpu), args.steps, args.nproc_per_node or 1,
                          args.overrides)
        print(result.report())
        return 0
    cmd = [sys.executable, str(REPO_ROOT / "benchmarks" / "run_benchmark.py"), "--models", args.model,
           "--datasets", args.dataset, "--seeds", str(args.seed), "--resume", "--out", args.out]
    if args.variant:
        cmd += ["--config-variant", args.variant]
    if args.data_root:
        cmd += ["--data-root", args.data_root]
    if args.gpu != "auto":
        cmd += ["--gpu", args.gpu]
    if args.nproc_per_node:
        cmd += ["--nproc-per-node", str(args.nproc_per_node)]
    for override in args.overrides:
        cmd += ["--set", override]
    print(" ".join(cmd), flush=True)
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
