"""EXPERIMENT (not a method of the package): k-means cells searched as dense bf16 tiles.

Measured by ``benchmarks/knn_benchmark.py --methods ivf-tiles``; it did not reach the recall
goal on the clustered benchmark data (benchmarks/README.md#knn-graphs-knn_benchmarkpy), so
:func:`crslab_mscrs.graphs.knn.build_knn_graph` does not offer it.

An inverted-file (IVF) search (Jegou et al., "Product quantization for nearest neighbor
search", TPAMI 2011, section 4; the structure of faiss' ``IndexIVFFlat``) restricted to the
all-pairs case, where every indexed item is also a query:

1. Flat spherical k-means on a seeded sample (products in bf16).
2. Every row is stored in its most similar cell and remembers its ``nprobe`` best cells.
3. Cell a's members are compared with the members of the union of its members' cells:
   one ``|a| x |candidates|`` bf16 matrix product per cell, top-k per row, the kept pairs
   re-scored in float32. Searching per CELL instead of per query (faiss) is what turns the
   search into large matrix products. A two-level (vocabulary-tree) variant, tried first
   (commit 1a093e6), split the benchmark's flat clusters at the coarse level: recall@20 0.14-0.19.

The similarities returned are exact cosines of the pairs found; recall against the exact
graph depends on how well the cells follow the data (``benchmarks/knn_benchmark.py``).

Memory: the input is never copied or normalised as a whole (inverse row norms, N floats,
scale each gathered block); beyond the input: the ``N x k`` result, the training sample,
and one cell's query and candidate blocks. The input is not modified.

Output as :func:`crslab_mscrs.graphs.knn.topk_neighbours`: ``(indices [N, k'],
similarities [N, k'])``, self excluded, descending; rows whose probed cells hold fewer than
``k'`` other items are padded with index ``-1`` and similarity ``-inf``.
"""
from __future__ import annotations

import math
from typing import Optional

import torch


PRECISIONS = {"bfloat16": torch.bfloat16, "float32": torch.float32}


def default_nlist(n: int, cell_size: int = 128) -> int:
    """``N / cell_size`` fine cells (at least 1, at most N)."""
    return max(1, min(n, int(round(n / cell_size))))


def _unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.float(), dim=1)


def _cluster_sums(x: torch.Tensor, assign: torch.Tensor, c: int) -> torch.Tensor:
    """Row sums per cluster as one sparse (CSR) product (``index_add_`` is serial on CPU)."""
    order = torch.argsort(assign)
    crow = torch.zeros(c + 1, dtype=torch.long, device=x.device)
    crow[1:] = torch.cumsum(torch.bincount(assign, minlength=c), 0)
    ones = torch.ones(len(order), dtype=x.dtype, device=x.device)
    import warnings

    with warnings.catch_warnings():  # "beta state" / invariant-check notices of sparse CSR
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, order, ones, size=(c, x.shape[0])) @ x


def _best_cells(x: torch.Tensor, centroids: torch.Tensor, p: int, dtype, chunk: int = 4096) -> tuple:
    """``(values, cells)`` of the ``p`` most similar centroids of each unit row (products in ``dtype``)."""
    c = centroids.to(dtype)
    vals = torch.empty(x.shape[0], p, device=x.device)
    cells = torch.empty(x.shape[0], p, dtype=torch.long, device=x.device)
    for start in range(0, x.shape[0], chunk):
        v, i = torch.topk(x[start:start + chunk].to(dtype) @ c.T, p, dim=1)
        vals[start:start + chunk], cells[start:start + chunk] = v.float(), i
    return vals, cells


def spherical_kmeans(x: torch.Tensor, n_clusters: int, iterations: int, generator: torch.Generator,
                     dtype=torch.float32) -> tuple:
    """Spherical k-means of unit rows ``x`` (Dhillon and Modha, Machine Learning 2001).

    Returns ``(centroids [c, d] unit rows, assignment [n])``; empty clusters are re-seeded
    with the rows worst served by their centroid. ``dtype``: precision of the products.
    """
    n = x.shape[0]
    c = max(1, min(int(n_clusters), n))
    centroids = x[torch.randperm(n, generator=generator)[:c].to(x.device)].clone()
    for _ in range(max(1, int(iterations))):
        best, assign = _best_cells(x, centroids, 1, dtype)
        best, assign = best[:, 0], assign[:, 0]
        sums = _cluster_sums(x, assign, c)
        empty = torch.nonzero(torch.bincount(assign, minlength=c) == 0).flatten()
        if len(empty):
            sums[empty] = x[torch.argsort(best)[:len(empty)]]
        centroids = _unit(sums)
    return centroids, _best_cells(x, centroids, 1, dtype)[1][:, 0]


def _row_blocks(features, inv_norm, rows):
    """Unit copies of ``features[rows]`` (a block; the input stays as it is)."""
    return features[rows].float() * inv_norm[rows].unsqueeze(1)


