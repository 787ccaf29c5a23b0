"""Item-item kNN graphs from x_t / x_v (MSCRS section 3.3: text and image semantic graphs).

For every item i with a feature vector, keep the ``k`` most cosine-similar OTHER items
(paper code: k=20 ReDial, k=10 INSPIRED). Items flagged missing (no image) and zero
vectors take part neither as sources nor as neighbours (fixes the authors' all-ones
padding row, docs/model.md, defect 4). The directed kNN relation is symmetrised by
UNION: (i, j) is an edge when j is in i's top-k OR i is in j's top-k.

Weight rule: ``weight="cosine"`` gives the edge the cosine similarity of its endpoints,
which is the same from both directions, so the union needs no tie-break; edges whose
cosine is <= ``min_similarity`` (default 0) are dropped, because LightGCN's degree
normalisation needs non-negative weights. ``weight="binary"`` gives every kept edge 1.

Memory: similarities are computed in blocks (see :func:`topk_neighbours`); only one
block/tile and the running ``N x k`` result exist at once, never the N x N matrix, and
the input is neither copied nor normalised as a whole (N inverse norms scale each block).
``block_size`` defaults to what fits ``block_memory_mb``.

Methods (``method=``): ``"exact"`` is the blockwise build above, the reference, O(N^2 d)
time (float32 or bfloat16 products, on a GPU when one is present; measured times in
benchmarks/README.md#knn-graphs-knn_benchmarkpy); ``"cells"`` is the approximate all-pairs
search of :mod:`crslab_mscrs.graphs.knn_cells` (small k-means cells searched as dense
products, plain torch, about N d (N / cell_size + cell_size) flops); ``"faiss-ivf"`` is the
IVF-Flat search of :mod:`crslab_mscrs.graphs.knn_faiss` (needs ``faiss-cpu``, extra
``ann``; kept for comparison: its recall at 1e6 items is low, benchmarks/README.md).
``"auto"`` takes exact on a GPU and up to ``auto_exact_max_items`` (100k) items, cells above
on a CPU. Every method gives the same output format and invariants (self and missing items
excluded, union symmetrisation, memory O(N k) + blocks or index).
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional, Sequence

import torch

from crslab_mscrs.graphs.cooccurrence import Graph, index_dtype, sort_edges
from crslab_mscrs.graphs.knn_faiss import default_nlist
from crslab_mscrs.host_memory import release_free_memory


EXACT_PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}
BF16_SHORTLIST_MARGIN = 8  # bfloat16: extra candidates per row, re-scored in float32 at the end
DEFAULT_TILE_MEMORY_MB = 256.0  # exact build: similarity tile budget (block_memory_mb)
AUTO_BF16_MIN_ITEMS = 20000  # precision "auto": bf16 products from here on, on a CPU with native bf16 matmul
NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of bf16 dot-product instructions


@lru_cache(maxsize=None)
def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU lists a bf16 dot-product instruction (AVX512-BF16 or AMX-BF16) in
    ``cpuinfo`` (Linux x86); False where the file is absent or lists neither."""
    try:
        with open(cpuinfo) as handle:
            flags = next((line.split(":", 1)[1].split() for line in handle if line.startswith("flags")), [])
    except OSError:
        return False
    return any(flag in flags for flag in NATIVE_BF16_CPU_FLAGS)


def resolve_exact_precision(precision: str, n_items: int, device: torch.device,
                            native_bf16: Optional[bool] = None) -> str:
    """``"float32"`` or ``"bfloat16"`` for the exact build. ``"auto"`` takes bf16 products
    (re-scored in float32, :func:`topk_neighbours`) on a CPU with native bf16 matmul
    (:func:`cpu_has_native_bf16`, or ``native_bf16``) from :data:`AUTO_BF16_MIN_ITEMS` items on,
    where they are faster (benchmarks/README.md: 48.2 s against 67.3 s at 1e5 x 768 on 2
    cores, recall 1.0000); float32 below that, on other CPUs and on a GPU (not measured there)."""
    if precision != "auto":
        if precision not in EXACT_PRECISIONS:
            raise ValueError(f"precision must be one of {tuple(EXACT_PRECISIONS) + ('auto',)}, got {precision!r}")
        return precision
    if torch.device(device).type != "cpu" or n_items < AUTO_BF16_MIN_ITEMS:
        return "float32"
    return "bfloat16" if (cpu_has_native_bf16() if native_bf16 is None else native_bf16) else "float32"


