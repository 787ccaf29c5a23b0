"""R-GCN KG encoder, LightGCN propagation, graph files and the multimodal entity encoder."""
import pytest
import torch
from torch_geometric.nn import LGConv

from crslab_mscrs.model.entity_encoder import MultimodalEntityEncoder
from crslab_mscrs.model.graph_files import read_graph_file, to_item_space
from crslab_mscrs.model.rgcn_kg_encoder import RGCNKGEncoder, kg_edges_to_tensors
from crslab_mscrs.model.semantic_graph_propagation import LightGCNPropagation, normalized_adjacency
from crslab_mscrs.model.tiny import (TINY_ITEM_IDS, TINY_N_ENTITY, TINY_RELATIONS, single_thread, tiny_graphs,
                                     tiny_side_data, write_tiny_graph_files)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    with single_thread():
        yield


def _kg_encoder(dim=8, num_bases=2):
    edge_index, edge_type, num_relations = kg_edges_to_tensors(tiny_side_data()["entity_kg"]["edge"], TINY_N_ENTITY)
    return RGCNKGEncoder(TINY_N_ENTITY, dim, edge_index, edge_type, num_relations, num_bases)


def test_relation_ids_are_remapped_to_0_R_minus_1_and_all_used():
    """Bug 3: raw ids (3, 7, 12) become 0..2 with num_relations = 3, and every relation learns."""
    _, edge_type, num_relations = kg_edges_to_tensors(tiny_side_data()["entity_kg"]["edge"], TINY_N_ENTITY)
    assert num_relations == len(TINY_RELATIONS)
    assert sorted(edge_type.unique().tolist()) == [0, 1, 2]
    torch.manual_seed(0)
    encoder = _kg_encoder()
    assert encoder.conv.num_relations == 3
    encoder().pow(2).sum().backward()
    per_relation_grad = encoder.conv.comp.grad.abs().sum(1)  # [R]: coefficients of each relation
    assert (per_relation_grad > 0).all(), per_relation_grad


def test_relation_one_based_ids_keep_last_relation():
    edges = [(1, 2, 1), (2, 3, 2), (3, 1, 3)]  # authors' 1-based ids: the last one used to be dropped
    _, edge_type, num_relations = kg_edges_to_tensors(edges, 4)
    assert num_relations == 3 and edge_type.tolist() == [0, 1, 2]


def test_rgcn_uses_learned_table_not_one_hot_and_has_residual():
    """Bug 9: the input is a learned [n_entity, d] table (no identity matrix over all entities)."""
    torch.manual_seed(0)
    encoder = _kg_encoder(dim=8)
    assert tuple(encoder.entity_embedding.shape) == (TINY_N_ENTITY, 8)
    assert encoder.conv.in_channels == 8
    expected = encoder.conv(encoder.entity_embedding, encoder.edge_index, encoder.edge_type) + encoder.entity_embedding
    assert torch.allclose(encoder(), expected)
    assert not any("edge" in name for name in encoder.state_dict())  # graph is data, not a parameter


@pytest.mark.parametrize("num_bases", [2, 8])
def test_row_sparse_rgcn_equals_pyg_rgcnconv(num_bases):
    torch.manual_seed(0)
    edge_index = torch.randint(0, 12, (2, 60))
    edge_type = torch.randint(0, 5, (60,))
    edge_type[edge_type == 3] = 4  # relation 3 unused: an empty segment
    fast = RGCNKGEncoder(12, 6, edge_index, edge_type, 5, num_bases)
    with torch.no_grad():
        fast.conv.bias.normal_()
    reference = RGCNKGEncoder(12, 6, edge_index, edge_type, 5, num_bases, row_sparse=False)
    reference.load_state_dict(fast.state_dict())
    out_fast, out_ref = fast(), reference()
    assert torch.allclose(out_fast, out_ref, atol=1e-5)
    out_fast.pow(2).sum().backward()
    out_ref.pow(2).sum().backward()
    for (name, a), (_, b) in zip(fast.named_parameters(), reference.named_parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-4), name


