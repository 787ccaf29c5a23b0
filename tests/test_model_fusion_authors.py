"""``fusion: authors``: the entity fusion the authors' code runs (MSCRS-main, rec/src/model_prompt.py,
``MMPrompt_inspired.get_entity_embeds``; ReDial's ``MMPrompt`` as switches), checked against a direct
dense transcription of that code on the tiny graph."""
import pytest
import torch

from crslab_mscrs.config_schema import value_problems
from crslab_mscrs.model.entity_encoder import MultimodalEntityEncoder
from crslab_mscrs.model.graph_files import to_item_space
from crslab_mscrs.model.prompt_crs import PromptCRSConfig, build_entity_encoder
from crslab_mscrs.model.rgcn_kg_encoder import RGCNKGEncoder, kg_edges_to_tensors
from crslab_mscrs.model.semantic_graph_propagation import LightGCNPropagation
from crslab_mscrs.model.tiny import TINY_ITEM_IDS, TINY_N_ENTITY, single_thread, tiny_graphs, tiny_side_data


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    with single_thread():
        yield


def dense_custom_gcn(edge_index: torch.Tensor, n: int) -> torch.Tensor:
    """The authors' ``CustomGCNConv`` as a dense matrix: self loops added, edge weights ignored,
    degree counted at the target, norm = deg^-1/2[source] deg^-1/2[target]."""
    loops = torch.arange(n)
    source, target = torch.cat([edge_index, torch.stack([loops, loops])], dim=1)
    degree = torch.zeros(n).index_add_(0, target, torch.ones(target.numel()))
    matrix = torch.zeros(n, n)
    matrix.index_put_((target, source), degree[source].rsqrt() * degree[target].rsqrt(), accumulate=True)
    return matrix


def authors_formula(e0, table, items, cooc, text, image, cooccurrence_input="e0", use=("t", "v")):
    """get_entity_embeds of MMPrompt_inspired (and MMPrompt with cooccurrence_input="embedding"),
    written out with dense matrices; the residual MLP and projection are applied by the caller."""
    x = e0[items]
    t1 = text @ x
    t2 = text @ t1
    v1 = image @ x
    v2 = image @ v1
    views = {"t": (t1 + t2) / 2, "v": (v1 + v2) / 2}
    c1 = cooc @ (e0 if cooccurrence_input == "e0" else table)
    c2 = cooc @ c1
    c3 = cooc @ c2
    h = (c1 + c2 + c3 + e0) / 4
    if use:
        h = h.clone()
        h[items] += sum(views[key] for key in use) / len(use)
    return h


def _encoder(use="ctv", cooccurrence_input="e0", weighted=False, dim=8):
    torch.manual_seed(0)
    edge_index, edge_type, num_relations = kg_edges_to_tensors(tiny_side_data()["entity_kg"]["edge"], TINY_N_ENTITY)
    kg = RGCNKGEncoder(TINY_N_ENTITY, dim, edge_index, edge_type, num_relations, num_bases=2)
    graphs, items = tiny_graphs(), torch.tensor(TINY_ITEM_IDS)
    cooc = graphs["use_cooccurrence_graph"]
    text, image = (to_item_space(graphs[key], items) for key in ("use_text_graph", "use_image_graph"))
    return MultimodalEntityEncoder(
        kg, items, output_dim=16,
        cooccurrence=LightGCNPropagation(cooc["edge_index"], TINY_N_ENTITY,
                                         cooc["edge_weight"] if weighted else None, num_layers=3)
        if "c" in use else None,
        text=LightGCNPropagation(text["edge_index"], 5) if "t" in use else None,
        image=LightGCNPropagation(image["edge_index"], 5) if "v" in use else None,
        fusion="authors", cooccurrence_input=cooccurrence_input)


