"""Is a difference between two recommenders real? Paired tests on per-turn metrics.

Two models ranked the same test turns; for each turn and metric (``recall@10``, ``recall@50``,
``ndcg@10`` of :mod:`crslab_mscrs.evaluation.ranking`) take the difference ``d_i = a_i - b_i``,
each model's value first averaged over its seeds for that turn. Then

- a paired bootstrap (Efron & Tibshirani, 1993; Koehn, 2004 for paired resampling of test
  items): resample the turns with replacement, the 2.5 / 97.5 percentiles of the resampled
  mean difference give the 95 % confidence interval;
- a paired permutation (sign-flip) test (Fisher; Smucker, Allan & Carterette, CIKM 2007, for
  IR metrics): under "no difference" each ``d_i`` is as likely ``-d_i``; two-sided p-value
  ``(1 + #{|mean of flipped d| >= |mean d|}) / (1 + n_permutations)``.

Verdict at 95 %: ``better`` (a > b) or ``worse`` when p < 0.05 AND the interval excludes 0;
``no difference`` otherwise. Both tests use a fixed seed, so a table is reproducible.

:func:`folder_significance` reads a benchmark folder (``runs/<model>/<dataset>/[seed<S>/]
rankings.jsonl``, :mod:`crslab_mscrs.evaluation.rankings`) and :func:`significance_markdown`
renders its verdicts; ``benchmarks/run_benchmark.py`` writes them to ``significance.md``
beside ``results.md`` and ``benchmarks/update_readme.py`` puts them into the tables.

    python -m crslab_mscrs.evaluation.significance results/current --data-root data
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from crslab_mscrs.evaluation.instances import RecInstance, build_instances, load_entity2id, load_item_ids, load_split
from crslab_mscrs.evaluation.ranking import mrr_at_k, ndcg_at_k, recall_at_k
from crslab_mscrs.evaluation.rankings import TurnKey, read_rankings

SIGNIFICANCE_METRICS = ("recall@10", "recall@50", "ndcg@10")
SIGNIFICANCE_FILE = "significance.md"
SIGNIFICANCE_JSON = "significance.json"
BETTER, WORSE, NO_DIFFERENCE = "better", "worse", "no difference"
_PER_TURN = {"recall": recall_at_k, "ndcg": ndcg_at_k, "mrr": mrr_at_k}


@dataclass(frozen=True)
class PairedComparison:
    """Model a vs model b on one metric over the same ``n`` turns (difference = a - b)."""
    metric: str
    n: int
    mean_a: float
    mean_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    verdict: str          # "better" | "worse" | "no difference" (a relative to b, at 1 - alpha)
    alpha: float = 0.05


def per_turn_values(instances: Sequence[RecInstance], rankings: Mapping[TurnKey, Sequence[int]],
                    metric: str) -> Dict[TurnKey, float]:
    """``{turn: metric}``; a turn with several instances (protocol ``crslab``) gets their mean;
    a turn without a ranking scores as an empty ranking (0)."""
    name, k = metric.split("@")
    score = _PER_TURN[name]
    sums: Dict[TurnKey, List[float]] = {}
    for instance in instances:
        sums.setdefault(instance.key, []).append(score(rankings.get(instance.key, ()), instance.labels, int(k)))
    return {key: float(np.mean(values)) for key, values in sums.items()}


def seed_average(per_seed: Sequence[Mapping[TurnKey, float]]) -> Dict[TurnKey, float]:
    """Per turn, the mean over seeds (turns every seed has)."""
    if not per_seed:
        raise ValueError("no seeds to average")
    keys = set(per_seed[0]).intersection(*per_seed[1:])
    return {key: float(np.mean([values[key] for values in per_seed])) for key in keys}


def paired_comparison(a: Sequence[float], b: Sequence[float], metric: str = "", n_resamples: int = 2000,
                      seed: int = 0, alpha: float = 0.05, chunk: int = 250) -> PairedComparison:
    """Paired bootstrap CI and sign-flip permutation p-value of ``mean(a - b)`` (module docstring)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"need two equally long, non-empty 1-d samples (got {a.shape} and {b.shape})")
    diff = a - b
    n, observed = diff.size, float(diff.mean())
    rng = np.random.default_rng(seed)
    boot, extreme = [], 0
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        boot.append(diff[rng.integers(0, n, size=(size, n))].mean(axis=1))
        signs = rng.integers(0, 2, size=(size, n)) * 2 - 1
        extreme += int((np.abs((signs * diff).mean(axis=1)) >= abs(observed) - 1e-12).sum())
    boot = np.concatenate(boot)
    low, high = (float(x) for x in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
    p_value = (1 + extreme) / (1 + n_resamples)
    if observed == 0.0 or np.all(diff == 0):
        p_value = 1.0
    significant = p_value < alpha and (low > 0 or high < 0)
    verdict = (BETTER if observed > 0 else WORSE) if significant else NO_DIFFERENCE
    return PairedComparison(metric, n, float(a.mean()), float(b.mean()), observed, low, high, p_value, verdict, alpha)


def compare_models(instances: Sequence[RecInstance], runs_a: Sequence[Mapping[TurnKey, Sequence[int]]],
                   runs_b: Sequence[Mapping[TurnKey, Sequence[int]]],
                   metrics: Sequence[str] = SIGNIFICANCE_METRICS, **kwargs) -> List[PairedComparison]:
    """Model a (its seeds' rankings ``runs_a``) vs model b, one comparison per metric."""
    out = []
    for metric in metrics:
        a = seed_average([per_turn_values(instances, run, metric) for run in runs_a])
        b = seed_average([per_turn_values(instances, run, metric) for run in runs_b])
        keys = sorted(set(a) & set(b))
        out.append(paired_comparison([a[k] for k in keys], [b[k] for k in keys], metric, **kwargs))
    return out


# ----------------------------------------------------------------------------- benchmark folders
@dataclass(frozen=True)
class PairVerdicts:
    """Every metric's comparison of ``model_a`` vs ``model_b`` on one dataset and protocol."""
    dataset: str
    protocol: str
    model_a: str
    model_b: str
    seeds_a: int
    seeds_b: int
    comparisons: Tuple[PairedComparison, ...]


def model_rankings_files(results_dir: Path, dataset: str) -> Dict[str, List[Path]]:
    """``{model: [rankings.jsonl per seed]}`` under ``<results_dir>/runs/<model>/<dataset>/``
    (a baseline's file sits there directly, a model's under ``seed<S>/``)."""
    found: Dict[str, List[Path]] = {}
    for model_dir in sorted((Path(results_dir) / "runs").glob("*")):
        folder = model_dir / dataset
        files = [folder / "rankings.jsonl"] if (folder / "rankings.jsonl").is_file() else \
            sorted(folder.glob("seed*/rankings.jsonl"))
        if files:
            found[model_dir.name] = files
    return found


def default_pairs(models: Sequence[str]) -> List[Tuple[str, str]]:
    """Every pair (a, b) with a learned model first; baselines among themselves are skipped."""
    from crslab_mscrs.evaluation.baselines import BASELINES

    learned = [m for m in models if m not in BASELINES]
    baselines = [m for m in models if m in BASELINES]
    return [(a, b) for a in learned for b in baselines] + list(combinations(learned, 2))


def folder_significance(results_dir: Path, dataset_dirs: Mapping[str, Path], protocols: Sequence[str] = ("full",),
                        metrics: Sequence[str] = SIGNIFICANCE_METRICS, split: str = "test",
                        **kwargs) -> List[PairVerdicts]:
    """Verdicts of :func:`default_pairs` for each dataset (``{name: built dataset dir}``) and protocol."""
    verdicts = []
    for dataset, directory in dataset_dirs.items():
        files = model_rankings_files(results_dir, dataset)
        if len(files) < 2:
            continue
        conversations = load_split(directory, split)
        entity2id, item_ids = load_entity2id(directory), load_item_ids(directory)
        rankings = {model: [read_rankings(path, min_length=0) for path in paths] for model, paths in files.items()}
        for protocol in protocols:
            instances = build_instances(conversations, entity2id, item_ids, protocol)
            for a, b in default_pairs(list(files)):
                verdicts.append(PairVerdicts(dataset, protocol, a, b, len(rankings[a]), len(rankings[b]),
                                             tuple(compare_models(instances, rankings[a], rankings[b], metrics,
                                                                  **kwargs))))
    return verdicts


def significance_markdown(verdicts: Sequence[PairVerdicts], command: str = "") -> List[str]:
    """One table per dataset and protocol: a row per pair, a verdict cell per metric."""
    lines = ["# Significance", ""]
    if command:
        lines += [f"Generated by `{command}`.", ""]
    lines += ["Paired bootstrap 95 % CI of the per-turn difference (a - b, each model's seeds averaged per turn) "
              "and a sign-flip permutation p-value (`crslab_mscrs/evaluation/significance.py`); verdict `better` / "
              "`worse` when p < 0.05 and the CI excludes 0, else `no difference` at 95 %.", ""]
    groups: Dict[Tuple[str, str], List[PairVerdicts]] = {}
    for verdict in verdicts:
        groups.setdefault((verdict.dataset, verdict.protocol), []).append(verdict)
    for (dataset, protocol), rows in groups.items():
        metrics = [c.metric for c in rows[0].comparisons]
        lines += [f"## {dataset} / `{protocol}` ({rows[0].comparisons[0].n} turns)", "",
                  "| a | b | seeds (a / b) | " + " | ".join(metrics) + " |",
                  "|---|---|---|" + "---|" * len(metrics)]
        for row in rows:
            cells = [f"{c.verdict} ({c.difference:+.4f} [{c.ci_low:+.4f}, {c.ci_high:+.4f}], p={c.p_value:.3f})"
                     for c in row.comparisons]
            lines.append(f"| {row.model_a} | {row.model_b} | {row.seeds_a} / {row.seeds_b} | " + " | ".join(cells)
                         + " |")
        lines.append("")
    return lines


def write_significance(results_dir: Path, verdicts: Sequence[PairVerdicts], command: str = "") -> Path:
    """``significance.md`` (tables) and ``significance.json`` (the same, for the table tooling)."""
    import json
    from dataclasses import asdict

    results_dir = Path(results_dir)
    (results_dir / SIGNIFICANCE_JSON).write_text(
        json.dumps({"command": command, "pairs": [asdict(v) for v in verdicts]}, indent=1), encoding="utf-8")
    path = results_dir / SIGNIFICANCE_FILE
    path.write_text("\n".join(significance_markdown(verdicts, command)) + "\n", encoding="utf-8")
    return path


def read_significance(results_dir: Path) -> Tuple[str, List[PairVerdicts]]:
    """The command and verdicts :func:`write_significance` wrote (``("", [])`` when there are none)."""
    import json

    path = Path(results_dir) / SIGNIFICANCE_JSON
    if not path.is_file():
        return "", []
    payload = json.loads(path.read_text(encoding="utf-8"))
    pairs = [PairVerdicts(**{**p, "comparisons": tuple(PairedComparison(**c) for c in p["comparisons"])})
             for p in payload["pairs"]]
    return payload.get("command", ""), pairs


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Paired significance of every model pair in a benchmark folder.")
    parser.add_argument("results_dir", help="a benchmarks/run_benchmark.py --out folder (runs/<model>/<dataset>/)")
    parser.add_argument("--data-root", default="data", help="holds dataset/<name>/nltk/ (the built test split)")
    parser.add_argument("--datasets", default="redial,inspired")
    parser.add_argument("--protocols", default="full,dedup")
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args(argv)
    dirs = {name: Path(args.data_root) / "dataset" / name / "nltk" for name in args.datasets.split(",")}
    dirs = {name: path for name, path in dirs.items() if (path / "test_data.json").is_file()}
    verdicts = folder_significance(Path(args.results_dir), dirs, args.protocols.split(","),
                                   n_resamples=args.resamples)
    command = "python -m crslab_mscrs.evaluation.significance " + " ".join(argv if argv is not None else sys.argv[1:])
    out = write_significance(Path(args.results_dir), verdicts, command)
    print(f"wrote {out} and {SIGNIFICANCE_JSON} ({len(verdicts)} pairs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
