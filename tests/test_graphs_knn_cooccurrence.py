"""Semantic graphs: blockwise kNN == dense kNN, symmetry, exclusions, train-only co-occurrence."""
import pytest
import torch

from crslab_mscrs.graphs.cooccurrence import build_cooccurrence_graph, conversation_entities
from crslab_mscrs.graphs.knn import build_knn_graph, topk_neighbours


def _edge_set(graph):
    return {(int(a), int(b)): float(w) for (a, b), w in zip(graph.edge_index.T.tolist(), graph.edge_weight)}


def _dense_knn_edges(x, ids, k, missing=None):
    """Reference: full similarity matrix + sort, union symmetrisation, cosine weights > 0."""
    valid = [i for i in range(len(ids)) if missing is None or not missing[i]]
    xn = torch.nn.functional.normalize(x[valid], dim=1)
    sims = xn @ xn.T
    sims.fill_diagonal_(-float("inf"))
    edges = {}
    for r in range(len(valid)):
        for c in torch.argsort(sims[r], descending=True)[:k].tolist():
            if sims[r, c] > 0:
                w = float(sims[r, c])
                edges[(ids[valid[r]], ids[valid[c]])] = w
                edges[(ids[valid[c]], ids[valid[r]])] = w
    return edges


@pytest.mark.parametrize("method", ["tiles", "rows"])
@pytest.mark.parametrize("block_size", [1, 7, 64])
def test_blockwise_equals_dense(block_size, method):
    torch.manual_seed(0)
    x = torch.randn(40, 6)
    ids = list(range(100, 140))
    missing = torch.zeros(40, dtype=torch.bool)
    missing[[2, 17]] = True
    graph = build_knn_graph(x, ids, 150, k=4, missing_mask=missing, block_size=block_size, show_progress=False,
                            method="exact", exact_kernel=method)
    expected = _dense_knn_edges(x, ids, 4, missing.tolist())
    got = _edge_set(graph)
    assert got.keys() == expected.keys()
    assert all(abs(got[e] - expected[e]) < 1e-5 for e in got)


@pytest.mark.parametrize("method,block_size", [("tiles", 4), ("tiles", 2), ("tiles", 25), ("rows", 4)])
def test_topk_matches_dense_indices(method, block_size):
    torch.manual_seed(1)
    x = torch.randn(25, 5)
    idx, sims = topk_neighbours(x, 3, block_size=block_size, method=method)
    xn = torch.nn.functional.normalize(x, dim=1)
    dense = xn @ xn.T
    dense.fill_diagonal_(-float("inf"))
    ref_vals, ref_idx = dense.topk(3, dim=1)
    assert torch.equal(idx, ref_idx) and torch.allclose(sims, ref_vals, atol=1e-6)


def test_knn_graph_symmetric_no_self_loops_missing_excluded_entity_space():
    torch.manual_seed(2)
    x = torch.randn(30, 8)
    x[5] = 0.0  # zero vector: excluded as well
    ids = [3 * i + 1 for i in range(30)]
    missing = torch.zeros(30, dtype=torch.bool)
    missing[[0, 9]] = True
    graph = build_knn_graph(x, ids, 200, k=5, missing_mask=missing, weight="binary", show_progress=False)
    edges = _edge_set(graph)
    assert graph.num_nodes == 200 and edges
    assert all((b, a) in edges for a, b in edges)
    assert all(a != b for a, b in edges)
    excluded = {ids[0], ids[9], ids[5]}
    assert not any(a in excluded or b in excluded for a, b in edges)
    assert set(edges.values()) == {1.0}
    assert {a for a, _ in edges} <= set(ids)
    assert graph.stats["items_used"] == 27 and graph.stats["zero_vectors"] == 1
    assert torch.all(graph.degree()[[i for i in ids if i not in excluded]] >= 5)


def test_knn_is_deterministic():
    torch.manual_seed(3)
    x = torch.randn(50, 4)
    a = build_knn_graph(x, list(range(50)), 50, k=3, show_progress=False)
    b = build_knn_graph(x.clone(), list(range(50)), 50, k=3, block_size=5, show_progress=False)
    c = build_knn_graph(x.clone(), list(range(50)), 50, k=3, block_size=9, show_progress=False,
                        exact_kernel="rows")
    assert torch.equal(a.edge_index, c.edge_index) and torch.allclose(a.edge_weight, c.edge_weight)
    assert torch.equal(a.edge_index, b.edge_index) and torch.allclose(a.edge_weight, b.edge_weight)


def test_knn_bad_inputs():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"outside|must lie in"):
        build_knn_graph(x, [0, 1, 2, 99], 10, k=2, show_progress=False)
    with pytest.raises(ValueError, match="do not match"):
        build_knn_graph(x, [0, 1, 2], 10, k=2, show_progress=False)
    with pytest.raises(ValueError, match="not unique"):
        build_knn_graph(x, [0, 1, 1, 2], 10, k=2, show_progress=False)
    x[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        build_knn_graph(x, [0, 1, 2, 3], 10, k=2, show_progress=False)


# ----------------------------------------------------------------- co-occurrence

ENTITY2ID = {"<A>": 0, "<B>": 1, "<C>": 2, "<D>": 3, "<E>": 4}


def _conv(conv_id, *turns):
    return {"conv_id": conv_id, "dialog": [{"utt_id": i, "role": "Seeker", "text": "", "movies": m, "entity": e,
                                             "word": []} for i, (m, e) in enumerate(turns)]}


TRAIN = [_conv("t1", (["<A>"], ["<C>"]), (["<B>", "<A>"], [])),   # pairs AB AC BC
         _conv("t2", (["<A>"], []), ([], ["<C>", "<C>"])),         # AC (repeats count once)
         _conv("t3", (["<D>"], []))]                                # single entity: no pair
VALID = [_conv("v1", (["<D>"], ["<E>"]))]                          # DE only in validation


def test_cooccurrence_counts_conversations_symmetric_no_self_loops():
    graph = build_cooccurrence_graph(TRAIN, ENTITY2ID)
    edges = _edge_set(graph)
    assert edges == {(0, 1): 1.0, (1, 0): 1.0, (0, 2): 2.0, (2, 0): 2.0, (1, 2): 1.0, (2, 1): 1.0}
    assert graph.num_nodes == 5 and graph.stats["conversations"] == 3
    assert build_cooccurrence_graph(TRAIN, ENTITY2ID, min_count=2).edge_index.T.tolist() == [[0, 2], [2, 0]]


def test_cooccurrence_uses_only_the_conversations_given():
    train_only = _edge_set(build_cooccurrence_graph(TRAIN, ENTITY2ID))
    assert (3, 4) not in train_only and (4, 3) not in train_only
    leaked = _edge_set(build_cooccurrence_graph(TRAIN + VALID, ENTITY2ID))
    assert (3, 4) in leaked  # the check above can fail: validation pairs would show up


def test_cooccurrence_unknown_entities():
    bad = [_conv("x", (["<A>", "<nowhere>"], []))]
    with pytest.raises(ValueError, match=r"conversation x: unknown entity '<nowhere>'"):
        build_cooccurrence_graph(bad, ENTITY2ID)
    graph = build_cooccurrence_graph(bad + TRAIN, ENTITY2ID, on_unknown="skip")
    assert graph.stats["unknown_mentions"] == 1
    with pytest.raises(ValueError, match="outside"):
        conversation_entities([0, 42], ENTITY2ID)
    with pytest.raises(ValueError, match="min_count"):
        build_cooccurrence_graph(TRAIN, ENTITY2ID, min_count=0)
