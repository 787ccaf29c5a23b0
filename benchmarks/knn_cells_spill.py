"""Recall of the ``cells`` kNN method against its spill ratio, from ONE k-means and assignment.

    python benchmarks/knn_cells_spill.py --size 1000000 --spill 0.85 0.8 0.75 0.7
    python benchmarks/knn_cells_spill.py --size 100000 --data gaussian --spill 0.85 0.7 0.5

Spilling (a row also searched in its second cell when its similarity to that centroid is at
least ``spill_ratio`` x the first, :mod:`crslab_mscrs.graphs.knn_cells`) happens after the
costly steps (k-means and the assignment of every row, minutes at 1e6), so this script runs
them once (:meth:`CellAssignment.build`, the method's own code, ``--cells`` settings) and
then, per ratio, only the lists and the per-cell search (:func:`search_cells`), printing the
list entries (rows + spilled rows), the search time and recall@k against an exact float32
top-k of sampled queries (``knn_benchmark.exact_topk_of_rows``). Same data as
``knn_benchmark.py`` (``--data clustered`` or ``gaussian``). Time is wall clock of the
search alone; the full build's time and peak memory come from ``knn_benchmark.py``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def sweep(x, k: int, ratios, settings, queries: int = 1000, show_progress: bool = False) -> list:
    """One ``CellAssignment`` of ``x``, then the search at every spill ratio: a list of rows
    ``{"spill_ratio", "entries", "search_seconds", "recall"}``."""
    import torch

    from crslab_mscrs.graphs.knn_cells import CellAssignment, search_cells
    from knn_benchmark import exact_topk_of_rows, recall_at_k

    n = x.shape[0]
    k_eff = min(k, n - 1)
    rows = torch.randperm(n, generator=torch.Generator().manual_seed(1))[:min(queries, n)]
    reference = exact_topk_of_rows(x, rows, k_eff)
    started = time.perf_counter()
    cells = CellAssignment.build(x, settings, show_progress=show_progress)
    if show_progress:
        print(f"k-means, assignment and refinement: {time.perf_counter() - started:.1f} s", flush=True)
    out = []
    for ratio in ratios:
        first, second = cells.lists(ratio)
        started = time.perf_counter()
        idx, _ = search_cells(cells, first, second, k_eff)
        out.append({"spill_ratio": ratio, "entries": n + int((second >= 0).sum()),
                    "search_seconds": round(time.perf_counter() - started, 1),
                    "recall": round(recall_at_k(idx[rows], reference), 4)})
    return out


def main(argv=None) -> list:
    import torch

    from knn_benchmark import make_data, parse_cells

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--data", choices=("clustered", "gaussian"), default="clustered")
    parser.add_argument("--spill", type=float, nargs="+", default=[0.85, 0.8, 0.75, 0.7])
    parser.add_argument("--cells", nargs="*", default=[], metavar="KEY=VALUE",
                        help="other CellsSettings (graphs.knn_cells keys), e.g. cell_size=64")
    parser.add_argument("--queries", type=int, default=1000, help="sampled queries for recall")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = parse_cells(args.cells)
    x = make_data(args.size, args.dim, args.data)
    print(f"data={args.data} n={args.size} d={args.dim} k={args.k} threads={args.threads} cells={args.cells}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    rows = sweep(x, args.k, args.spill, settings, args.queries, show_progress=True)
    print("| spill_ratio | entries in the cell lists | search s | recall@k |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['spill_ratio']} | {row['entries']:,} | {row['search_seconds']} | {row['recall']:.4f} |")
    return rows


if __name__ == "__main__":
    main()
