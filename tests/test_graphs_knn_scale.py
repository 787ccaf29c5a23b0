"""Exact kNN at scale: bfloat16 products re-scored in float32, no whole-input copy, device selection, config key."""
import pytest
import torch

from crslab_mscrs import config as cfg
from crslab_mscrs.graphs import knn
from crslab_mscrs.graphs.knn import build_knn_graph, nearest_neighbours, resolve_device, resolve_method, topk_neighbours


def _clustered(n=600, dim=32, clusters=12, seed=0):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, dim, generator=generator) * 3
    labels = torch.randint(0, clusters, (n,), generator=generator)
    return centres[labels] + torch.randn(n, dim, generator=generator)


@pytest.mark.parametrize("kernel", ["tiles", "rows"])
def test_bfloat16_matches_float32_and_returns_float32_cosines(kernel):
    x = _clustered(500)
    ref_idx, ref_sim = topk_neighbours(x, 10, block_size=128, method=kernel)
    idx, sim = topk_neighbours(x, 10, block_size=128, method=kernel, precision="bfloat16")
    assert idx.shape == (500, 10) and sim.dtype == torch.float32
    recall = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(idx, ref_idx)) / ref_idx.numel()
    assert recall >= 0.99, recall
    xn = torch.nn.functional.normalize(x, dim=1)
    true_cos = (xn.unsqueeze(1) * xn[idx]).sum(-1)
    assert torch.allclose(sim, true_cos, atol=1e-5)  # re-scored in float32, not bf16 values
    assert torch.all(sim[:, :-1] >= sim[:, 1:]) and not torch.any(idx == torch.arange(500).unsqueeze(1))


def test_float32_kernels_agree_with_a_dense_reference():
    x = _clustered(300, seed=4) * torch.rand(300, 1) * 5  # rows of different norms: cosine, not dot product
    xn = torch.nn.functional.normalize(x, dim=1)
    dense = xn @ xn.T
    dense.fill_diagonal_(-float("inf"))
    ref_sim, ref_idx = torch.topk(dense, 7, dim=1)
    for kernel in ("tiles", "rows"):
        idx, sim = topk_neighbours(x, 7, block_size=64, method=kernel)
        assert torch.allclose(sim, ref_sim, atol=1e-5)
        assert (idx == ref_idx).float().mean() > 0.99  # up to float ties


