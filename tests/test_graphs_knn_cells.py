"""The approximate ``cells`` kNN method (k-means cells searched as dense products): recall
against exact, padding, determinism, rows searched in two cells, settings and config keys."""
import pytest
import torch

from crslab_mscrs import config as cfg
from crslab_mscrs.graphs.knn import build_knn_graph, cells_settings, nearest_neighbours, topk_neighbours
from crslab_mscrs.graphs.knn_cells import CellAssignment, CellsSettings, _merge_unique, cells_topk, search_cells


def clustered(n=2000, dim=32, cluster_size=25, seed=0):
    """Gaussian mixture like benchmarks/knn_benchmark.py's ``clustered`` data, small."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(n // cluster_size, dim, generator=generator)
    labels = torch.randint(0, len(centres), (n,), generator=generator)
    return centres[labels] + 0.6 * torch.randn(n, dim, generator=generator)


def recall(approx, exact):
    return sum(len(set(a.tolist()) & set(e.tolist())) for a, e in zip(approx, exact)) / exact.numel()


def test_cells_find_most_exact_neighbours_of_clustered_data_with_float32_cosines():
    x = clustered()
    exact_idx, _ = topk_neighbours(x, 10, show_progress=False)
    idx, sims, used = nearest_neighbours(x, 10, method="cells", cells=CellsSettings(cell_size=20))
    assert used == "cells" and idx.shape == (2000, 10) and sims.dtype == torch.float32
    assert recall(idx, exact_idx) >= 0.9
    assert not (idx == torch.arange(2000).unsqueeze(1)).any()  # never itself
    found = idx >= 0
    unit = torch.nn.functional.normalize(x, dim=1)
    cosines = (unit.unsqueeze(1) * unit[idx.clamp(min=0)]).sum(-1)
    assert torch.allclose(sims[found], cosines[found], atol=1e-5)  # the similarity of the pair returned
    assert (sims[:, :-1] >= sims[:, 1:]).all()  # descending (padding -inf last)


def test_one_cell_holding_every_row_is_the_exact_search():
    x = clustered(300)
    exact_idx, exact_sims = topk_neighbours(x, 5, show_progress=False)
    idx, sims = cells_topk(x, 5, CellsSettings(cell_size=10**6))
    assert torch.equal(idx, exact_idx) and torch.allclose(sims, exact_sims, atol=1e-5)


def test_rows_of_small_cells_are_padded_and_the_build_is_deterministic():
    x = clustered(400, cluster_size=4)
    settings = CellsSettings(cell_size=4, spill_ratio=1.0)
    idx, sims = cells_topk(x, 8, settings)
    assert (idx == -1).any() and torch.isinf(sims[idx == -1]).all() and (sims[idx == -1] < 0).all()
    again, _ = cells_topk(x, 8, settings)
    assert torch.equal(idx, again)
    other, _ = cells_topk(x, 8, CellsSettings(cell_size=4, spill_ratio=1.0, seed=1))
    assert not torch.equal(idx, other)  # the seed drives the sample and the k-means


def test_a_row_searched_in_two_cells_keeps_each_neighbour_once():
    best_val = torch.tensor([[0.9, 0.5, -float("inf")]])
    best_idx = torch.tensor([[4, 7, -1]])
    val, idx = _merge_unique(best_val, best_idx, torch.tensor([[0.9, 0.6, 0.1]]), torch.tensor([[4, 2, 9]]), 3)
    assert idx.tolist() == [[4, 2, 7]] and torch.allclose(val, torch.tensor([[0.9, 0.6, 0.5]]))
    x = clustered(600)
    idx, _ = cells_topk(x, 10, CellsSettings(cell_size=15, spill_ratio=0.5))  # many rows in two cells
    for row in idx.tolist():
        kept = [j for j in row if j >= 0]
        assert len(kept) == len(set(kept))


def test_spilling_more_rows_only_adds_candidates():
    """One assignment, searched at falling spill ratios: the lists grow and the recall never
    drops (a cell only gains members, so every pair found before is found again)."""
    x = clustered(1500)
    exact_idx, _ = topk_neighbours(x, 10, show_progress=False)
    cells = CellAssignment.build(x, CellsSettings(cell_size=20))
    entries, recalls = [], []
    for ratio in (1.0, 0.9, 0.7, 0.5):
        first, second = cells.lists(ratio)
        idx, _ = search_cells(cells, first, second, 10)
        entries.append(int((second >= 0).sum()))
        recalls.append(recall(idx, exact_idx))
    assert entries == sorted(entries) and entries[0] < entries[-1]
    assert recalls == sorted(recalls) and recalls[0] < recalls[-1]
    same, _ = cells_topk(x, 10, CellsSettings(cell_size=20, spill_ratio=0.7))
    assert torch.equal(same, search_cells(cells, *cells.lists(0.7), 10)[0])  # the method is these two steps


def test_the_graph_records_the_cells_settings_and_config_keys_are_checked():
    x = clustered(500)
    graph = build_knn_graph(x, list(range(500)), 500, k=5, method="cells",
                            cells=cells_settings({"cell_size": 25}), show_progress=False)
    assert graph.stats["method"] == "cells" and graph.stats["cells"]["cell_size"] == 25
    assert graph.num_edges > 0 and graph.stats["nprobe"] is None
    with pytest.raises(ValueError, match=r"graphs.knn_cells: unknown keys \['cell_sise'\]"):
        cells_settings({"cell_sise": 25})
    with pytest.raises(ValueError, match="spill_ratio"):
        CellsSettings(spill_ratio=0.0)
    cfg.validate({"features": {"graphs": {"knn_method": "cells", "knn_cells": {"cell_size": 64}}}})
