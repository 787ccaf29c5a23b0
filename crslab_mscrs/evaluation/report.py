"""Benchmark reporting: ``results.csv`` (long format), ``results.md`` (mean ± std over seeds)
and ``results.png`` (grouped Recall@10/Recall@50 bars).

A result row is ``(model, dataset, protocol, metric, seed, value)``; ``seed`` is ``""``
for deterministic runs (the baselines), which are evaluated once. A :class:`RunRecord`
describes one run (status, wall time, peak memory, error tail). Missing values are
printed as ``n/a``; nothing is ever filled in.
"""
from __future__ import annotations

import csv
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

CSV_FIELDS = ("model", "dataset", "protocol", "metric", "seed", "value")
RANKING_PROTOCOLS = ("full", "dedup", "crslab")
"""Protocols scored by our ranking metrics; any other protocol name in the rows (e.g.
``crslab_reported`` or ``generation``, copied from a run's ``metrics.json``) gets its own
table with whatever metrics it has."""
NA = "n/a"

TABLE_METRICS = ("recall@1", "recall@10", "recall@50", "ndcg@10", "ndcg@50", "mrr@10", "mrr@50",
                 "recall@1_mention", "recall@10_mention", "recall@50_mention", "SR", "RDL")
TABLE_LABELS = {"recall@1": "R@1", "recall@10": "R@10", "recall@50": "R@50", "ndcg@10": "NDCG@10",
                "ndcg@50": "NDCG@50", "mrr@10": "MRR@10", "mrr@50": "MRR@50",
                "recall@1_mention": "R@1 (mention)", "recall@10_mention": "R@10 (mention)",
                "recall@50_mention": "R@50 (mention)", "SR": "SR", "RDL": "RDL"}


@dataclass(frozen=True)
class ResultRow:
    model: str
    dataset: str
    protocol: str
    metric: str
    seed: str
    value: float


@dataclass
class RunRecord:
    """One model run (or baseline evaluation) of the benchmark."""

    model: str
    dataset: str
    seed: str
    status: str = "ok"  # "ok", "failed", or "not run" (``--no-run`` and no earlier outputs)
    wall_s: Optional[float] = None
    peak_rss_mb: Optional[float] = None
    error: str = ""
    notes: List[str] = field(default_factory=list)


def write_results_csv(rows: Iterable[ResultRow], path: Path) -> None:
    with Path(path).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))


def read_results_csv(path: Path) -> List[ResultRow]:
    with Path(path).open("r", encoding="utf-8", newline="") as handle:
        return [ResultRow(r["model"], r["dataset"], r["protocol"], r["metric"], r["seed"],
                          float(r["value"])) for r in csv.DictReader(handle)]


def aggregate(rows: Iterable[ResultRow]) -> Dict[Tuple[str, str, str, str], Tuple[float, float, int]]:
    """``{(model, dataset, protocol, metric): (mean, std, n)}`` over seeds.

    ``std`` is the sample standard deviation (n-1), NaN for a single value. NaN values
    (e.g. SR where no dialogue can be judged) are left out; an all-NaN cell is absent.
    """
    groups: Dict[Tuple[str, str, str, str], List[float]] = {}
    for row in rows:
        if not math.isnan(row.value):
            groups.setdefault((row.model, row.dataset, row.protocol, row.metric), []).append(row.value)
    result = {}
    for key, values in groups.items():
        std = statistics.stdev(values) if len(values) > 1 else float("nan")
        result[key] = (statistics.fmean(values), std, len(values))
    return result


def format_cell(stats: Optional[Tuple[float, float, int]], digits: int = 4) -> str:
    if stats is None:
        return NA
    mean, std, count = stats
    if count > 1:
        return f"{mean:.{digits}f} ± {std:.{digits}f}"
    return f"{mean:.{digits}f}"


def _markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return lines