@pytest.mark.parametrize("data", ["clustered", "duplicates", "sorted"])
def test_tiles_merge_sparse_candidates_and_fall_back_to_dense_updates(monkeypatch, data):
    """Full running lists take candidates above their k-th best (sparse); a block's first tile,
    and a tile with more than k candidates per row, take the dense top-k. Both give the dense
    reference, on duplicate rows (ties) and on rows whose later tiles are all better."""
    x = _clustered(300, seed=5)
    if data == "duplicates":
        x = x[torch.arange(300) // 3]  # every row three times: tied similarities of 1
    if data == "sorted":  # similarity to row 0's direction rises along the rows: later tiles beat earlier ones
        x = torch.nn.functional.normalize(x, dim=1) * 0.1 + torch.linspace(0, 3, 300).unsqueeze(1)
    calls = {"sparse": 0, "dense": 0}

    def counted(name, function):
        def wrapper(*args):
            calls[name] += 1
            return function(*args)
        return wrapper

    monkeypatch.setattr(knn, "_merge_candidates", counted("sparse", knn._merge_candidates))
    monkeypatch.setattr(knn, "_update", counted("dense", knn._update))
    xn = torch.nn.functional.normalize(x, dim=1)
    dense = xn @ xn.T
    dense.fill_diagonal_(-float("inf"))
    ref_sim, _ = torch.topk(dense, 6, dim=1)
    idx, sim = topk_neighbours(x, 6, block_size=32, method="tiles")
    assert calls["sparse"] > 0 and calls["dense"] > 0, calls
    assert torch.allclose(sim, ref_sim, atol=1e-5)
    assert torch.allclose((xn.unsqueeze(1) * xn[idx]).sum(-1), sim, atol=1e-5)  # indices carry those values
    assert not torch.any(idx == torch.arange(300).unsqueeze(1)) and torch.all(idx >= 0)
    assert all(len(set(row.tolist())) == 6 for row in idx)  # no neighbour twice


def test_blocks_are_normalised_one_at_a_time_and_the_input_is_untouched(monkeypatch):
    x = _clustered(400)
    before = x.clone()
    seen = []
    real = knn._unit_block

    def spy(features, inv_norm, start, stop, dtype=torch.float32):
        seen.append(stop - start)
        assert features.data_ptr() == x.data_ptr()  # the caller's tensor, not a normalised copy
        return real(features, inv_norm, start, stop, dtype)

    monkeypatch.setattr(knn, "_unit_block", spy)
    for kernel in ("tiles", "rows"):
        topk_neighbours(x, 5, block_size=64, method=kernel, device="cpu")
        assert len(seen) >= 400 // 64 and max(seen) <= 64  # blocks of 64 rows, never all 400
        seen.clear()
    idx, _ = topk_neighbours(x, 5, block_size=64, precision="bfloat16", device="cpu")
    assert max(seen[:-2]) <= 64 and seen[-2:] == [256, 144]  # tiles, then the float32 re-scoring chunks
    assert torch.equal(x, before) and idx.shape == (400, 5)


def test_shortlist_and_padding_on_tiny_inputs():
    x = _clustered(6, dim=4)
    idx, sim = topk_neighbours(x, 10, precision="bfloat16")  # k and k + 8 both capped at N - 1
    assert idx.shape == (6, 5) and torch.all(idx >= 0) and torch.all(torch.isfinite(sim))
    assert all(sorted(row.tolist()) == sorted(set(range(6)) - {i}) for i, row in enumerate(idx))
    idx, sim = topk_neighbours(x[:1], 3, precision="bfloat16")
    assert idx.shape == (1, 0) and sim.shape == (1, 0)
    with pytest.raises(ValueError, match="precision"):
        topk_neighbours(x, 2, precision="float16")


def test_device_selection_prefers_a_gpu_and_auto_is_exact_there(monkeypatch):
    x = torch.randn(4, 3)
    assert resolve_device("cpu", x).type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(None, x).type == "cuda"
    assert resolve_device("cpu", x).type == "cpu"  # an explicit device wins
    assert resolve_method("auto", 10**6, on_gpu=True) == "exact"
    calls = {}

    def fake_topk(features, k, block_size, block_memory_mb, device, show_progress, kernel, precision):
        calls.update(device=device, precision=precision)
        return torch.zeros(len(features), k, dtype=torch.long), torch.zeros(len(features), k)

    monkeypatch.setattr(knn, "topk_neighbours", fake_topk)
    _, _, used = nearest_neighbours(x, 2, method="auto", auto_exact_max_items=2, exact_precision="bfloat16")
    assert used == "exact" and calls == {"device": None, "precision": "bfloat16"}  # device None -> cuda inside


def test_auto_precision_takes_bf16_for_large_catalogues_on_cpus_with_native_bf16(tmp_path, monkeypatch):
    cpu = torch.device("cpu")
    assert knn.resolve_exact_precision("auto", 100000, cpu, native_bf16=True) == "bfloat16"
    assert knn.resolve_exact_precision("auto", 100000, cpu, native_bf16=False) == "float32"
    assert knn.resolve_exact_precision("auto", knn.AUTO_BF16_MIN_ITEMS - 1, cpu, native_bf16=True) == "float32"
    assert knn.resolve_exact_precision("auto", 100000, torch.device("cuda"), native_bf16=True) == "float32"
    assert knn.resolve_exact_precision("float32", 100000, cpu, native_bf16=True) == "float32"  # asked for: kept
    with pytest.raises(ValueError, match="auto"):
        knn.resolve_exact_precision("float16", 10, cpu)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert knn.cpu_has_native_bf16(str(cpuinfo))
    older = tmp_path / "cpuinfo_older"  # one file per CPU: the flags are read once per file
    older.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f\n")
    assert not knn.cpu_has_native_bf16(str(older)) and not knn.cpu_has_native_bf16(str(tmp_path / "absent"))
    monkeypatch.setattr(knn, "AUTO_BF16_MIN_ITEMS", 100)  # the graph records what ran and what was asked
    monkeypatch.setattr(knn, "cpu_has_native_bf16", lambda: True)
    graph = build_knn_graph(_clustered(300), list(range(300)), 300, k=5, method="exact", exact_precision="auto",
                            device="cpu")
    assert graph.stats["exact_precision"] == "bfloat16" and graph.stats["exact_precision_requested"] == "auto"


def test_graph_records_device_and_precision_and_config_key_is_known():
    graph = build_knn_graph(_clustered(120), list(range(120)), 120, k=4, show_progress=False, method="exact",
                            exact_precision="bfloat16", device="cpu")
    assert graph.stats["exact_precision"] == "bfloat16" and graph.stats["device"] == "cpu"
    cfg.validate({"features": {"graphs": {"knn_exact_precision": "bfloat16"}}})
    with pytest.raises(cfg.ConfigError, match="did you mean 'knn_exact_precision'"):
        cfg.validate({"features": {"graphs": {"knn_exact_precison": "bfloat16"}}})


def test_union_graph_equals_a_set_based_union_of_the_directed_lists():
    from crslab_mscrs.graphs.knn import union_graph

    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        m, k = int(torch.randint(2, 40, (1,), generator=generator)), int(torch.randint(1, 6, (1,), generator=generator))
        n = m + 7
        ids = torch.randperm(n, generator=generator)[:m]
        idx = torch.randint(-1, m, (m, k), generator=generator)
        sims = torch.rand(m, k, generator=generator) * 2 - 1
        expected = {}
        for row in range(m):
            for j in range(k):
                if idx[row, j] >= 0 and sims[row, j] > 0.1:
                    a, b = int(ids[row]), int(ids[idx[row, j]])
                    for edge in ((a, b), (b, a)):
                        expected[edge] = max(expected.get(edge, -2.0), float(sims[row, j]))
        for chunk_entries in (1 << 21, 7):  # one chunk; one to three rows per chunk
            edge_index, edge_weight, info = union_graph(idx.to(torch.int32), sims, ids, n, "cosine", 0.1,
                                                        chunk_entries=chunk_entries)
            got = {(int(a), int(b)): float(w) for (a, b), w in zip(edge_index.T.tolist(), edge_weight)}
            assert got == pytest.approx(expected) and list(got) == sorted(expected)
            assert info["directed_hits_missing"] == int((idx < 0).sum())
            assert info["directed_edges_dropped_by_min_similarity"] == int(((idx >= 0) & (sims <= 0.1)).sum())
            assert edge_index.dtype == torch.int32  # half the memory of int64; load_graph gives int64