def resolve_device(device: Optional[str], features: torch.Tensor) -> torch.device:
    """``device`` when given; else ``cuda`` when a GPU is present, else the features' device."""
    if device:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return features.device


def topk_neighbours(features: torch.Tensor, k: int, block_size: Optional[int] = None,
                    block_memory_mb: float = DEFAULT_TILE_MEMORY_MB, device: Optional[str] = None,
                    show_progress: bool = False, method: str = "tiles", precision: str = "float32") -> tuple:
    """Blockwise exact top-k cosine neighbours (self excluded) of every row.

    ``method="rows"``: one ``block x N`` similarity block per row block (N^2 d flops).
    ``method="tiles"`` (default): only tiles (I, J) with J >= I are multiplied; a tile
    updates the running top-k of the rows of I (with S) and of J (with S^T), halving the
    flops; memory is one ``block x block`` tile plus the ``N x k`` running result. Once a
    row's list is full, only the tile entries above its k-th best are merged (one comparison
    pass per direction, :func:`_update_pair`), so neither direction sorts whole tile rows.
    The input is not copied or normalised as a whole: each block is scaled by the rows'
    inverse norms (N floats). ``device``: where the products run (:func:`resolve_device`:
    a GPU when present); on another device than the features the input is copied there once.
    ``precision="bfloat16"`` multiplies in bfloat16 (4x the float32 rate on CPUs with
    AVX512-BF16 or AMX, and on GPUs), keeps ``k + 8`` candidates per row and re-scores them
    in float32, so similarities are float32 cosines; the neighbour SET may differ from the
    float32 one where bf16 rounding (~1e-3) reorders near-ties (recall in benchmarks/README.md).
    ``precision="auto"``: :func:`resolve_exact_precision`.
    Returns ``(indices LongTensor[N, k'], similarities FloatTensor[N, k'])`` with
    ``k' = min(k, N - 1)``, neighbours in descending similarity. Rows must be non-zero.
    """
    n = features.shape[0]
    k_eff = min(int(k), n - 1)
    if k_eff <= 0:
        return torch.zeros(n, 0, dtype=torch.long), torch.zeros(n, 0)
    dev = resolve_device(device, features)
    precision = resolve_exact_precision(precision, n, dev)
    x = features.detach()
    if x.device != dev:
        x = x.to(dev)
    inv_norm = inverse_norms(x, dev)
    dtype = EXACT_PRECISIONS[precision]
    k_short = k_eff if dtype == torch.float32 else min(n - 1, k_eff + BF16_SHORTLIST_MARGIN)
    if method == "rows":
        idx, sims = _topk_rows(x, inv_norm, k_short, block_size, block_memory_mb, show_progress, dtype)
    elif method == "tiles":
        idx, sims = _topk_tiles(x, inv_norm, k_short, block_size, block_memory_mb, show_progress, dtype)
    else:
        raise ValueError(f"method must be 'tiles' or 'rows', got {method!r}")
    if k_short != k_eff:
        idx, sims = _rescore(x, inv_norm, idx, k_eff)
    return idx.cpu(), sims.float().cpu()


def inverse_norms(x: torch.Tensor, device=None, chunk: int = 65536) -> torch.Tensor:
    """``1 / |x_i|`` of every row, float32 on ``device`` (default: x's), computed a chunk at a
    time so that the input is never copied or normalised as a whole."""
    inv = torch.empty(x.shape[0], device=device or x.device)
    for start in range(0, x.shape[0], chunk):
        inv[start:start + chunk] = 1.0 / x[start:start + chunk].float().norm(dim=1)
    return inv