def test_kg_edges_errors():
    with pytest.raises(ValueError, match="empty"):
        kg_edges_to_tensors([], 5)
    with pytest.raises(ValueError, match="out of range"):
        kg_edges_to_tensors([(1, 9, 0)], 5)


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("weighted", [False, True])
def test_lightgcn_matches_pyg_lgconv_with_explicit_self_loops(num_layers, weighted):
    torch.manual_seed(0)
    num_nodes = 6
    edge_index = torch.tensor([[0, 1, 1, 2, 3, 4], [1, 0, 2, 1, 4, 3]])
    weight = torch.rand(edge_index.size(1)) + 0.5 if weighted else None
    x = torch.randn(num_nodes, 5)
    ours = LightGCNPropagation(edge_index, num_nodes, weight, num_layers)(x)
    loops = torch.arange(num_nodes)
    looped = torch.cat([edge_index, torch.stack([loops, loops])], dim=1)
    looped_weight = None if weight is None else torch.cat([weight, torch.ones(num_nodes)])
    conv, layer, layers = LGConv(normalize=True), x, [x]
    for _ in range(num_layers):
        layer = conv(layer, looped, looped_weight)
        layers.append(layer)
    assert torch.allclose(ours, torch.stack(layers).mean(0), atol=1e-6)


def test_lightgcn_isolated_node_keeps_its_embedding_and_rejects_bad_ids():
    x = torch.randn(3, 4)
    out = LightGCNPropagation(torch.tensor([[0], [1]]), 3, num_layers=2)(x)
    assert torch.allclose(out[2], x[2])  # only its self loop
    with pytest.raises(ValueError, match="outside"):
        normalized_adjacency(torch.tensor([[0], [5]]), 3)


def test_graph_file_roundtrip_item_space_and_errors(tmp_path):
    folder = write_tiny_graph_files(tmp_path)
    graph = read_graph_file(folder / "text_knn_graph.pt", "use_text_graph")
    assert torch.equal(graph["edge_index"], tiny_graphs()["use_text_graph"]["edge_index"])
    local = to_item_space(graph, torch.tensor(TINY_ITEM_IDS))
    assert local["num_nodes"] == 5 and int(local["edge_index"].max()) < 5
    assert local["edge_index"][:, 0].tolist() == [0, 1]  # entity 1 -> position 0, entity 2 -> 1
    with pytest.raises(ValueError, match="non-item"):
        to_item_space(tiny_graphs()["use_cooccurrence_graph"], torch.tensor(TINY_ITEM_IDS))
    with pytest.raises(FileNotFoundError, match="use_image_graph"):
        read_graph_file(tmp_path / "nope" / "image_knn_graph.pt", "use_image_graph")


def _entity_encoder(use, fusion="sum"):
    torch.manual_seed(0)
    graphs, items = tiny_graphs(), torch.tensor(TINY_ITEM_IDS)
    cooc = graphs["use_cooccurrence_graph"]
    text, image = (to_item_space(graphs[key], items) for key in ("use_text_graph", "use_image_graph"))
    return MultimodalEntityEncoder(
        _kg_encoder(), items, output_dim=16,
        cooccurrence=(LightGCNPropagation(cooc["edge_index"], TINY_N_ENTITY, cooc["edge_weight"])
                      if "c" in use else None),
        text=LightGCNPropagation(text["edge_index"], 5) if "t" in use else None,
        image=LightGCNPropagation(image["edge_index"], 5) if "v" in use else None,
        lambda_text=0.5, lambda_image=2.0, fusion=fusion)


def test_fusion_formula_and_graph_switches():
    full = _entity_encoder("ctv")
    e0 = full.kg_encoder()
    items = full.item_ids
    expected = e0 + full.cooccurrence(e0)
    expected[items] += 0.5 * full.text(e0[items]) + 2.0 * full.image(e0[items])
    assert torch.allclose(full.fused_embeddings(), expected, atol=1e-6)
    table = full()
    assert table.shape == (TINY_N_ENTITY, 16)
    non_items = torch.tensor([i for i in range(TINY_N_ENTITY) if i not in TINY_ITEM_IDS])
    for off in ("c", "t", "v"):
        other = _entity_encoder("ctv".replace(off, ""))()
        assert not torch.allclose(other[items], table[items]), f"switching off {off} changed nothing"
        if off in "tv":  # item graphs touch only item rows
            assert torch.allclose(other[non_items], table[non_items])
    assert _entity_encoder("").uses_graphs == {"cooccurrence": False, "text": False, "image": False}


