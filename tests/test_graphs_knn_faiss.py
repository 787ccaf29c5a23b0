"""Approximate (faiss IVF-Flat) kNN graph: valid graph, recall vs exact, method selection, missing faiss."""
import builtins

import pytest
import torch

from crslab_mscrs.graphs import knn, knn_faiss
from crslab_mscrs.graphs.knn import build_knn_graph, nearest_neighbours, resolve_method, topk_neighbours

needs_faiss = pytest.mark.skipif(not knn_faiss.faiss_available(), reason="faiss-cpu not installed (extra 'ann')")


def _clustered(n=600, dim=16, clusters=12, seed=0):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, dim, generator=generator) * 3
    labels = torch.randint(0, clusters, (n,), generator=generator)
    return centres[labels] + torch.randn(n, dim, generator=generator)


def _edges(graph):
    return {(int(a), int(b)) for a, b in graph.edge_index.T.tolist()}


@needs_faiss
def test_faiss_graph_is_valid_symmetric_no_self_missing_excluded():
    x = _clustered(300)
    x[7] = 0.0
    ids = [2 * i + 5 for i in range(300)]
    missing = torch.zeros(300, dtype=torch.bool)
    missing[[0, 42, 299]] = True
    graph = build_knn_graph(x, ids, 700, k=5, missing_mask=missing, method="faiss-ivf", nprobe=2,
                            show_progress=False)
    edges = _edges(graph)
    assert graph.num_nodes == 700 and len(edges) >= 5 * 296
    assert all((b, a) in edges for a, b in edges)
    assert all(a != b for a, b in edges)
    excluded = {ids[0], ids[42], ids[299], ids[7]}
    assert not any(a in excluded or b in excluded for a, b in edges)
    assert {a for a, _ in edges} <= set(ids) - excluded
    assert torch.all(graph.edge_weight > 0) and torch.all(graph.edge_weight <= 1 + 1e-5)
    assert graph.stats["method"] == "faiss-ivf" and graph.stats["items_used"] == 296
    weights = {(int(a), int(b)): float(w) for (a, b), w in zip(graph.edge_index.T.tolist(), graph.edge_weight)}
    assert all(abs(weights[(a, b)] - weights[(b, a)]) < 1e-6 for a, b in edges)  # cosine weights symmetric


@needs_faiss
def test_faiss_recall_against_exact_on_clustered_data():
    x = _clustered(800, dim=32, clusters=16)
    k = 10
    exact_idx, exact_sim = topk_neighbours(x, k)
    approx_idx, approx_sim, used = nearest_neighbours(x, k, method="faiss-ivf", nprobe=3)
    assert used == "faiss-ivf" and approx_idx.shape == (800, k)
    assert not torch.any(approx_idx == torch.arange(800).unsqueeze(1))  # self excluded
    hits = sum(len(set(a.tolist()) & set(e.tolist())) for a, e in zip(approx_idx, exact_idx))
    recall = hits / (800 * k)
    assert recall >= 0.9, recall
    xn = torch.nn.functional.normalize(x, dim=1)
    true_cos = (xn.unsqueeze(1) * xn[approx_idx.clamp(min=0)]).sum(-1)
    found = approx_idx >= 0
    assert torch.allclose(approx_sim[found], true_cos[found], atol=1e-5)  # similarities are true cosines
    assert torch.all(approx_sim[:, :-1] >= approx_sim[:, 1:])  # descending
    assert torch.all(approx_sim[:, 0] <= exact_sim[:, 0] + 1e-5)


@needs_faiss
def test_faiss_with_all_cells_probed_equals_exact():
    x = _clustered(200, dim=8, clusters=5, seed=3)
    exact_idx, _ = topk_neighbours(x, 4)
    nlist = knn_faiss.default_nlist(200)
    approx_idx, _, _ = nearest_neighbours(x, 4, method="faiss-ivf", nprobe=nlist, nlist=nlist)
    agree = (approx_idx == exact_idx).float().mean()
    assert agree > 0.99  # exhaustive probing = exact search (up to float ties)


def test_auto_picks_exact_on_small_data_and_cells_above_threshold_with_or_without_faiss(monkeypatch):
    assert resolve_method("auto", 500) == "exact"
    graph = build_knn_graph(_clustered(100), list(range(100)), 100, k=3, show_progress=False)
    assert graph.stats["method"] == "exact" and graph.stats["method_requested"] == "auto"
    for installed in (True, False):  # faiss is only used when asked for by name
        monkeypatch.setattr(knn_faiss, "faiss_available", lambda: installed)
        assert resolve_method("auto", 50, auto_exact_max_items=10) == "cells"
    with pytest.raises(ValueError, match="method must be one of"):
        resolve_method("hnsw", 50)


def test_faiss_method_without_faiss_is_a_clear_error(monkeypatch):
    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss" or name.startswith("faiss."):
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    assert not knn_faiss.faiss_available()
    with pytest.raises(ImportError, match=r"faiss-ivf.*pip install faiss-cpu"):
        build_knn_graph(_clustered(50), list(range(50)), 50, k=3, method="faiss-ivf", show_progress=False)
    graph = build_knn_graph(_clustered(50), list(range(50)), 50, k=3, method="auto", auto_exact_max_items=10,
                            show_progress=False)
    assert graph.stats["method"] == "cells"


def test_drop_self_pads_missing_hits():
    labels = torch.tensor([[0, 3, 2], [4, 5, -1], [7, 2, 9]])
    sims = torch.tensor([[1.0, 0.8, 0.5], [0.9, 0.7, -3e38], [0.6, 0.5, 0.4]])
    idx, val = knn_faiss._drop_self(labels, sims, start=0, k=2)
    assert idx.tolist() == [[3, 2], [4, 5], [7, 9]]  # row 1: self (1) absent -> first k kept
    labels[1] = torch.tensor([1, 5, -1])
    idx, val = knn_faiss._drop_self(labels, sims, start=0, k=2)
    assert idx[1].tolist() == [5, -1] and val[1, 1] == -float("inf")


def test_invalid_nprobe_nlist():
    if not knn_faiss.faiss_available():
        pytest.skip("faiss-cpu not installed")
    with pytest.raises(ValueError, match="nprobe"):
        knn_faiss.faiss_ivf_topk(torch.randn(20, 4), 3, nprobe=0)
    with pytest.raises(ValueError, match="nlist"):
        knn_faiss.faiss_ivf_topk(torch.randn(20, 4), 3, nlist=50)
    assert knn.AUTO_EXACT_MAX_ITEMS == 100000
