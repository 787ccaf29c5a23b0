"""kNN graph build: time and peak memory, ours (blockwise) vs a dense similarity matrix + sort.

    python benchmarks/knn_benchmark.py                       # 1e3, 1e4, 1e5 items, 768-d, k=20
    python benchmarks/knn_benchmark.py --sizes 1000 10000 --threads 2 --dense-limit-gb 4

Every (method, size) case runs in a FRESH subprocess so that its peak RSS
(``resource.getrusage(...).ru_maxrss``) belongs to that case alone; the report gives the
peak RSS and the increase over the RSS measured just before the kNN call (inputs
already in memory). ``tracemalloc`` does not see torch's allocations, so RSS is used.

- ours: :func:`crslab_mscrs.graphs.knn.topk_neighbours` (symmetric tiles, default budget).
- dense: ``S = X X^T`` (N x N float32), diagonal masked, full ``argsort`` per row, first k.
  Skipped where its N x N float32 matrix + int64 argsort output (12 N^2 bytes) would
  exceed ``--dense-limit-gb``; the report says so.
- 1e6 extrapolation: the exact method is O(N^2 d) time, O(N (d + k)) memory; time is
  extrapolated from the largest measured size as t * (1e6 / N)^2, memory from the
  measured per-item increase plus the tile buffer.

Random Gaussian vectors (seeded); the CPU may be shared with other jobs: note the load
average printed with the results.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_case(method: str, n: int, dim: int, k: int, threads: int) -> dict:
    """Executed inside the subprocess: build top-k for n random vectors, report time/memory."""
    import torch

    from crslab_mscrs.graphs.knn import topk_neighbours  # imported before timing (package import is slow)

    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, dim, generator=generator)
    base_rss = _rss_mb()
    start = time.perf_counter()
    if method == "ours":
        idx, _ = topk_neighbours(x, k)
    else:
        xn = torch.nn.functional.normalize(x, dim=1)
        sims = xn @ xn.T
        sims.fill_diagonal_(-float("inf"))
        idx = torch.argsort(sims, dim=1, descending=True)[:, :k]
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"method": method, "n": n, "dim": dim, "k": k, "threads": threads, "seconds": round(seconds, 3),
            "peak_rss_mb": round(peak_mb, 1), "rss_before_mb": round(base_rss, 1),
            "increase_mb": round(peak_mb - base_rss, 1), "check": int(idx[0, 0])}


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description="kNN build benchmark")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dense-limit-gb", type=float, default=4.0)
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: method,n
    args = parser.parse_args(argv)
    if args.case:
        method, n = args.case.split(",")
        print(json.dumps(run_case(method, int(n), args.dim, args.k, args.threads)))
        return []

    print(f"load average before: {os.getloadavg()} on {os.cpu_count()} CPUs (shared machine: times are upper bounds)")
    results = []
    for n in args.sizes:
        for method in ("ours", "dense"):
            if method == "dense" and 12 * n * n / 2**30 > args.dense_limit_gb:
                print(f"dense n={n}: SKIPPED, needs ~{12 * n * n / 2**30:.0f} GB (N x N float32 + int64 argsort) "
                      f"> {args.dense_limit_gb} GB")
                results.append({"method": "dense", "n": n, "skipped": True})
                continue
            command = [sys.executable, __file__, "--case", f"{method},{n}", "--dim", str(args.dim), "--k",
                       str(args.k), "--threads", str(args.threads)]
            out = subprocess.run(command, capture_output=True, text=True, check=True,
                                 env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
            row = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(row)
            print(f"{method:5s} n={n:>7d}: {row['seconds']:8.2f} s, peak RSS {row['peak_rss_mb']:8.1f} MB "
                  f"(+{row['increase_mb']:.1f} MB over inputs)")
    ours = [r for r in results if r["method"] == "ours"]
    if ours:
        big = max(ours, key=lambda r: r["n"])
        scale = (1e6 / big["n"]) ** 2
        input_mb = 1e6 * args.dim * 4 / 2**20
        result_mb = 1e6 * args.k * 12 / 2**20
        print(f"extrapolated ours n=1e6 from n={big['n']}: ~{big['seconds'] * scale / 3600:.1f} h on {args.threads} "
              f"threads (O(N^2 d)), memory ~{input_mb + result_mb + 512:.0f} MB (inputs {input_mb:.0f} MB + "
              f"top-k {result_mb:.0f} MB + ~512 MB tile buffers)")
    print(f"load average after: {os.getloadavg()}")
    return results


if __name__ == "__main__":
    main()