def _unit_block(x, inv_norm, start, stop, dtype=torch.float32):
    """Rows ``start:stop`` scaled to unit norm, in ``dtype`` (a block-sized copy)."""
    return (x[start:stop].float() * inv_norm[start:stop].unsqueeze(1)).to(dtype)


def _rescore(x, inv_norm, idx, k, chunk: int = 256):
    """float32 cosines of the shortlisted neighbours ``idx`` [N, m]; the best ``k`` per row, descending.

    The candidates' raw rows are gathered a chunk at a time (256 rows x m x d floats stay in
    cache) and scaled after the product, so no scaled copy of the gathered rows is written."""
    n = idx.shape[0]
    out_idx = torch.empty(n, k, dtype=torch.long, device=idx.device)
    out_sim = torch.empty(n, k, device=idx.device)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        q = _unit_block(x, inv_norm, start, stop)
        cand = idx[start:stop]
        c = x.index_select(0, cand.flatten()).float().view(stop - start, cand.shape[1], -1)
        sims = torch.bmm(c, q.unsqueeze(2)).squeeze(2) * inv_norm[cand]
        vals, pos = torch.topk(sims, k, dim=1)
        out_idx[start:stop], out_sim[start:stop] = torch.gather(cand, 1, pos), vals
    return out_idx, out_sim