def render_markdown(rows: Sequence[ResultRow], runs: Sequence[RunRecord], models: Sequence[str],
                    datasets: Sequence[str], protocols: Sequence[str],
                    preamble: Sequence[str] = (), data_notes: Optional[Dict[str, List[str]]] = None,
                    unavailable: Sequence[str] = ()) -> str:
    """The results tables: one per (dataset, protocol), metrics.json tables, then the runs.

    Datasets in ``unavailable`` get only their notes (which should say why)."""
    stats = aggregate(rows)
    seeds_per_model: Dict[Tuple[str, str], set] = {}
    for row in rows:
        seeds_per_model.setdefault((row.model, row.dataset), set()).add(row.seed)
    lines = ["# Benchmark results", ""] + list(preamble) + [""]
    lines += ["Cells: mean ± sample std over seeds (a single value where the run is deterministic "
              "or only one seed succeeded); `n/a`: the run failed or the resource is missing. "
              "Per-turn metrics unless marked `(mention)` (micro over label mentions).", ""]
    for dataset in datasets:
        lines += [f"## {dataset}", ""]
        for note in (data_notes or {}).get(dataset, []):
            lines.append(f"- {note}")
        lines.append("")
        if dataset in unavailable:
            continue
        for protocol in protocols:
            lines += [f"### {dataset} / protocol `{protocol}`", ""]
            header = ["model", "seeds ok"] + [TABLE_LABELS[m] for m in TABLE_METRICS]
            body = []
            for model in models:
                seeds = sorted(seeds_per_model.get((model, dataset), set()))
                seed_text = "det." if seeds == [""] else str(len(seeds)) if seeds else "0"
                body.append([model, seed_text] + [
                    format_cell(stats.get((model, dataset, protocol, metric)))
                    for metric in TABLE_METRICS])
            lines += _markdown_table(header, body) + [""]
        extra_protocols = sorted({p for (m, d, p, metric) in stats
                                  if d == dataset and p not in RANKING_PROTOCOLS})
        for extra in extra_protocols:
            names = sorted({metric for (m, d, p, metric) in stats if d == dataset and p == extra})
            lines += [f"### {dataset} / `{extra}` (test split, from each run's metrics.json)", ""]
            body = [[model] + [format_cell(stats.get((model, dataset, extra, metric)))
                               for metric in names] for model in models]
            lines += _markdown_table(["model"] + names, body) + [""]
    lines += ["## Runs", ""]
    body = []
    for run in runs:
        body.append([run.model, run.dataset, run.seed or "det.", run.status,
                     NA if run.wall_s is None else f"{run.wall_s:.1f}",
                     NA if run.peak_rss_mb is None else f"{run.peak_rss_mb:.0f}",
                     "; ".join(run.notes)])
    lines += _markdown_table(["model", "dataset", "seed", "status", "wall s", "peak RSS MB", "notes"],
                             body) + [""]
    failed = [run for run in runs if run.status == "failed"]
    if failed:
        lines += ["## Failed runs", ""]
        for run in failed:
            lines += [f"### {run.model} / {run.dataset} / seed {run.seed or 'det.'}", "", "```",
                      run.error.rstrip(), "```", ""]
    return "\n".join(lines)


def plot_recall_bars(rows: Sequence[ResultRow], path: Path, models: Sequence[str],
                     datasets: Sequence[str], protocols: Sequence[str]) -> None:
    """Grouped bars of Recall@10 (plain) and Recall@50 (hatched), one colour per protocol,
    per model; whiskers = std over seeds; a model without results is marked ``n/a``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = aggregate(rows)
    series = [(protocol, metric) for protocol in protocols for metric in ("recall@10", "recall@50")]
    colours = plt.get_cmap("tab10").colors
    fig, axes = plt.subplots(1, len(datasets), figsize=(max(6.0, 1.8 * len(models)) * len(datasets), 4.5),
                             squeeze=False)
    width = 0.8 / max(1, len(series))
    for axis, dataset in zip(axes[0], datasets):
        plotted = False
        for index, (protocol, metric) in enumerate(series):
            positions, means, errors = [], [], []
            for m, model in enumerate(models):
                cell = stats.get((model, dataset, protocol, metric))
                if cell is None:
                    continue
                positions.append(m + (index - (len(series) - 1) / 2) * width)
                means.append(cell[0])
                errors.append(0.0 if math.isnan(cell[1]) else cell[1])
            if not positions:
                continue
            plotted = True
            axis.bar(positions, means, width, yerr=errors if any(errors) else None, capsize=2,
                     color=colours[protocols.index(protocol) % len(colours)],
                     hatch="" if metric == "recall@10" else "//", edgecolor="black", linewidth=0.4,
                     label=f"{TABLE_LABELS[metric]} {protocol}")
        for m, model in enumerate(models):
            if not any((model, dataset, p, "recall@10") in stats for p in protocols):
                axis.text(m, 0.0, "n/a", ha="center", va="bottom", fontsize=9)
        axis.set_xlim(-0.5, len(models) - 0.5)
        axis.set_xticks(range(len(models)))
        axis.set_xticklabels(models, rotation=20)
        axis.set_title(f"{dataset}: Recall@10 (plain) / Recall@50 (hatched)")
        axis.set_ylabel("recall, per turn")
        axis.set_ylim(0.0, max(axis.get_ylim()[1], 0.01) * 1.3)  # room for the legend
        if plotted:
            axis.legend(fontsize=7, ncol=len(protocols))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
