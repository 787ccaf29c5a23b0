"""Gather model runs from several benchmark folders into one, for ``run_benchmark.py --no-run``.

    python benchmarks/collect_runs.py --out results/current results/redial_rec_mscrs results/gpu_h200
    python benchmarks/run_benchmark.py --models mscrs --datasets redial --seeds 0,1,2 \
        --out results/current --no-run

Runs made by separate invocations (one seed at a time, another machine, a GPU lease) live
under ``<folder>/runs/<model>/<dataset>/seed<S>/``. This copies each complete run (one with
``rankings.jsonl`` and ``metrics.json``) to the same place under ``--out``:

- a run already there with the same ``rankings.jsonl`` and ``metrics.json`` is left alone;
- a different run already there, or two sources holding different runs for the same
  place, is an error naming both folders (nothing is copied), unless ``--replace`` lets
  the later source win;
- an incomplete run (a failed or killed one: an output missing, or a non-zero exit code in
  its ``run_stats.json``) is listed and skipped;
- model checkpoints are never copied (``*.pt``, ``*.pth``, ``*.bin``, ``*.safetensors``).

Afterwards, for each model and dataset it compares the seeds' recipes (config and
``--set`` overrides, hardware from ``run_stats.json``) and warns where they differ: a
mean over seeds trained differently is not a seed spread.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from crslab_mscrs.evaluation.run_stats import RUN_STATS_FILE, command_overrides, read_run_stats  # noqa: E402

REQUIRED_FILES = ("rankings.jsonl", "metrics.json")
CHECKPOINT_PATTERNS = ("*.pt", "*.pth", "*.bin", "*.safetensors")


class CollectError(RuntimeError):
    """Conflicting runs or a bad source folder; nothing has been copied."""


@dataclass(frozen=True)
class RunFolder:
    """One run under ``<root>/runs/<model>/<dataset>/seed<S>/``."""
    root: Path
    model: str
    dataset: str
    seed: str

    @property
    def path(self) -> Path:
        return self.root / "runs" / self.model / self.dataset / f"seed{self.seed}"

    @property
    def key(self) -> Tuple[str, str, str]:
        return self.model, self.dataset, self.seed

    def missing(self) -> List[str]:
        """Why the run is not complete (empty if it is): a missing output, or a non-zero exit
        code in ``run_stats.json`` (MSCRS/UniCRS write both outputs after each stage, so a run
        killed in its last stage leaves them)."""
        reasons = [f"no {name}" for name in REQUIRED_FILES if not (self.path / name).is_file()]
        if self.stats is not None and self.stats.get("exit_code") != 0:
            reasons.append(f"exit code {self.stats.get('exit_code')} in run_stats.json")
        return reasons

    @cached_property
    def stats(self) -> Optional[dict]:
        """The harness's ``run_stats.json`` (None if absent), read once."""
        try:
            return read_run_stats(self.path / RUN_STATS_FILE)
        except ValueError as error:
            raise CollectError(str(error)) from error

    def is_complete(self) -> bool:
        return not self.missing()

    @cached_property
    def fingerprint(self) -> Tuple[str, ...]:
        """SHA-256 of the files the harness scores (read once per folder): equal, the same run."""
        return tuple(hashlib.sha256((self.path / name).read_bytes()).hexdigest() for name in REQUIRED_FILES)

    def recipe(self) -> Dict[str, object]:
        """Config, ``--set`` overrides and hardware recorded by the harness (empty if absent)."""
        if self.stats is None:
            return {}
        overrides = sorted(command_overrides(self.stats.get("command") or []))
        return {"config": self.stats.get("config"), "overrides": overrides, "hardware": self.stats.get("hardware")}


def find_runs(root: Path) -> List[RunFolder]:
    """Every ``runs/<model>/<dataset>/seed<S>`` folder under ``root`` (complete or not)."""
    runs_dir = root / "runs"
    if not runs_dir.is_dir():
        raise CollectError(f"{root}: no runs/ folder (expected runs/<model>/<dataset>/seed<S>/)")
    found = []
    for seed_dir in sorted(runs_dir.glob("*/*/seed*")):
        seed = seed_dir.name[len("seed"):]
        if seed_dir.is_dir() and seed:
            found.append(RunFolder(root, seed_dir.parent.parent.name, seed_dir.parent.name, seed))
    return found