def _topk_rows(x, inv_norm, k_eff, block_size, block_memory_mb, show_progress, dtype=torch.float32):
    from tqdm.auto import tqdm

    n, dev = x.shape[0], x.device
    if block_size is None:
        block_size = max(1, int(block_memory_mb * 2**20 // (4 * n)))
    block_size = min(block_size, n)
    out_idx = torch.empty(n, k_eff, dtype=torch.long, device=dev)
    out_sim = torch.empty(n, k_eff, device=dev)
    for start in tqdm(range(0, n, block_size), desc="kNN blocks", disable=not show_progress):
        stop = min(start + block_size, n)
        xi = _unit_block(x, inv_norm, start, stop, dtype)
        sims = torch.cat([xi @ _unit_block(x, inv_norm, j0, min(j0 + block_size, n), dtype).T
                          for j0 in range(0, n, block_size)], dim=1)  # normalised block by block: no N x d copy
        rows = torch.arange(stop - start, device=dev)
        sims[rows, rows + start] = -math.inf
        values, indices = torch.topk(sims, k_eff, dim=1)
        out_idx[start:stop] = indices
        out_sim[start:stop] = values.float()
        del sims
    return out_idx, out_sim


def _merge(best_val, best_idx, new_val, new_idx, k):
    vals = torch.cat([best_val, new_val], dim=1)
    idx = torch.cat([best_idx, new_idx], dim=1)
    top_vals, pos = torch.topk(vals, k, dim=1)
    return top_vals, torch.gather(idx, 1, pos)


def _update(best_val, best_idx, tile, r0, c0, k):
    """Merge ``tile`` (rows r0.., columns c0..) into the running top-k of its rows, densely:
    only rows whose tile maximum beats their current k-th best are sorted."""
    rows = torch.nonzero(tile.amax(dim=1) > best_val[r0:r0 + tile.shape[0], -1]).flatten()
    if len(rows) == 0:
        return
    vals, cols = torch.topk(tile[rows], min(k, tile.shape[1]), dim=1)  # tile[rows]: a contiguous copy
    target = rows + r0
    best_val[target], best_idx[target] = _merge(best_val[target], best_idx[target], vals, cols + c0, k)


def _merge_candidates(best_val, best_idx, rows, vals, cols, r0, k):
    """Merge scattered candidates (``rows`` local to r0, values, global columns), each above its
    row's k-th best, into the running top-k: at most k per row, padded, one top-k per row."""
    order = torch.argsort(vals, descending=True)
    order = order[torch.argsort(rows[order], stable=True)]  # by row, best first within a row
    rows, vals, cols = rows[order], vals[order], cols[order]
    present, counts = torch.unique_consecutive(rows, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.repeat_interleave(torch.arange(len(present), device=rows.device), counts)
    pos = torch.arange(len(rows), device=rows.device) - starts[slot]
    keep = pos < k
    width = min(k, int(counts.max()))
    pad_val = torch.full((len(present), width), -math.inf, dtype=best_val.dtype, device=rows.device)
    pad_idx = torch.full((len(present), width), -1, dtype=best_idx.dtype, device=rows.device)
    pad_val[slot[keep], pos[keep]] = vals[keep]
    pad_idx[slot[keep], pos[keep]] = cols[keep]
    target = present + r0
    best_val[target], best_idx[target] = _merge(best_val[target], best_idx[target], pad_val, pad_idx, k)


def _update_pair(best_val, best_idx, tile, i0, j0, k):
    """Merge tile (I, J) into the top-k of the rows of I and, through its transpose, of J.

    Sparse where the running lists are full: an entry is a candidate only above its row's
    k-th best, and after a row's first tiles only about k / (tiles seen) entries per row and
    tile are (random order), so one comparison pass per direction over the contiguous tile
    and a merge of the few candidates replace a top-k over every row of the tile and of its
    strided transpose. A direction whose rows are not yet full, or with more than k candidates
    per row on average, takes the dense :func:`_update`.
    """
    m, n = tile.shape
    for rows_first, r0, c0, thr_shape in ((True, i0, j0, (m, 1)), (False, j0, i0, (1, n))):
        if not rows_first and i0 == j0:
            break
        thr = best_val[r0:r0 + (m if rows_first else n), -1]
        dense = bool(torch.isinf(thr).any())
        if not dense:
            mask = tile > thr.view(thr_shape)
            count = int(mask.count_nonzero())
            if count == 0:
                continue
            dense = count > k * thr.numel()
        if dense:
            _update(best_val, best_idx, tile if rows_first else tile.T, r0, c0, k)
            continue
        flat = mask.view(-1).nonzero().squeeze(1)  # one flat index per hit (cheaper than 2-d nonzero on CPUs)
        ti, tj = flat // n, flat % n
        vals = tile.view(-1)[flat]
        rows, cols = (ti, tj + c0) if rows_first else (tj, ti + c0)
        _merge_candidates(best_val, best_idx, rows, vals, cols, r0, k)


def tile_block_size(block_memory_mb: float, k: int) -> int:
    """Rows per tile of the symmetric kernel: a tile and its transpose's top-k buffers within the budget."""
    return max(k + 1, int(math.sqrt(block_memory_mb * 2**20 / 8)))


def _topk_tiles(x, inv_norm, k_eff, block_size, block_memory_mb, show_progress, dtype=torch.float32):
    from tqdm.auto import tqdm

    n, dev = x.shape[0], x.device
    if block_size is None:
        block_size = tile_block_size(block_memory_mb, k_eff)
    block_size = min(block_size, n)
    best_val = torch.full((n, k_eff), -math.inf, device=dev, dtype=dtype)
    best_idx = torch.full((n, k_eff), -1, dtype=torch.long, device=dev)
    starts = list(range(0, n, block_size))
    bar = tqdm(total=len(starts) * (len(starts) + 1) // 2, desc="kNN tiles", disable=not show_progress)
    for bi, i0 in enumerate(starts):
        i1 = min(i0 + block_size, n)
        xi = _unit_block(x, inv_norm, i0, i1, dtype)
        for j0 in starts[bi:]:
            j1 = min(j0 + block_size, n)
            tile = xi @ (xi if j0 == i0 else _unit_block(x, inv_norm, j0, j1, dtype)).T
            if i0 == j0:
                tile.fill_diagonal_(-math.inf)
            _update_pair(best_val, best_idx, tile, i0, j0, k_eff)
            bar.update(1)
            del tile
    bar.close()
    return best_idx, best_val.float()


AUTO_EXACT_MAX_ITEMS = 100000  # auto on a CPU: exact up to here (1e5 x 768: about 1 min on 2 cores), cells above
METHODS = ("auto", "exact", "cells", "faiss-ivf")


def resolve_method(method: str, n_items: int, auto_exact_max_items: int = AUTO_EXACT_MAX_ITEMS,
                   on_gpu: bool = False) -> str:
    """The method that runs for ``method`` in :data:`METHODS` and ``n_items`` rows.

    ``auto``: exact on a GPU (``on_gpu``: 1e6 x 768 is ~1.5e15 flops, seconds on a datacentre
    GPU) and for ``n_items <= auto_exact_max_items`` (the reference); cells above on a CPU.
    ``faiss-ivf`` without faiss: ImportError naming the extra.
    """
    if method not in METHODS:
        raise ValueError(f"kNN method must be one of {METHODS}, got {method!r}")
    if method == "faiss-ivf":
        from crslab_mscrs.graphs.knn_faiss import import_faiss

        import_faiss()
        return method
    if method == "auto":
        return "exact" if n_items <= auto_exact_max_items or on_gpu else "cells"
    return method


def cells_settings(config: Optional[dict] = None):
    """:class:`~crslab_mscrs.graphs.knn_cells.CellsSettings` from the features config's
    ``graphs.knn_cells`` mapping (unknown keys: ValueError naming them)."""
    from dataclasses import fields

    from crslab_mscrs.graphs.knn_cells import CellsSettings

    config = dict(config or {})
    known = {f.name for f in fields(CellsSettings)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"graphs.knn_cells: unknown keys {unknown}; known: {sorted(known)}")
    return CellsSettings(**config)


def nearest_neighbours(features: torch.Tensor, k: int, method: str = "auto", nprobe: int = 8,
                       nlist: Optional[int] = None, auto_exact_max_items: int = AUTO_EXACT_MAX_ITEMS,
                       exact_kernel: str = "tiles", block_size: Optional[int] = None,
                       block_memory_mb: float = DEFAULT_TILE_MEMORY_MB, device: Optional[str] = None,
                       show_progress: bool = False, exact_precision: str = "float32", cells=None) -> tuple:
    """Top-k cosine neighbours of every (non-zero) row by the chosen method.

    ``device``: where the exact and cells methods multiply (:func:`resolve_device`: a GPU when
    present). ``cells``: :class:`~crslab_mscrs.graphs.knn_cells.CellsSettings` (None: defaults).
    Returns ``(indices [N, k'], similarities [N, k'], method_used)``; approximate rows may be
    padded with index -1 / similarity -inf (see :mod:`crslab_mscrs.graphs.knn_faiss`).
    """
    on_gpu = resolve_device(device, features).type == "cuda"
    used = resolve_method(method, features.shape[0], auto_exact_max_items, on_gpu)
    if used == "exact":
        idx, sims = topk_neighbours(features, k, block_size, block_memory_mb, device, show_progress, exact_kernel,
                                    exact_precision)
    elif used == "cells":
        from crslab_mscrs.graphs.knn_cells import cells_topk

        idx, sims = cells_topk(features, k, cells, str(resolve_device(device, features)), show_progress)
    else:
        from crslab_mscrs.graphs.knn_faiss import faiss_ivf_topk

        idx, sims = faiss_ivf_topk(features, k, nprobe=nprobe, nlist=nlist, show_progress=show_progress)
    return idx, sims, used


UNION_CHUNK_ENTRIES = 1 << 17  # directed entries per union chunk: ~25 MB of temporaries
UNION_SCAN_ENTRIES = 1 << 20  # entries per block of the scan for hits pointing into a chunk
UNION_GROUP = 8  # chunks whose reversed hits one scan collects (~12 bytes per hit: ~6 MB)


def union_graph(idx: torch.Tensor, sims: torch.Tensor, row_ids: torch.Tensor, num_nodes: int,
                weight: str = "cosine", min_similarity: float = 0.0,
                chunk_entries: int = UNION_CHUNK_ENTRIES) -> tuple:
    """Symmetric edge list from directed top-k lists (union; cosine weights are symmetric).

    ``idx``/``sims``: ``[M, k]`` neighbours as row positions (any integer dtype; -1 = no hit,
    skipped); ``row_ids``: entity id of each of the M rows. Returns ``(edge_index [2, E],
    edge_weight [E], info)`` sorted by (source, target) as :func:`sort_edges`; ``edge_index``
    is int32 when ``num_nodes`` fits (int64 otherwise; :func:`~crslab_mscrs.graphs.storage.load_graph`
    gives int64); ``info`` counts the dropped directed entries. A pair found from both ends keeps
    the larger of its two (float-rounded) cosines.

    Memory: the output and one chunk (no copy of the lists). The sources are taken in chunks
    of rows in entity id order; a chunk's edges are its rows' own hits plus the hits of any
    row that point into the chunk, deduplicated by one sort of about ``chunk_entries`` keys.
    The hits pointing into a group of :data:`UNION_GROUP` chunks are collected by one scan of
    the lists. A first pass counts each chunk's edges, so that the output is allocated once
    at its final size and filled by the second.
    """
    m, k = idx.shape
    n = int(num_nodes)
    row_ids = torch.as_tensor(row_ids, dtype=torch.long)
    release_free_memory()  # what the search freed
    cosine = weight == "cosine"
    scan_rows = max(1, UNION_SCAN_ENTRIES // max(1, k))
    # rank space: rows in entity id order, so (source rank, target rank) order = (source id, target id) order
    order = torch.argsort(row_ids)
    sorted_ids = row_ids[order]
    identity = bool(torch.equal(order, torch.arange(m)))
    rank = None if identity else torch.empty(m, dtype=torch.long).scatter_(0, order, torch.arange(m))

    def kept(rows) -> tuple:
        """``(target ranks, kept mask)`` of the hits of ``rows`` (no copy when ids are in order)."""
        block = idx[rows]
        keep = block >= 0
        if cosine:
            keep &= sims[rows] > min_similarity
        return (block if identity else rank[block.long().clamp(min=0)]), keep

    scan = []  # (first row, last row, min, max target rank) per scan block: blocks that miss a chunk are skipped
    found = kept_hits = 0
    for r0 in range(0, m, scan_rows):
        r1 = min(m, r0 + scan_rows)
        found += int((idx[r0:r1] >= 0).sum())  # approximate search may return fewer than k hits
        target, keep = kept(slice(r0, r1))
        kept_hits += int(keep.sum())
        if bool(keep.any()):
            scan.append((r0, r1, int(target[keep].min()), int(target[keep].max())))
        del target, keep
    info = {"directed_edges_dropped_by_min_similarity": found - kept_hits, "directed_hits_missing": m * k - found}

    small = index_dtype(m)

    def incoming(a: int, b: int) -> tuple:
        """``(source ranks, target ranks, weights)`` of the reversed hits pointing into ranks ``a..b-1``
        (one scan of the lists for a range of :data:`UNION_GROUP` chunks)."""
        src, dst, wts = [torch.zeros(0, dtype=small)], [torch.zeros(0, dtype=small)], [torch.zeros(0)]
        for r0, r1, low, high in scan:
            if high < a or low >= b:
                continue
            target, keep = kept(slice(r0, r1))
            keep &= (target >= a) & (target < b)
            if bool(keep.any()):
                row = torch.nonzero(keep)[:, 0] + r0
                src.append(target[keep].to(small))
                dst.append((row if identity else rank[row]).to(small))
                wts.append(sims[r0:r1][keep].float())
            del target, keep
        return torch.cat(src), torch.cat(dst), torch.cat(wts)

    def chunk_edges(a: int, b: int, into: tuple) -> tuple:
        """Unique ``(source * m + target, weight)`` of the sources ranked ``a..b-1``, sorted."""
        pos = slice(a, b) if identity else order[a:b]
        target, keep = kept(pos)
        codes = [(torch.nonzero(keep)[:, 0] + a) * m + target[keep]]  # (source, target) as source * m + target
        wts = [sims[pos][keep].float()]
        del target, keep
        in_src, in_dst, in_w = into
        sel = (in_src >= a) & (in_src < b)
        codes.append(in_src[sel].long() * m + in_dst[sel])
        wts.append(in_w[sel])
        del sel
        code, w = torch.cat(codes), torch.cat(wts)
        del codes, wts
        code, perm = torch.sort(code)
        w = w[perm]
        del perm
        first = torch.ones(len(code), dtype=torch.bool)
        first[1:] = code[1:] != code[:-1]
        unique = code[first]
        del code
        if cosine:
            w = torch.full((len(unique),), -math.inf).scatter_reduce(0, torch.cumsum(first, 0) - 1, w, reduce="amax")
        return unique, w

    def chunks():
        """Every chunk's edges in source order (the reversed hits of a group of chunks found by one scan)."""
        rows = max(1, int(chunk_entries) // max(1, 2 * k))
        for g0 in range(0, m, rows * UNION_GROUP):
            g1 = min(m, g0 + rows * UNION_GROUP)
            into = incoming(g0, g1)
            for a in range(g0, g1, rows):
                yield chunk_edges(a, min(g1, a + rows), into)
            del into

    total = sum(len(code) for code, _ in chunks())  # first pass: the output's size
    release_free_memory()  # the first pass's freed chunks, before the output is allocated
    edge_index = torch.empty(2, total, dtype=index_dtype(n))
    edge_weight = torch.empty(total)
    offset = 0
    for code, uw in chunks():
        stop = offset + len(code)
        edge_index[0, offset:stop] = sorted_ids[torch.div(code, m, rounding_mode="floor")]
        edge_index[1, offset:stop] = sorted_ids[code % m]
        edge_weight[offset:stop] = uw if cosine else 1.0
        offset = stop
        del code, uw
    return edge_index, edge_weight, info


def build_knn_graph(features: torch.Tensor, item_ids: Sequence[int], num_nodes: int, k: int,
                    missing_mask: Optional[torch.Tensor] = None, weight: str = "cosine",
                    min_similarity: float = 0.0, block_size: Optional[int] = None,
                    block_memory_mb: float = DEFAULT_TILE_MEMORY_MB, device: Optional[str] = None,
                    show_progress: bool = True, method: str = "auto", nprobe: int = 8,
                    nlist: Optional[int] = None, auto_exact_max_items: int = AUTO_EXACT_MAX_ITEMS,
                    exact_kernel: str = "tiles", exact_precision: str = "float32", cells=None) -> Graph:
    """Symmetric kNN graph over items, in the entity id space (see module docstring).

    Args:
        features: ``[N, d]`` item vectors, row i belongs to entity ``item_ids[i]``.
        item_ids: entity ids of the rows (all in ``[0, num_nodes)``, unique).
        num_nodes: size of the entity id space (``n_entity``).
        k: neighbours per item before symmetrisation.
        missing_mask: ``[N]`` bool, True = no feature for this item (excluded).
        weight: ``"cosine"`` or ``"binary"``.
        min_similarity: cosine mode only: drop edges with similarity <= this.
        method: ``"exact"`` (blockwise, the reference), ``"cells"`` (approximate, k-means cells),
            ``"faiss-ivf"`` (approximate, needs faiss) or ``"auto"`` (see :func:`resolve_method`);
            decided on the number of USED items.
        cells: :class:`~crslab_mscrs.graphs.knn_cells.CellsSettings` of the cells method
            (None: defaults; :func:`cells_settings` reads them from a config mapping).
        nprobe, nlist: faiss-ivf cells visited per query / number of cells (default ~4 sqrt(N)).
        exact_kernel: ``"tiles"`` or ``"rows"`` (see :func:`topk_neighbours`).
        exact_precision: ``"float32"``, ``"bfloat16"`` products (see :func:`topk_neighbours`) or
            ``"auto"`` (:func:`resolve_exact_precision`); the graph records the one used.
        device: where the exact products run (default: a GPU when present, else the CPU).
    """
    if weight not in ("cosine", "binary"):
        raise ValueError(f"weight must be 'cosine' or 'binary', got {weight!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ids = torch.as_tensor(list(item_ids), dtype=torch.long)
    if features.dim() != 2 or features.shape[0] != len(ids):
        raise ValueError(f"features {tuple(features.shape)} do not match {len(ids)} item ids")
    if len(ids) and (ids.min() < 0 or ids.max() >= num_nodes):
        raise ValueError(f"item ids must lie in [0, {num_nodes}); got range [{int(ids.min())}, {int(ids.max())}]")
    if len(torch.unique(ids)) != len(ids):
        raise ValueError("item ids are not unique")
    zero = _zero_rows(features)  # raises on NaN / inf
    missing = torch.zeros(len(ids), dtype=torch.bool) if missing_mask is None else missing_mask.bool().clone()
    if missing.shape != (len(ids),):
        raise ValueError(f"missing_mask shape {tuple(missing.shape)} != ({len(ids)},)")
    valid = torch.nonzero(~missing & ~zero).flatten()

    rows = features if len(valid) == len(ids) else features[valid]  # no copy when every item is used
    idx, sims, used = nearest_neighbours(rows, k, method, nprobe, nlist, auto_exact_max_items,
                                         exact_kernel, block_size, block_memory_mb, device, show_progress,
                                         exact_precision, cells)
    edge_index, edge_weight, info = union_graph(idx, sims, ids[valid], num_nodes, weight, min_similarity)
    n_items = len(ids)
    stats = {"items": n_items, "items_used": int(len(valid)), "items_missing": int(missing.sum()),
             "zero_vectors": int((zero & ~missing).sum()), "k": int(k), "k_effective": int(idx.shape[1]),
             "method": used, "method_requested": method,
             "exact_kernel": exact_kernel if used == "exact" else None,
             "exact_precision": resolve_exact_precision(exact_precision, len(valid), resolve_device(device, features))
             if used == "exact" else None,
             "exact_precision_requested": exact_precision if used == "exact" else None,
             "device": str(resolve_device(device, features)) if used in ("exact", "cells") else "cpu",
             "nprobe": nprobe if used == "faiss-ivf" else None,
             "nlist": (nlist or default_nlist(len(valid))) if used == "faiss-ivf" else None,
             "cells": _cells_stats(cells) if used == "cells" else None,
             "weight": weight, "min_similarity": min_similarity if weight == "cosine" else None,
             **info, "symmetrisation": "union"}
    return Graph(edge_index, edge_weight, int(num_nodes), stats)


def _zero_rows(features: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """Bool mask of the all-zero rows; ValueError on NaN or inf. A chunk at a time: an
    elementwise check of the whole input would allocate N x d bools (0.7 GB at 1e6 x 768)."""
    zero = torch.empty(features.shape[0], dtype=torch.bool)
    for start in range(0, features.shape[0], chunk):
        part = features[start:start + chunk]
        if not bool(torch.isfinite(part).all()):
            bad = start + int(torch.nonzero(~torch.isfinite(part).all(dim=1))[0, 0])
            raise ValueError(f"features contain NaN or inf (first in row {bad})")
        zero[start:start + chunk] = (part == 0).all(dim=1)
    return zero


def _cells_stats(cells) -> dict:
    from dataclasses import asdict

    from crslab_mscrs.graphs.knn_cells import CellsSettings

    return asdict(cells or CellsSettings())