def assign_cells(features, inv_norm, centroids, p: int, dtype, device, chunk: int = 16384) -> torch.Tensor:
    """The ``p`` most similar cells of every row, ``[N, p]`` (the first: the row's own cell)."""
    n = features.shape[0]
    cells = torch.empty(n, p, dtype=torch.long)
    for start in range(0, n, chunk):
        rows = torch.arange(start, min(start + chunk, n))
        block = _row_blocks(features, inv_norm, rows.to(features.device)).to(device)
        cells[rows] = _best_cells(block, centroids, p, dtype)[1].cpu()
    return cells


def _cell_bounds(cell: torch.Tensor, n_cells: int) -> tuple:
    order = torch.argsort(cell, stable=True)
    counts = torch.bincount(cell, minlength=n_cells)
    offsets = torch.zeros(n_cells + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(counts, 0)
    return order, offsets.tolist()


def ivf_tiles_topk(features: torch.Tensor, k: int, nprobe: int = 3, nlist: Optional[int] = None,
                   cell_size: int = 128, train_points_per_cell: int = 16, kmeans_iterations: int = 8,
                   precision: str = "bfloat16", seed: int = 0, device: Optional[str] = None,
                   show_progress: bool = False) -> tuple:
    """Approximate top-k cosine neighbours (self excluded) of every row (see module docstring).

    Args:
        features: ``[N, d]`` non-zero rows (not modified, not copied as a whole).
        k: neighbours per row; ``k' = min(k, N - 1)``.
        nprobe: most similar cells of each row; a cell is searched against the union of
            its members' cells. ``nprobe >= nlist`` is exact.
        nlist: k-means cells (default :func:`default_nlist`, ``N / cell_size``).
        train_points_per_cell: k-means trains on ``min(N, nlist * this)`` sampled rows.
        kmeans_iterations: k-means iterations.
        precision: ``"bfloat16"`` (products in bf16, 4x the float32 rate on CPUs with
            AVX512-BF16; the similarities returned are recomputed in float32) or ``"float32"``.
        seed: sampling and initialisation seed (deterministic for a fixed seed and device).
        device: where the products run (default: the features' device; ``"cuda"`` works).
    """
    from tqdm.auto import tqdm

    n = features.shape[0]
    k_eff = min(int(k), n - 1)
    if k_eff <= 0:
        return torch.zeros(n, 0, dtype=torch.long), torch.zeros(n, 0)
    if nprobe < 1:
        raise ValueError(f"nprobe must be >= 1, got {nprobe}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}")
    dtype = PRECISIONS[precision]
    nlist = default_nlist(n, cell_size) if nlist is None else int(nlist)
    if not 1 <= nlist <= n:
        raise ValueError(f"nlist must lie in [1, {n}] (number of items), got {nlist}")
    dev = torch.device(device) if device else features.device
    source = features.detach()
    inv_norm = torch.empty(n)
    for start in range(0, n, 65536):
        inv_norm[start:start + 65536] = 1.0 / source[start:start + 65536].float().norm(dim=1).cpu()
    inv_norm = inv_norm.to(source.device)
    generator = torch.Generator().manual_seed(int(seed))
    n_train = min(n, nlist * int(train_points_per_cell))
    sample = torch.randperm(n, generator=generator)[:n_train].sort().values
    centroids, _ = spherical_kmeans(_row_blocks(source, inv_norm, sample.to(source.device)).to(dev), nlist,
                                    kmeans_iterations, generator, dtype)
    n_cells = centroids.shape[0]
    cells = assign_cells(source, inv_norm, centroids, min(int(nprobe), n_cells), dtype, dev)
    order, bounds = _cell_bounds(cells[:, 0].contiguous(), n_cells)
    out_idx = torch.full((n, k_eff), -1, dtype=torch.long)
    out_sim = torch.full((n, k_eff), -math.inf)
    for a in tqdm(range(n_cells), desc="kNN ivf-tiles cells", disable=not show_progress):
        lo, hi = bounds[a], bounds[a + 1]
        if hi == lo:
            continue
        members = order[lo:hi]
        searched = torch.unique(cells[members].flatten()).tolist()
        cand = torch.cat([order[bounds[b]:bounds[b + 1]] for b in searched])
        kk = min(k_eff, len(cand) - 1)
        if kk <= 0:
            continue
        q = _row_blocks(source, inv_norm, members.to(source.device)).to(dev)
        c = _row_blocks(source, inv_norm, cand.to(source.device)).to(dev)
        tile = q.to(dtype) @ c.to(dtype).T
        tile[members.to(dev).unsqueeze(1) == cand.to(dev).unsqueeze(0)] = -math.inf  # self
        pos = torch.topk(tile, kk, dim=1).indices
        vals = torch.einsum("rd,rkd->rk", q, c[pos])  # exact float32 cosines of the pairs kept
        vals, resort = torch.sort(vals, dim=1, descending=True)
        pos = torch.gather(pos, 1, resort).cpu()
        out_idx[members, :kk] = cand[pos]
        out_sim[members, :kk] = vals.float().cpu()
    return out_idx, out_sim