@pytest.mark.parametrize("cooccurrence_input", ["e0", "embedding"])
@pytest.mark.parametrize("use", ["ctv", "ct", "cv", "c"])
def test_authors_fusion_equals_the_dense_transcription_of_their_code(cooccurrence_input, use):
    encoder = _encoder(use, cooccurrence_input)
    graphs, items = tiny_graphs(), torch.tensor(TINY_ITEM_IDS)
    cooc = dense_custom_gcn(graphs["use_cooccurrence_graph"]["edge_index"], TINY_N_ENTITY)
    text = dense_custom_gcn(to_item_space(graphs["use_text_graph"], items)["edge_index"], 5)
    image = dense_custom_gcn(to_item_space(graphs["use_image_graph"], items)["edge_index"], 5)
    e0 = encoder.kg_encoder()
    expected = authors_formula(e0, encoder.kg_encoder.entity_embedding, items, cooc, text, image,
                               cooccurrence_input, use=tuple(use.replace("c", "")))
    torch.testing.assert_close(encoder.fused_embeddings(), expected)
    mlp, projection = encoder.fusion_mlp.net, encoder.output_projection
    torch.testing.assert_close(encoder(), projection(expected + mlp(expected)))
    # the fused table computed for a few rows only equals the full table's rows
    rows = torch.tensor([0, 2, 6, 9])
    torch.testing.assert_close(encoder(rows=rows), encoder()[rows])


def test_authors_fusion_keeps_the_scale_of_e0_and_its_switches_matter():
    """e0 + C_1..C_3 averaged over 4, t and v averaged: rows keep e0's scale (sum roughly triples it)."""
    encoder = _encoder("ctv")
    e0 = encoder.kg_encoder()
    assert encoder.fused_embeddings().norm(dim=1).mean() < 1.5 * e0.norm(dim=1).mean()
    # an isolated entity (0, 5: no co-occurrence edge) only has its self loop: C_k = its input
    table = encoder.kg_encoder.entity_embedding
    raw = _encoder("c", "embedding")
    torch.testing.assert_close(raw.fused_embeddings()[[0, 5]], (e0[[0, 5]] + 3 * table[[0, 5]]) / 4)
    torch.testing.assert_close(_encoder("c").fused_embeddings()[[0, 5]], e0[[0, 5]])
    assert not torch.allclose(_encoder("c", weighted=True).fused_embeddings(), _encoder("c").fused_embeddings())


def test_config_builds_the_authors_encoder_unweighted_with_three_cooccurrence_layers():
    def config(**values):
        base = dict(entity_dim=8, num_bases=2, use_cooccurrence_graph=True, use_text_graph=True,
                    use_image_graph=True, lambda_text=1.0, lambda_image=1.0, fusion="authors", lightgcn_layers=2,
                    cooccurrence_input="e0", cooccurrence_layers=3, graph_edge_weights=None, n_prefix_rec=1,
                    n_prefix_conv=1, contrastive_weight=0.0, contrastive_temperature=0.07, use_demonstrations=False)
        return PromptCRSConfig(**{**base, **values})

    items = torch.tensor(TINY_ITEM_IDS)
    built = build_entity_encoder(TINY_N_ENTITY, tiny_side_data()["entity_kg"], items, 16, config(), tiny_graphs())
    assert built.fusion == "authors" and built.cooccurrence.num_layers == 3 and built.text.num_layers == 2
    cooc = tiny_graphs()["use_cooccurrence_graph"]["edge_index"]
    torch.testing.assert_close(built.cooccurrence.adjacency.to_dense(), dense_custom_gcn(cooc, TINY_N_ENTITY))
    assert config().edge_weights_used() is False and config(fusion="sum").edge_weights_used() is True
    assert config(graph_edge_weights="weighted").edge_weights_used() is True
    summed = build_entity_encoder(TINY_N_ENTITY, tiny_side_data()["entity_kg"], items, 16, config(fusion="sum"),
                                  tiny_graphs())
    assert summed.cooccurrence.num_layers == 2  # sum / mean keep lightgcn_layers for every graph


def test_config_values_of_the_new_keys_are_checked():
    assert not value_problems({"model": "MSCRS", "fusion": "authors", "cooccurrence_input": "embedding",
                               "cooccurrence_layers": 3, "graph_edge_weights": None})
    problems = dict(value_problems({"model": "MSCRS", "fusion": "author", "cooccurrence_input": "E",
                                    "cooccurrence_layers": 0, "graph_edge_weights": "yes"}))
    assert sorted(problems) == ["cooccurrence_input", "cooccurrence_layers", "fusion", "graph_edge_weights"]
    assert "did you mean 'authors'" in problems["fusion"].lower() or "authors" in problems["fusion"]
    with pytest.raises(ValueError, match="cooccurrence_input"):
        _encoder("c", cooccurrence_input="raw")
