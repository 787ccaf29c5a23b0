"""Approximate all-pairs top-k cosine neighbours by small k-means cells, in torch (no index library).

The catalogue-scale kNN build of :func:`crslab_mscrs.graphs.knn.build_knn_graph`
(``method="cells"``; docs/data.md#large-catalogues). An inverted file (IVF: Jegou et al.,
"Product quantization for nearest neighbor search", TPAMI 2011, section 4) specialised to
the all-pairs case, where every indexed item is also a query:

1. **Cells.** Spherical k-means (Dhillon and Modha, Machine Learning 2001) with
   ``N / cell_size`` centroids, trained on a seeded sample of ``train_per_cell`` rows per
   cell, products in bfloat16. Random seeding leaves about a third of the natural groups
   without a centroid when there are about as many groups as cells, and Lloyd iterations
   never repair that (the unseeded groups' rows stay scattered over other cells). So, as in
   Fritzke's k-means-u* ("non-local jumps", arXiv 1706.09059), the centroids of least
   *utility* jump to the worst-served rows: utility of centroid j = sum over its rows of
   (similarity to j - similarity to their second-best centroid), the loss if j were removed.
   A twin centroid (two seeds in one group) has a utility near zero; a jump moves it to a
   row whose group has no centroid. Jumps happen in the first ``iterations - 2`` iterations,
   for the centroids whose utility is below ``jump_utility_ratio`` x the median.
2. **Lists.** Every row goes to the cell of its most similar centroid, and also to its
   second cell when that similarity is at least ``spill_ratio`` x the first (a row on the
   border of two cells is searched in both; "spilling", e.g. SOAR, Sun et al., NeurIPS 2023).
3. **Search per cell.** The rows of a cell are compared with each other in ONE float32
   matrix product (a cell is both the queries and the database), and every row keeps its
   ``k`` best over the cells it is in. Searching per cell instead of per query turns the
   search into small dense products and reads each row once per list it is in.

Cost: k-means ``iterations x n_train x nlist x d`` plus one assignment ``N x nlist x d``
(bfloat16), and the search ``sum_cells |cell|^2 d`` (float32): about ``N d (N / cell_size +
cell_size)``, against ``N^2 d`` for the exact build. Memory beyond the input (which is
neither copied nor normalised as a whole: N inverse norms scale each gathered block): the
bfloat16 training sample, the centroids, one assignment chunk, the candidate lists (N x candidates int32) and the
``N x k`` result (int32 indices).

The similarities returned are float32 cosines of the pairs found; the neighbour SET is
approximate: recall@k against the exact build is measured by ``benchmarks/knn_benchmark.py
--methods cells`` (benchmarks/README.md#knn-graphs-knn_benchmarkpy). Rows whose cells hold
fewer than ``k'`` other rows are padded with index ``-1`` / similarity ``-inf``, like the
faiss method (callers drop those entries).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Optional

import torch

from crslab_mscrs.graphs.cooccurrence import index_dtype
from crslab_mscrs.graphs.knn import inverse_norms

PRECISIONS = {"bfloat16": torch.bfloat16, "float32": torch.float32}


@dataclass(frozen=True)
class CellsSettings:
    """Parameters of :func:`cells_topk` (config keys ``knn_cells_*`` of the features job)."""

    cell_size: int = 40           # rows per k-means cell on average: nlist = N / cell_size (~2k for k = 20)
    train_per_cell: int = 4       # k-means trains on min(N, nlist x this) sampled rows
    iterations: int = 6           # k-means iterations (jumps in all but the last two)
    jump_utility_ratio: float = 0.25  # centroids with utility < this x the median jump
    spill_ratio: float = 0.7      # a row also joins its 2nd cell when sim2 >= this x sim1 (benchmarks/README.md: 0.85 -> 0.7)
    candidates: int = 8           # cells per row kept from the first assignment, re-ranked after the full-data update
    precision: str = "bfloat16"   # products of the k-means and of the assignment
    seed: int = 0                 # sample, seeding and jump choices

    def __post_init__(self):
        if self.cell_size < 1 or self.train_per_cell < 1 or self.iterations < 1:
            raise ValueError(f"cell_size, train_per_cell and iterations must be >= 1, got {self}")
        if not 0.0 <= self.jump_utility_ratio <= 1.0:
            raise ValueError(f"jump_utility_ratio must lie in [0, 1], got {self.jump_utility_ratio}")
        if not 0.0 < self.spill_ratio <= 1.0:
            raise ValueError(f"spill_ratio must lie in (0, 1] (1 = only exact ties), got {self.spill_ratio}")
        if self.candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {self.candidates}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {self.precision!r}")


def _unit_rows(x: torch.Tensor, inv_norm: torch.Tensor, rows: torch.Tensor, device, dtype=torch.float32,
               chunk: int = 16384):
    """Unit copies of ``x[rows]`` on ``device`` in ``dtype`` (the input is untouched), gathered
    ``chunk`` rows at a time so that a large bfloat16 sample never exists in float32 as a whole."""
    if len(rows) <= chunk:
        return (x[rows].float() * inv_norm[rows].unsqueeze(1)).to(device=device, dtype=dtype)
    out = torch.empty(len(rows), x.shape[1], device=device, dtype=dtype)
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        out[start:start + len(part)] = (x[part].float() * inv_norm[part].unsqueeze(1)).to(device=device, dtype=dtype)
    return out


def _normalise_(rows: torch.Tensor) -> torch.Tensor:
    """``rows`` scaled to unit norm in place (zero rows stay zero), as ``F.normalize`` without a copy."""
    return rows.div_(rows.norm(dim=1, keepdim=True).clamp(min=1e-12))


def _top2(x_unit: torch.Tensor, centroids: torch.Tensor, chunk: int = 1024) -> tuple:
    """``(sims [n, 2], cells [n, 2])``: the two most similar centroids of every unit row."""
    n = x_unit.shape[0]
    p = min(2, centroids.shape[0])
    sims = torch.full((n, 2), -math.inf, device=x_unit.device)
    cells = torch.full((n, 2), -1, dtype=torch.long, device=x_unit.device)
    c_t = centroids.to(x_unit.dtype).T.contiguous()
    for start in range(0, n, chunk):
        v, i = torch.topk(x_unit[start:start + chunk] @ c_t, p, dim=1)
        sims[start:start + chunk, :p], cells[start:start + chunk, :p] = v.float(), i
    return sims, cells


def _centroid_sums(x_unit: torch.Tensor, assign: torch.Tensor, n_cells: int, chunk: int = 16384) -> torch.Tensor:
    sums = torch.zeros(n_cells, x_unit.shape[1], device=x_unit.device)
    for start in range(0, x_unit.shape[0], chunk):
        sums.index_add_(0, assign[start:start + chunk], x_unit[start:start + chunk].float())
    return sums


def _leave_one_out(x_unit, sums, assign, counts, chunk: int = 16384) -> torch.Tensor:
    """Cosine of every row with its cell's centroid computed WITHOUT that row: ``x.(S - x) / |S - x|``.

    A centroid trained on a few rows is biased toward each of them (the mean of m random unit
    vectors has cosine ~ 1/sqrt(m) with each), which makes cells of unrelated rows look well
    served; leaving the row out removes that bias. A row alone in its cell scores -1.
    """
    out = torch.empty(x_unit.shape[0], device=x_unit.device)
    sq = (sums * sums).sum(dim=1)
    for start in range(0, x_unit.shape[0], chunk):
        a = assign[start:start + chunk]
        xb = x_unit[start:start + chunk].float()
        dot = (xb * sums[a]).sum(dim=1)
        self_sq = (xb * xb).sum(dim=1)
        rest = (sq[a] - 2 * dot + self_sq).clamp(min=1e-12).sqrt()
        out[start:start + chunk] = torch.where(counts[a] > 1, (dot - self_sq) / rest, torch.full_like(dot, -1.0))
    return out


def train_cells(sample_unit: torch.Tensor, n_cells: int, settings: CellsSettings,
                generator: torch.Generator) -> torch.Tensor:
    """Spherical k-means with utility jumps (module docstring, step 1) -> unit centroids ``[c, d]``."""
    n = sample_unit.shape[0]
    c = max(1, min(int(n_cells), n))
    dev = sample_unit.device
    centroids = sample_unit[torch.randperm(n, generator=generator)[:c].to(dev)].float()
    for it in range(settings.iterations):
        sims, cells = _top2(sample_unit, centroids)
        assign = cells[:, 0]
        counts = torch.bincount(assign, minlength=c)
        del centroids  # replaced by the normalised sums, in place (one c x d buffer, not three)
        sums = _centroid_sums(sample_unit, assign, c)
        jump = it < settings.iterations - 2 and c > 1
        served = _leave_one_out(sample_unit, sums, assign, counts) if jump else sims[:, 0]
        centroids = _normalise_(sums)
        del sums
        empty = torch.nonzero(counts == 0).flatten()
        jumpers = empty
        if jump:
            second = torch.where(torch.isfinite(sims[:, 1]), sims[:, 1], sims[:, 0])
            utility = torch.zeros(c, device=dev).index_add_(0, assign, served - second)
            used = counts > 0
            median = utility[used].median()
            if median > 0:
                weak = torch.nonzero(used & (utility < settings.jump_utility_ratio * median)).flatten()
                jumpers = torch.cat([empty, weak])
        if len(jumpers):
            # to the worst-served rows (lowest leave-one-out similarity), drawn without repeats
            pool = torch.argsort(served)[:max(len(jumpers), n // 4)]
            pick = pool[torch.randperm(len(pool), generator=generator)[:len(jumpers)].to(dev)]
            centroids[jumpers[:len(pick)]] = sample_unit[pick].float()
    return centroids


def _merge_unique(best_val, best_idx, new_val, new_idx, k):
    """Running top-k merge where ``new`` may repeat neighbours already kept (a row in two cells)."""
    vals = torch.cat([best_val, new_val], dim=1)
    idx = torch.cat([best_idx, new_idx], dim=1)
    order = torch.argsort(idx, dim=1, stable=True)
    sorted_idx = torch.gather(idx, 1, order)
    repeat = torch.zeros_like(sorted_idx, dtype=torch.bool)
    repeat[:, 1:] = (sorted_idx[:, 1:] == sorted_idx[:, :-1]) & (sorted_idx[:, 1:] >= 0)
    vals = vals.scatter(1, order, torch.where(repeat, torch.full_like(vals, -math.inf), torch.gather(vals, 1, order)))
    top, pos = torch.topk(vals, k, dim=1)
    return top, torch.where(torch.isfinite(top), torch.gather(idx, 1, pos), torch.full_like(pos, -1))


def cells_topk(features: torch.Tensor, k: int, settings: Optional[CellsSettings] = None,
               device: Optional[str] = None, show_progress: bool = False) -> tuple:
    """Approximate top-k cosine neighbours (self excluded) of every row (see module docstring).

    Args:
        features: ``[N, d]`` non-zero rows (not modified, not copied as a whole).
        k: neighbours per row; ``k' = min(k, N - 1)``.
        settings: :class:`CellsSettings` (defaults when None).
        device: where the products run (default: the features' device; ``"cuda"`` works).
    Returns ``(indices [N, k'], similarities FloatTensor[N, k'])``, descending, on the CPU; the
    indices are int32 (int64 above 2^31 rows), half the memory of the ``N x k`` result.
    """
    settings = settings or CellsSettings()
    n = features.shape[0]
    k_eff = min(int(k), n - 1)
    if k_eff <= 0:
        return torch.zeros(n, 0, dtype=torch.long), torch.zeros(n, 0)
    cells = CellAssignment.build(features, settings, device, show_progress)
    first, second = cells.lists(settings.spill_ratio)
    return search_cells(cells, first, second, k_eff, show_progress)


@dataclass
class CellAssignment:
    """Steps 1-2 of the module docstring before spilling: every row's two best cells.

    Attributes:
        x, inv_norm: the input rows (untouched) and their inverse norms.
        device: where the products run.
        n_cells: number of k-means cells.
        sims: ``[N, 2]`` float32 cosines of every row with its best and second-best centroid
            (the centroids after the full-data update; -inf where there is no second).
        cells: ``[N, 2]`` those cells (-1: none).
    """

    x: torch.Tensor
    inv_norm: torch.Tensor
    device: torch.device
    n_cells: int
    sims: torch.Tensor
    cells: torch.Tensor

    @classmethod
    def build(cls, features: torch.Tensor, settings: CellsSettings, device: Optional[str] = None,
              show_progress: bool = False) -> "CellAssignment":
        """Train the cells (k-means in ``settings.precision``), assign every row to its
        ``candidates`` best, update the centroids from all rows and re-rank in float32."""
        from tqdm.auto import tqdm

        n = features.shape[0]
        dev = torch.device(device) if device else features.device
        dtype = PRECISIONS[settings.precision]
        x = features.detach()
        inv_norm = inverse_norms(x)
        generator = torch.Generator().manual_seed(int(settings.seed))
        n_cells = max(1, min(n, int(round(n / settings.cell_size))))
        n_train = min(n, n_cells * settings.train_per_cell)
        sample = torch.randperm(n, generator=generator)[:n_train].sort().values.to(x.device)
        d = x.shape[1]
        started = time.perf_counter()
        centroids = train_cells(_unit_rows(x, inv_norm, sample, dev, dtype), n_cells, settings, generator)
        n_cells = centroids.shape[0]
        if show_progress:
            tqdm.write(f"kNN cells: k-means of {n_cells} cells on {n_train} rows in {time.perf_counter() - started:.1f} s")

        # pass 1: the `candidates` most similar trained centroids of every row (products in `dtype`);
        # the centroids are then recomputed from ALL rows (one Lloyd step on the full data) and
        # pass 2 re-ranks each row's candidates against them in float32
        m = min(settings.candidates, n_cells)
        cand = torch.empty(n, m, dtype=torch.int32)
        sums = torch.zeros(n_cells, d, device=dev)
        c_t = centroids.to(dtype).T.contiguous()
        del centroids  # the float32 centroids are recomputed from all rows below
        chunk = 1024  # rows per assignment block: the block x nlist product is the largest buffer
        for start in tqdm(range(0, n, chunk), desc="kNN cells: assign", disable=not show_progress):
            rows = torch.arange(start, min(start + chunk, n), device=x.device)
            block = _unit_rows(x, inv_norm, rows, dev)
            top = torch.topk(block.to(dtype) @ c_t, m, dim=1).indices
            sums.index_add_(0, top[:, 0], block)
            cand[start:start + len(rows)] = top.to(torch.int32).cpu()
        del c_t
        centroids = _normalise_(sums)  # a cell no row chose first: zero, never best
        del sums
        best_sims = torch.full((n, 2), -math.inf)
        best_cells = torch.full((n, 2), -1, dtype=torch.long)
        chunk = 2048  # the gathered candidate centroids: chunk x candidates x d floats
        for start in tqdm(range(0, n, chunk), desc="kNN cells: refine", disable=not show_progress):
            rows = torch.arange(start, min(start + chunk, n), device=x.device)
            block = _unit_rows(x, inv_norm, rows, dev)
            c = cand[start:start + len(rows)].to(device=dev, dtype=torch.long)
            sims = torch.einsum("rd,rmd->rm", block, centroids[c])
            v, pos = torch.topk(sims, min(2, m), dim=1)
            best_sims[start:start + len(rows), :v.shape[1]] = v.cpu()
            best_cells[start:start + len(rows), :v.shape[1]] = torch.gather(c, 1, pos).cpu()
        return cls(x, inv_norm, dev, n_cells, best_sims, best_cells)

    def lists(self, spill_ratio: float) -> tuple:
        """``(first [N], second [N])`` cells of every row; ``second`` is -1 unless the row's
        second similarity is at least ``spill_ratio`` x its first (module docstring, step 2)."""
        spill = (self.cells[:, 1] >= 0) & (self.sims[:, 1] >= spill_ratio * self.sims[:, 0])
        return self.cells[:, 0].clone(), torch.where(spill, self.cells[:, 1], torch.full_like(self.cells[:, 1], -1))


def search_cells(cells: CellAssignment, first: torch.Tensor, second: torch.Tensor, k_eff: int,
                 show_progress: bool = False) -> tuple:
    """Step 3 of the module docstring: the rows of every cell against each other, in float32;
    each row keeps its ``k_eff`` best over its cells. Returns ``(indices, similarities)``."""
    from tqdm.auto import tqdm

    n, n_cells, x, inv_norm, dev = first.shape[0], cells.n_cells, cells.x, cells.inv_norm, cells.device
    spilled = torch.nonzero(second >= 0).flatten()
    entry_row = torch.cat([torch.arange(n), spilled])
    entry_cell = torch.cat([first, second[spilled]])
    del spilled
    order = torch.argsort(entry_cell, stable=True)
    members_all = entry_row[order]
    offsets = torch.zeros(n_cells + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(torch.bincount(entry_cell, minlength=n_cells), 0)
    del entry_row, entry_cell, order
    offsets = offsets.tolist()

    best_idx = torch.full((n, k_eff), -1, dtype=index_dtype(n))  # int32: half the N x k memory
    best_val = torch.full((n, k_eff), -math.inf)
    for cell in tqdm(range(n_cells), desc="kNN cells: search", disable=not show_progress):
        members = members_all[offsets[cell]:offsets[cell + 1]]
        kk = min(k_eff, len(members) - 1)
        if kk <= 0:
            continue
        q = _unit_rows(x, inv_norm, members.to(x.device), dev)
        tile = q @ q.T
        tile.fill_diagonal_(-math.inf)
        vals, pos = torch.topk(tile, kk, dim=1)
        vals, found = vals.cpu(), members[pos.cpu()].to(best_idx.dtype)
        if kk < k_eff:
            pad = k_eff - kk
            vals = torch.cat([vals, torch.full((len(members), pad), -math.inf)], dim=1)
            found = torch.cat([found, torch.full((len(members), pad), -1, dtype=found.dtype)], dim=1)
        fresh = best_idx[members, 0] < 0  # first cell of these rows: no merge needed
        if bool(fresh.all()):
            best_val[members], best_idx[members] = vals, found
        else:
            top, top_idx = _merge_unique(best_val[members], best_idx[members], vals, found, k_eff)
            best_val[members], best_idx[members] = top, top_idx.to(best_idx.dtype)
    return best_idx, best_val
