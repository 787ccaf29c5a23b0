"""Approximate top-k cosine neighbours with a faiss IVF-Flat index (optional extra ``ann``).

docs/data.md#large-catalogues: a kNN graph over 10^5-10^6 items is built in blocks or with
an index library. The exact blockwise build (:mod:`crslab_mscrs.graphs.knn`) costs
O(N^2 d); here the L2-normalised vectors go into an inverted-file index with ``nlist``
k-means cells (default ~ 4 sqrt(N)) and inner-product metric (= cosine on unit vectors).
Every item then queries the ``nprobe`` nearest cells only, so the cost is about
O(N d (nlist + nprobe N / nlist)) plus the k-means training on a subsample.

Memory: the index stores one float32 copy of the unit vectors (N d) plus ``nlist``
centroids; rows are normalised, added and queried in chunks (results ``chunk x (k+1)``):
O(N k) + index + the training sample, never N x N.

Results follow :func:`crslab_mscrs.graphs.knn.topk_neighbours`: ``(indices [N, k'],
similarities [N, k'])``, self excluded, descending similarity. Where the probed cells hold
fewer than ``k'`` other items, the tail is padded with index ``-1`` and similarity ``-inf``
(callers drop those entries).
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

INSTALL_HINT = "pip install faiss-cpu  (or: pip install 'crslab-mscrs[ann]')"


def faiss_available() -> bool:
    """True when ``import faiss`` works."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def import_faiss():
    """``faiss`` module, or an ImportError that says how to install it."""
    try:
        import faiss
    except ImportError as error:
        raise ImportError(f"kNN method 'faiss-ivf' needs the faiss library, which is not installed: "
                          f"{INSTALL_HINT}; or use method='exact'") from error
    return faiss


def default_nlist(n: int) -> int:
    """``~4 sqrt(N)`` cells, at most N // 39 so that k-means gets >= 39 points per cell (faiss' minimum)."""
    return max(1, min(int(round(4 * math.sqrt(n))), n // 39))


def faiss_ivf_topk(features: torch.Tensor, k: int, nprobe: int = 8, nlist: Optional[int] = None,
                   train_points_per_cell: int = 40, kmeans_iterations: int = 10, seed: int = 0,
                   query_chunk: int = 8192, show_progress: bool = False) -> tuple:
    """Approximate top-k cosine neighbours (self excluded) of every row via IVF-Flat.

    Args:
        features: ``[N, d]`` non-zero rows (normalised here).
        k: neighbours per row; ``k' = min(k, N - 1)``.
        nprobe: cells visited per query (recall/time trade-off; ``nprobe = nlist`` is exact).
        nlist: number of k-means cells (default :func:`default_nlist`).
        train_points_per_cell: k-means trains on ``min(N, nlist * this)`` sampled rows.
        kmeans_iterations: k-means iterations.
        seed: k-means sampling/initialisation seed (the build is deterministic for a fixed seed).
    """
    from tqdm.auto import tqdm

    faiss = import_faiss()
    from faiss.contrib.ivf_tools import add_preassigned, search_preassigned
    faiss.omp_set_num_threads(torch.get_num_threads())  # the threads torch was given, not every core
    n, dim = features.shape
    k_eff = min(int(k), n - 1)
    if k_eff <= 0:
        return torch.zeros(n, 0, dtype=torch.long), torch.zeros(n, 0)
    if nprobe < 1:
        raise ValueError(f"nprobe must be >= 1, got {nprobe}")
    nlist = default_nlist(n) if nlist is None else int(nlist)
    if not 1 <= nlist <= n:
        raise ValueError(f"nlist must lie in [1, {n}] (number of items), got {nlist}")
    source = features.detach()

    def unit_rows(rows) -> np.ndarray:  # normalise chunk by chunk: no second N x d copy
        return np.ascontiguousarray(torch.nn.functional.normalize(source[rows].float().cpu(), dim=1).numpy())

    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = int(kmeans_iterations)
    index.cp.seed = int(seed)
    index.cp.spherical = True  # unit-norm centroids: cells match the inner-product metric
    index.cp.max_points_per_centroid = int(train_points_per_cell)
    index.cp.min_points_per_centroid = 1  # tiny catalogues: nlist is already capped at N // 39
    n_train = min(n, nlist * int(train_points_per_cell))
    sample = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))[:n_train].sort().values
    index.train(unit_rows(sample))
    index.nprobe = min(int(nprobe), nlist)
    # the cells a row is stored in (top-1) and probes as a query (top-nprobe) come from ONE quantizer
    # pass: index.add + index.search would run the N x nlist product twice
    probes = np.empty((n, index.nprobe), dtype=np.int64)
    for start in range(0, n, query_chunk):
        stop = min(start + query_chunk, n)
        chunk = unit_rows(slice(start, stop))
        probes[start:stop] = quantizer.search(chunk, index.nprobe)[1]
        add_preassigned(index, chunk, np.ascontiguousarray(probes[start:stop, 0]))

    out_idx = torch.full((n, k_eff), -1, dtype=torch.long)
    out_sim = torch.full((n, k_eff), -math.inf)
    for start in tqdm(range(0, n, query_chunk), desc="kNN faiss-ivf queries", disable=not show_progress):
        stop = min(start + query_chunk, n)
        sims, labels = search_preassigned(index, unit_rows(slice(start, stop)), k_eff + 1,  # +1: self comes back
                                          np.ascontiguousarray(probes[start:stop]))
        out_idx[start:stop], out_sim[start:stop] = _drop_self(torch.from_numpy(labels), torch.from_numpy(sims),
                                                              start, k_eff)
    return out_idx, out_sim


def _drop_self(labels: torch.Tensor, sims: torch.Tensor, start: int, k: int) -> tuple:
    """Remove the query's own id from each row of ``k + 1`` hits (else the last hit); pad to -1/-inf."""
    rows = labels.shape[0]
    own = torch.arange(start, start + rows).unsqueeze(1)
    drop = labels == own
    drop[:, -1] |= ~drop.any(dim=1)  # self not found: keep the first k hits
    labels = labels[~drop].view(rows, k)
    sims = sims[~drop].view(rows, k).float()
    missing = labels < 0  # fewer than k hits in the probed cells
    sims[missing] = -math.inf
    labels[missing] = -1
    return labels.long(), sims