def test_mean_fusion_divides_each_row_by_its_view_weights():
    summed, averaged = _entity_encoder("ctv"), _entity_encoder("ctv", fusion="mean")
    items = summed.item_ids
    non_items = torch.tensor([i for i in range(TINY_N_ENTITY) if i not in TINY_ITEM_IDS])
    total = summed.fused_embeddings()
    mean = averaged.fused_embeddings()
    # e0 + c over 2 views; item rows also get 0.5 t + 2.0 v: total weight 1 + 1 + 0.5 + 2.0
    torch.testing.assert_close(mean[non_items], total[non_items] / 2)
    torch.testing.assert_close(mean[items], total[items] / 4.5)
    # only the KG view: both modes are e0 (UniCRS), and an item-graph-only encoder averages items only
    torch.testing.assert_close(_entity_encoder("", "mean")(), _entity_encoder("", "sum")())
    text_only = _entity_encoder("t", "mean").fused_embeddings()
    torch.testing.assert_close(text_only[non_items], _entity_encoder("t").fused_embeddings()[non_items])
    with pytest.raises(ValueError, match="'fusion'"):
        _entity_encoder("ctv", fusion="max")


def test_rgcn_rows_equal_full_table_rows_and_gradients():
    torch.manual_seed(0)
    encoder = _kg_encoder(dim=8)
    rows = torch.tensor([0, 3, 5, TINY_N_ENTITY - 1])
    weights = torch.randn(len(rows), 8)
    (encoder()[rows] * weights).sum().backward()
    full_grads = [p.grad.clone() for p in encoder.parameters()]
    encoder.zero_grad()
    out = encoder(rows=rows)
    torch.testing.assert_close(out, encoder()[rows])
    (out * weights).sum().backward()
    for full, restricted in zip(full_grads, [p.grad for p in encoder.parameters()]):
        torch.testing.assert_close(restricted, full)


def test_lightgcn_on_the_receptive_field_is_exact_at_the_rows_asked_for():
    torch.manual_seed(0)
    edges = torch.tensor([[0, 1, 2, 3, 4, 6], [1, 2, 3, 4, 5, 7]])  # a path 0-...-5 and an edge 6-7
    propagation = LightGCNPropagation(torch.cat([edges, edges.flip(0)], 1), 9, num_layers=2)
    x = torch.randn(9, 4)
    asked = torch.zeros(9, dtype=torch.bool)
    asked[[0, 8]] = True
    field = propagation.receptive_field(asked)
    assert field.nonzero().squeeze(1).tolist() == [0, 1, 2, 8]  # two hops from 0; 8 is isolated
    nodes = field.nonzero().squeeze(1)
    out = propagation(x[nodes], nodes=nodes)
    torch.testing.assert_close(out[[0, 3]], propagation(x)[[0, 8]])
    assert not torch.allclose(out[2], propagation(x)[2])  # a border row lacks its outer neighbours
    with pytest.raises(ValueError, match="expected 4 rows"):
        propagation(x, nodes=nodes)


@pytest.mark.parametrize("use,fusion", [("ctv", "sum"), ("ctv", "mean"), ("c", "sum"), ("tv", "mean"), ("", "sum")])
def test_entity_encoder_rows_equal_the_full_table(use, fusion):
    encoder = _entity_encoder(use, fusion)
    for rows in (torch.tensor([0, 4]), torch.tensor(sorted({0, 3, *TINY_ITEM_IDS})), torch.arange(TINY_N_ENTITY)):
        weights = torch.randn(len(rows), 16)
        encoder.zero_grad()
        (encoder()[rows] * weights).sum().backward()
        full_grads = {name: p.grad.clone() for name, p in encoder.named_parameters()}
        encoder.zero_grad()
        out = encoder(rows=rows)
        torch.testing.assert_close(out, encoder()[rows])
        (out * weights).sum().backward()
        for name, p in encoder.named_parameters():
            torch.testing.assert_close(p.grad, full_grads[name], msg=f"{use}/{fusion}/{rows.tolist()}: {name}")
