"""kNN graph build: time, peak memory and recall@k of every method at every size.

    python benchmarks/knn_benchmark.py                        # 1e3, 1e4, 1e5 items, 768-d, k=20
    python benchmarks/knn_benchmark.py --sizes 1000000 --methods faiss-ivf
    python benchmarks/knn_benchmark.py --sizes 100000 --data gaussian --methods exact-bf16 faiss-ivf

Goals (docs/scale.md#knn-graphs-of-large-catalogues): exact at 1e5 x 768 in < 60 s on 2 cores;
1e6 x 768 in < 5 min on 2 cores with peak memory < 1.5x the input vectors and recall@20
>= 0.95 against exact.

Every (method, size) case runs in a FRESH subprocess so that its peak RSS
(VmHWM after resetting it once the data are generated, else ``ru_maxrss``; read right after the build, before the recall
check) belongs to that case alone; the data are generated chunk by chunk, so the peak is
the input plus what the build adds. The report gives the peak and its ratio to the input
vectors (N d 4 bytes). ``tracemalloc`` does not see torch/faiss allocations, so RSS is used.
Time = top-k search + union graph, wall clock, and the CPU seconds the case used (user +
system, all threads: on a shared machine, CPU / threads is closer to what an idle machine
would give than the wall time, but is not a measurement of it). A case that runs past ``--timeout`` is reported as such.

- exact / exact-bf16: :func:`crslab_mscrs.graphs.knn.nearest_neighbours`, ``method="exact"``
  (symmetric tiles), float32 or bfloat16 products (``exact_precision``).
- cells: the same with ``method="cells"`` (:mod:`crslab_mscrs.graphs.knn_cells`; settings
  from ``--cells KEY=VALUE``, e.g. ``--cells cell_size=64``, else its defaults).
- faiss-ivf: the same with ``method="faiss-ivf"`` (IVF-Flat, nlist ~ 4 sqrt(N), ``--nprobe``).
- ivf-tiles: the experiment in ``benchmarks/knn_ivf_tiles.py`` (k-means cells searched as
  dense bf16 tiles; not a method of the package).
- dense: ``S = X X^T`` (N x N float32), full ``argsort`` per row; skipped where its
  12 N^2 bytes exceed ``--dense-limit-gb``.

Recall@k = |found top-k & exact top-k| / k over ALL queries when N <= ``--recall-all-max``,
else over ``--recall-queries`` sampled queries; the reference top-k is computed after the
timed build, in float32, query chunk against database chunk (no normalised copy of X), by
code independent of the methods above, so exact methods are checked too.

Data (``--data``): ``clustered`` (default) = Gaussian mixture with N/50 centres, centre
scale 0.5 and noise 0.8 per dimension (in-cluster cosine ~0.28), a stand-in for embedding
structure; ``gaussian`` = i.i.d. N(0, 1), the worst case for an index (no structure, top-k
is nearly arbitrary). The CPU may be shared: the load average is printed with every case.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # this checkout's package, not another installed copy
    sys.path.insert(0, str(REPO_ROOT))

METHODS = ("exact", "exact-bf16", "cells", "faiss-ivf", "ivf-tiles", "dense")


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_data(n: int, dim: int, kind: str, seed: int = 0, chunk: int = 65536):
    """Seeded benchmark vectors (see module docstring), written chunk by chunk into one N x d tensor."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    if kind not in ("clustered", "gaussian"):
        raise ValueError(f"--data must be clustered or gaussian, got {kind!r}")
    x = torch.empty(n, dim)
    if kind == "gaussian":
        for start in range(0, n, chunk):
            x[start:start + chunk] = torch.randn(min(chunk, n - start), dim, generator=generator)
        return x
    centres = torch.randn(max(2, n // 50), dim, generator=generator) * 0.5
    labels = torch.randint(0, len(centres), (n,), generator=generator)
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        x[start:start + rows] = centres[labels[start:start + rows]].add_(
            torch.randn(rows, dim, generator=generator), alpha=0.8)
    return x


def exact_topk_of_rows(x, rows, k: int, query_chunk: int = 1024, db_chunk: int = 32768):
    """Exact float32 top-k (self excluded) of the given rows against all of ``x``, without a normalised copy."""
    import torch

    n = x.shape[0]
    inv = torch.cat([1.0 / x[s:s + db_chunk].norm(dim=1) for s in range(0, n, db_chunk)])
    out = []
    for qs in range(0, len(rows), query_chunk):
        part = rows[qs:qs + query_chunk]
        q = x[part] * inv[part].unsqueeze(1)
        best_val = torch.full((len(part), k), -math.inf)
        best_idx = torch.full((len(part), k), -1, dtype=torch.long)
        for s in range(0, n, db_chunk):
            sims = (q @ x[s:s + db_chunk].T) * inv[s:s + db_chunk]
            inside = torch.nonzero((part >= s) & (part < s + db_chunk)).flatten()
            sims[inside, part[inside] - s] = -math.inf
            vals, idx = torch.topk(sims, min(k, sims.shape[1]), dim=1)
            merged_val = torch.cat([best_val, vals], dim=1)
            merged_idx = torch.cat([best_idx, idx + s], dim=1)
            best_val, pos = torch.topk(merged_val, k, dim=1)
            best_idx = torch.gather(merged_idx, 1, pos)
        out.append(best_idx)
    return torch.cat(out)


def parse_cells(items):
    """``--cells KEY=VALUE ...`` as :class:`~crslab_mscrs.graphs.knn_cells.CellsSettings` (a
    value with a dot is a float, else an int; unknown keys: ValueError naming them)."""
    from crslab_mscrs.graphs.knn import cells_settings

    return cells_settings({key: float(v) if "." in v else int(v) for key, v in (item.split("=", 1) for item in items)})


def recall_at_k(approx, exact) -> float:
    """Mean over rows of |approx_i & exact_i| / k (-1 padding never matches)."""
    hits = sum(len(set(a.tolist()) & set(e.tolist())) for a, e in zip(approx, exact))
    return hits / exact.numel()


def run_case(method: str, n: int, args) -> dict:
    """Executed inside the subprocess: build the kNN graph of n vectors, report time/memory/recall."""
    import torch

    from crslab_mscrs.graphs.knn import nearest_neighbours, union_graph  # imported before timing

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from lm_memory import peak_mb as _peak_rss_mb, reset_peak as _reset_peak_rss  # VmHWM, else ru_maxrss

    torch.set_num_threads(args.threads)
    if args.features:  # real vectors: a features file of the features job, its non-zero rows
        from crslab_mscrs.graphs import storage

        x = storage.load_features(args.features)["features"].float()
        x = x[x.norm(dim=1) > 0].contiguous()
        n, args.dim, args.data = x.shape[0], x.shape[1], os.path.basename(args.features)
    else:
        x = make_data(n, args.dim, args.data)
    ids = torch.arange(n)
    base_rss = _rss_mb()
    peak_reset = _reset_peak_rss()
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    if method == "dense":
        xn = torch.nn.functional.normalize(x, dim=1)
        sims = xn @ xn.T
        sims.fill_diagonal_(-math.inf)
        order = torch.argsort(sims, dim=1, descending=True)[:, :args.k]
        idx, val = order, torch.gather(sims, 1, order)
        del sims, xn
    elif method == "cells":
        idx, val, _ = nearest_neighbours(x, args.k, method="cells", device="cpu", cells=parse_cells(args.cells))
    elif method == "ivf-tiles":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from knn_ivf_tiles import ivf_tiles_topk

        idx, val = ivf_tiles_topk(x, args.k, nprobe=args.tiles_nprobe, cell_size=args.tiles_cell_size)
    else:
        precision = "bfloat16" if method == "exact-bf16" else "float32"
        idx, val, _ = nearest_neighbours(x, args.k, method=method.replace("-bf16", ""), nprobe=args.nprobe,
                                         exact_precision=precision, device="cpu")
    search_s = time.perf_counter() - start
    search_peak_mb = _peak_rss_mb()
    edge_index, _, _ = union_graph(idx, val, ids, n)
    seconds = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_seconds = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    peak_mb = _peak_rss_mb()
    input_mb = n * args.dim * 4 / 2**20
    row = {"method": method, "n": n, "dim": args.dim, "k": args.k, "threads": args.threads, "data": args.data,
           "seconds": round(seconds, 2), "search_seconds": round(search_s, 2), "cpu_seconds": round(cpu_seconds, 1), "edges": int(edge_index.shape[1]),
           "peak_rss_mb": round(peak_mb, 1), "search_peak_rss_mb": round(search_peak_mb, 1), "rss_before_mb": round(base_rss, 1), "input_mb": round(input_mb, 1),
           "peak_over_input": round(peak_mb / input_mb, 2), "peak_since_data_generated": peak_reset, "load_after_build": round(os.getloadavg()[0], 2)}
    if method == "faiss-ivf":
        row["nprobe"] = args.nprobe
    if method == "cells":
        row["cells"] = list(args.cells)
    generator = torch.Generator().manual_seed(1)
    rows = torch.arange(n) if n <= args.recall_all_max else torch.randperm(n, generator=generator)[
        :args.recall_queries]
    reference = exact_topk_of_rows(x, rows, idx.shape[1])
    row.update(recall_queries=len(rows), recall=round(recall_at_k(idx[rows], reference), 4))
    return row


def tile_products(sizes, dim: int, threads: int, repeats: int = 5) -> list:
    """Time one product of the exact build's default tile (block x dim by its transpose,
    ``graphs/knn.py:_topk_tiles`` with its default memory budget) in float32 and bfloat16,
    best of ``repeats``, and what the products alone of every size would take (N^2 / 2
    tiles' worth: the symmetric kernel)."""
    import torch

    from crslab_mscrs.graphs.knn import DEFAULT_TILE_MEMORY_MB, tile_block_size

    torch.set_num_threads(threads)
    block = tile_block_size(DEFAULT_TILE_MEMORY_MB, 20)
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.randn(block, dim).to(dtype)
        a @ a.T  # warm-up
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            a @ a.T
            best = min(best, time.perf_counter() - start)
        tiles = {n: (n / block) * (n / block + 1) / 2 for n in sizes}
        rows.append({"dtype": str(dtype).replace("torch.", ""), "block": block, "seconds": round(best, 3),
                     "gflops": round(2 * block * block * dim / best / 1e9, 1),
                     "products_seconds": {n: round(t * best, 1) for n, t in tiles.items()}})
        print(f"tile {block} x {dim} by its transpose, {rows[-1]['dtype']}: {best:.3f} s "
              f"({rows[-1]['gflops']} GFLOP/s, best of {repeats}, {threads} threads); products alone: "
              + ", ".join(f"n={n}: {tiles[n]:.0f} tiles = {tiles[n] * best:.1f} s" for n in sizes), flush=True)
    return rows


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description="kNN build benchmark")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=["exact", "exact-bf16", "faiss-ivf", "dense"])
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", choices=("clustered", "gaussian"), default="clustered")
    parser.add_argument("--features", help="a features file (e.g. <data root>/features/redial/text_features.pt) "
                        "instead of generated data; --sizes and --dim are then ignored")
    parser.add_argument("--nprobe", type=int, default=8, help="faiss-ivf cells probed per query")
    parser.add_argument("--cells", nargs="*", default=[], metavar="KEY=VALUE",
                        help="cells method settings (CellsSettings fields), e.g. cell_size=64 spill_ratio=0.9")
    parser.add_argument("--tiles-nprobe", type=int, default=1, help="ivf-tiles cells per row")
    parser.add_argument("--tiles-cell-size", type=int, default=64, help="ivf-tiles items per k-means cell")
    parser.add_argument("--recall-all-max", type=int, default=20000, help="all queries up to this N")
    parser.add_argument("--recall-queries", type=int, default=1000, help="sampled queries above it")
    parser.add_argument("--dense-limit-gb", type=float, default=4.0)
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per case (build + recall check)")
    parser.add_argument("--json-out", help="also write the rows to this JSON file")
    parser.add_argument("--tile-products", action="store_true",
                        help="only time the exact build's tile product (float32, bf16) and print what the "
                             "products alone take at --sizes")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: method,n
    args = parser.parse_args(argv)
    if args.tile_products:
        return tile_products(args.sizes, args.dim, args.threads)
    if args.features:
        args.features = os.path.abspath(args.features)
        args.sizes = [0]  # the file's rows
    if args.case:
        method, n = args.case.split(",")
        print(json.dumps(run_case(method, int(n), args)))
        return []

    print(f"load average before: {os.getloadavg()} on {os.cpu_count()} CPUs (shared machine: times are upper "
          f"bounds); data={args.data}, d={args.dim}, k={args.k}, threads={args.threads}, nprobe={args.nprobe}")
    results = []
    for n in args.sizes:
        for method in args.methods:
            if method == "dense" and 12 * n * n / 2**30 > args.dense_limit_gb:
                print(f"{method:10s} n={n:>7d}: SKIPPED, needs ~{12 * n * n / 2**30:.0f} GB (N x N float32 + "
                      f"int64 argsort) > {args.dense_limit_gb} GB")
                results.append({"method": "dense", "n": n, "skipped": "memory"})
                continue
            command = [sys.executable, __file__, "--case", f"{method},{n}"] + [
                a for key in ("dim", "k", "threads", "data", "nprobe", "tiles_nprobe", "tiles_cell_size",
                              "recall_all_max", "recall_queries")
                for a in (f"--{key.replace('_', '-')}", str(getattr(args, key)))] + (
                ["--cells", *args.cells] if args.cells else []) + (["--features", args.features] if args.features else [])
            try:
                out = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout,
                                     env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
            except subprocess.TimeoutExpired:
                print(f"{method:10s} n={n:>7d}: NOT FINISHED within --timeout {args.timeout:.0f} s (build + recall)")
                results.append({"method": method, "n": n, "skipped": f"timeout {args.timeout:.0f} s"})
                continue
            if out.returncode != 0:
                print(f"{method:10s} n={n:>7d}: FAILED (exit {out.returncode}): {out.stderr.strip()[-500:]}")
                results.append({"method": method, "n": n, "skipped": "failed", "error": out.stderr[-500:]})
                continue
            row = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(row)
            label = method + (f" ({' '.join(args.cells)})" if method == "cells" and args.cells else "")
            print(f"{label:10s} n={row['n']:>7d}: {row['seconds']:8.2f} s (search {row['search_seconds']:.2f} s, "
                  f"CPU {row.get('cpu_seconds', float('nan')):.1f} s), "
                  f"peak RSS {row['peak_rss_mb']:8.1f} MB = {row['peak_over_input']:.2f}x the input "
                  f"({row['input_mb']:.0f} MB; {row['rss_before_mb']:.0f} MB before the build, "
                  f"{row['search_peak_rss_mb']:.0f} MB at the end of the search, before the union graph), recall@{args.k} {row['recall']:.4f} over {row['recall_queries']} "
                  f"queries [load {row['load_after_build']:.2f}]", flush=True)
    print(f"load average after: {os.getloadavg()}")
    if args.json_out:
        with open(args.json_out, "w") as handle:
            json.dump(results, handle, indent=1)
    return results


if __name__ == "__main__":
    main()