def plan_copies(sources: Sequence[Path], out: Path, replace: bool
                ) -> Tuple[List[RunFolder], List[str], List[RunFolder]]:
    """(runs to copy, messages about runs left alone or skipped, the complete runs --out will hold).

    In the last list a run about to be copied is named by its source (same files).
    Raises CollectError on a conflict unless ``replace``.
    """
    chosen: Dict[Tuple[str, str, str], RunFolder] = {}
    messages: List[str] = []
    for source in sources:
        for run in find_runs(source):
            missing = run.missing()
            if missing:
                messages.append(f"skipped {run.path}: incomplete run ({', '.join(missing)})")
                continue
            earlier = chosen.get(run.key)
            if earlier is not None and earlier.fingerprint != run.fingerprint and not replace:
                raise CollectError(f"two different runs for {'/'.join(run.key)}: {earlier.path} and {run.path} "
                                   "(pass --replace to keep the later one)")
            if earlier is None or earlier.fingerprint != run.fingerprint:
                chosen[run.key] = run
    final = {run.key: run for run in (find_runs(out) if (out / "runs").is_dir() else []) if run.is_complete()}
    to_copy: List[RunFolder] = []
    for key, run in sorted(chosen.items()):
        existing = RunFolder(out, *key)
        if existing.path.resolve() == run.path.resolve():
            continue
        if existing.is_complete():
            if existing.fingerprint == run.fingerprint:
                messages.append(f"already there: {existing.path}")
                continue
            if not replace:
                raise CollectError(f"{existing.path} holds a different run than {run.path} "
                                   "(pass --replace to overwrite it)")
        elif existing.path.exists() and any(existing.path.iterdir()) and not replace:
            raise CollectError(f"{existing.path} exists and holds an incomplete run; remove it or pass --replace")
        to_copy.append(run)
        final[key] = run
    return to_copy, messages, [final[key] for key in sorted(final)]


def copy_run(run: RunFolder, out: Path) -> Path:
    target = RunFolder(out, *run.key).path
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(run.path, target, ignore=shutil.ignore_patterns(*CHECKPOINT_PATTERNS))
    return target


def recipe_warnings(runs: Sequence[RunFolder]) -> List[str]:
    """One warning per model and dataset whose seeds were not run with one recipe."""
    groups: Dict[Tuple[str, str], List[RunFolder]] = defaultdict(list)
    for run in runs:
        groups[(run.model, run.dataset)].append(run)
    warnings = []
    for (model, dataset), group in sorted(groups.items()):
        recipes = {run.seed: run.recipe() for run in sorted(group, key=lambda r: r.seed)}
        for field in ("config", "overrides", "hardware"):
            values = {seed: recipe.get(field) for seed, recipe in recipes.items() if recipe}
            if len({json.dumps(v, sort_keys=True) for v in values.values()}) > 1:
                shown = "; ".join(f"seed {seed}: {_short(value)}" for seed, value in values.items())
                warnings.append(f"{model}/{dataset}: seeds differ in {field}: {shown}")
        unrecorded = [seed for seed, recipe in recipes.items() if not recipe]
        if unrecorded and len(unrecorded) < len(recipes):
            warnings.append(f"{model}/{dataset}: no run_stats.json for seed(s) {', '.join(unrecorded)}: "
                            "their recipe cannot be compared")
    return warnings


def _short(value: object) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value) or "(none)"
    return str(value)


def collect(sources: Sequence[Path], out: Path, replace: bool = False, dry_run: bool = False) -> List[str]:
    """Copy the runs of ``sources`` under ``out``; returns the report lines."""
    to_copy, messages, final = plan_copies(sources, out, replace)
    lines = list(messages)
    for run in to_copy:
        if dry_run:
            lines.append(f"would copy {run.path} -> {RunFolder(out, *run.key).path}")
        else:
            lines.append(f"copied {run.path} -> {copy_run(run, out)}")
    lines += [f"warning: {warning}" for warning in recipe_warnings(final)]
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="+", type=Path,
                   help="benchmark folders holding runs/<model>/<dataset>/seed<S>/ (later ones win with --replace)")
    p.add_argument("--out", type=Path, required=True, help="folder to gather the runs in (created if absent)")
    p.add_argument("--replace", action="store_true",
                   help="overwrite a different run already at the same model/dataset/seed")
    p.add_argument("--dry-run", action="store_true", help="print what would be copied; copy nothing")
    args = p.parse_args(argv)
    try:
        lines = collect(args.sources, args.out, replace=args.replace, dry_run=args.dry_run)
    except CollectError as error:
        print(f"collect_runs: {error}", file=sys.stderr)
        return 2
    print("\n".join(lines) if lines else "nothing to do")
    return 0


if __name__ == "__main__":
    sys.exit(main())
