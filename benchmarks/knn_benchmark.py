"""kNN graph build: time, peak memory and recall of exact-blockwise vs faiss-ivf vs a dense baseline.

    python benchmarks/knn_benchmark.py                        # 1e3, 1e4, 1e5 items, 768-d, k=20
    python benchmarks/knn_benchmark.py --sizes 10000 --data gaussian --nprobe 16
    python benchmarks/knn_benchmark.py --methods faiss-ivf --sizes 10000 100000

Target (docs/data.md#large-catalogues): 1e5 items x 768-d in < 60 s and < 2 GB on 2 cores.

Every (method, size) case runs in a FRESH subprocess so that its peak RSS
(``resource.getrusage(...).ru_maxrss``, read right after the build, before the recall
check) belongs to that case alone; the report gives the peak RSS and the increase over
the RSS measured just before the build (inputs already in memory). ``tracemalloc`` does
not see torch/faiss allocations, so RSS is used. Time = top-k search + union graph.

- exact: :func:`crslab_mscrs.graphs.knn.nearest_neighbours` with ``method="exact"``
  (symmetric tiles, default block budget): the reference.
- faiss-ivf: the same with ``method="faiss-ivf"`` (IVF-Flat, nlist ~ 4 sqrt(N), ``--nprobe``).
  Recall@k = |approx top-k & exact top-k| / k, averaged over ALL queries when N <=
  ``--recall-all-max`` else over ``--recall-queries`` sampled queries (exact top-k of the
  sampled rows computed blockwise against all N after the timed build).
- dense: ``S = X X^T`` (N x N float32), diagonal masked, full ``argsort`` per row, first k.
  Skipped where its N x N float32 matrix + int64 argsort output (12 N^2 bytes) would
  exceed ``--dense-limit-gb``; the report says so.
- 1e6 extrapolation, fastest method at the largest size: time from the log-log slope
  measured between its two largest sizes (and the model exponent: 2 for exact, 1.5 for
  faiss-ivf with nlist ~ sqrt(N) and fixed nprobe), memory from the measured increase
  per item (both methods are O(N (d + k))).

Data (``--data``): ``clustered`` (default) = Gaussian mixture with N/50 centres, centre
scale 0.5 and noise 0.8 per dimension (in-cluster cosine ~0.28), a stand-in for embedding
structure; ``gaussian`` = i.i.d. N(0, 1), the worst case for an index (no structure, top-k
is nearly arbitrary). The CPU may be shared: note the load average printed with the results.
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

METHODS = ("exact", "faiss-ivf", "dense")


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_data(n: int, dim: int, kind: str, seed: int = 0):
    """Seeded benchmark vectors (see module docstring)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    if kind == "gaussian":
        return torch.randn(n, dim, generator=generator)
    if kind != "clustered":
        raise ValueError(f"--data must be clustered or gaussian, got {kind!r}")
    centres = torch.randn(max(2, n // 50), dim, generator=generator) * 0.5
    x = centres[torch.randint(0, len(centres), (n,), generator=generator)]
    return x.add_(torch.randn(n, dim, generator=generator), alpha=0.8)


def exact_topk_of_rows(x, rows, k: int, chunk: int = 256):
    """Exact top-k (self excluded) of the given rows against all of ``x``, ``chunk`` rows at a time."""
    import torch

    xn = torch.nn.functional.normalize(x, dim=1)
    out = []
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        sims = xn[part] @ xn.T
        sims[torch.arange(len(part)), part] = -math.inf
        out.append(torch.topk(sims, k, dim=1).indices)
    return torch.cat(out)


def recall_at_k(approx, exact) -> float:
    """Mean over rows of |approx_i & exact_i| / k (-1 padding never matches)."""
    hits = sum(len(set(a.tolist()) & set(e.tolist())) for a, e in zip(approx, exact))
    return hits / exact.numel()


def run_case(method: str, n: int, args) -> dict:
    """Executed inside the subprocess: build the kNN graph of n vectors, report time/memory/recall."""
    import torch

    from crslab_mscrs.graphs.knn import nearest_neighbours, union_graph  # imported before timing

    torch.set_num_threads(args.threads)
    x = make_data(n, args.dim, args.data)
    ids = torch.arange(n)
    base_rss = _rss_mb()
    start = time.perf_counter()
    if method == "dense":
        xn = torch.nn.functional.normalize(x, dim=1)
        sims = xn @ xn.T
        sims.fill_diagonal_(-math.inf)
        order = torch.argsort(sims, dim=1, descending=True)[:, :args.k]
        idx, val = order, torch.gather(sims, 1, order)
        del sims
    else:
        idx, val, _ = nearest_neighbours(x, args.k, method=method, nprobe=args.nprobe)
    search_s = time.perf_counter() - start
    edge_index, _, _ = union_graph(idx, val, ids, n)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = {"method": method, "n": n, "dim": args.dim, "k": args.k, "threads": args.threads, "data": args.data,
           "seconds": round(seconds, 2), "search_seconds": round(search_s, 2), "edges": int(edge_index.shape[1]),
           "peak_rss_mb": round(peak_mb, 1), "rss_before_mb": round(base_rss, 1),
           "increase_mb": round(peak_mb - base_rss, 1)}
    if method == "faiss-ivf":
        generator = torch.Generator().manual_seed(1)
        rows = torch.arange(n) if n <= args.recall_all_max else torch.randperm(n, generator=generator)[
            :args.recall_queries]
        row.update(nprobe=args.nprobe, recall_queries=len(rows),
                   recall=round(recall_at_k(idx[rows], exact_topk_of_rows(x, rows, idx.shape[1])), 4))
    return row


def extrapolate(rows: list, target: float, dim: int, k: int) -> str:
    """1e6 line for the fastest method at the largest measured size (see module docstring)."""
    measured = [r for r in rows if not r.get("skipped")]
    if not measured:
        return "no measurement to extrapolate"
    largest = max(r["n"] for r in measured)
    best = min((r for r in measured if r["n"] == largest), key=lambda r: r["seconds"])
    same = sorted((r for r in measured if r["method"] == best["method"]), key=lambda r: r["n"])
    model = {"exact": 2.0, "faiss-ivf": 1.5, "dense": 2.0}[best["method"]]
    slope_note = ""
    exponent = model
    if len(same) >= 2 and same[-2]["seconds"] > 5.0:  # tiny timings are dominated by overheads
        exponent = math.log(same[-1]["seconds"] / same[-2]["seconds"]) / math.log(same[-1]["n"] / same[-2]["n"])
        slope_note = f"measured slope {exponent:.2f} between n={same[-2]['n']} and n={same[-1]['n']}; "
    scale_measured = (target / best["n"]) ** exponent
    scale_model = (target / best["n"]) ** model
    per_item_mb = best["increase_mb"] / best["n"]
    memory_mb = best["rss_before_mb"] + per_item_mb * target + target * dim * 4 / 2**20  # + the input itself
    note = " (dense needs 12 N^2 bytes: impossible at 1e6)" if best["method"] == "dense" else ""
    return (f"extrapolated {best['method']} to n={target:.0e} from n={best['n']} ({best['seconds']:.1f} s): "
            f"{slope_note}~{best['seconds'] * scale_measured / 60:.1f} min with it, "
            f"~{best['seconds'] * scale_model / 60:.1f} min with the model exponent {model}; "
            f"memory ~{memory_mb / 1024:.1f} GB (input {target * dim * 4 / 2**30:.1f} GB + "
            f"{per_item_mb * 1024:.1f} KB/item measured){note}")


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description="kNN build benchmark")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", choices=("clustered", "gaussian"), default="clustered")
    parser.add_argument("--nprobe", type=int, default=8)
    parser.add_argument("--recall-all-max", type=int, default=20000, help="all queries up to this N")
    parser.add_argument("--recall-queries", type=int, default=2000, help="sampled queries above it")
    parser.add_argument("--dense-limit-gb", type=float, default=4.0)
    parser.add_argument("--extrapolate-to", type=float, default=1e6)
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: method,n
    args = parser.parse_args(argv)
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
                print(f"{method:9s} n={n:>7d}: SKIPPED, needs ~{12 * n * n / 2**30:.0f} GB (N x N float32 + "
                      f"int64 argsort) > {args.dense_limit_gb} GB")
                results.append({"method": "dense", "n": n, "skipped": True})
                continue
            command = [sys.executable, __file__, "--case", f"{method},{n}"] + [
                a for key in ("dim", "k", "threads", "data", "nprobe", "recall_all_max", "recall_queries")
                for a in (f"--{key.replace('_', '-')}", str(getattr(args, key)))]
            out = subprocess.run(command, capture_output=True, text=True,
                                 env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
            if out.returncode != 0:
                print(f"{method:9s} n={n:>7d}: FAILED (exit {out.returncode}): {out.stderr.strip()[-500:]}")
                results.append({"method": method, "n": n, "skipped": True, "error": out.stderr[-500:]})
                continue
            row = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(row)
            recall = (f", recall@{args.k} {row['recall']:.3f} over {row['recall_queries']} queries"
                      if "recall" in row else "")
            print(f"{method:9s} n={n:>7d}: {row['seconds']:8.2f} s (search {row['search_seconds']:.2f} s), "
                  f"peak RSS {row['peak_rss_mb']:8.1f} MB (+{row['increase_mb']:.1f} MB over inputs){recall} "
                  f"[load {os.getloadavg()[0]:.2f}]", flush=True)
    print(extrapolate(results, args.extrapolate_to, args.dim, args.k))
    print(f"load average after: {os.getloadavg()}")
    return results


if __name__ == "__main__":
    main()
