"""Retrieved demonstrations: retrieval without leakage, extra prompt vectors with masking."""
import pytest
import torch
import torch.nn.functional as F

from crslab_mscrs.model.demonstrations import DemonstrationRetriever
from crslab_mscrs.model.prompt_crs import PromptCRS
from crslab_mscrs.model.tiny import single_thread, tiny_batch, tiny_opt, tiny_side_data, tiny_vocab


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    with single_thread():
        yield


def test_retriever_top_k_excludes_own_conversation():
    embeddings = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.7, 0.7]])
    retriever = DemonstrationRetriever(embeddings, ["a", "b", "c", "a"], block_size=1)
    query = torch.tensor([[1.0, 0.05], [0.0, 1.0]])
    assert retriever.retrieve(query, 2).tolist() == [[0, 1], [2, 3]]
    assert retriever.retrieve(query, 2, ["a", "c"]).tolist() == [[1, 2], [3, 1]]
    assert retriever.retrieve(query[:1], 5, ["a"]).tolist() == [[1, 2, -1, -1, -1]]


def _demo_keys(model, texts_per_sample):
    flat = [text for texts in texts_per_sample for text in texts]
    encoded = model.text_tokenizer(flat, padding=True, return_tensors="pt")
    k = len(texts_per_sample[0])
    return {"demo_input_ids": encoded["input_ids"].view(len(texts_per_sample), k, -1),
            "demo_attention_mask": encoded["attention_mask"].view(len(texts_per_sample), k, -1)}


@torch.no_grad()
def test_demonstrations_are_extra_masked_prompt_vectors():
    torch.manual_seed(0)
    model = PromptCRS.from_opt(tiny_opt(None, use_cooccurrence_graph=False, use_text_graph=False,
                                        use_image_graph=False, use_demonstrations=True),
                               tiny_vocab(), tiny_side_data()).eval()
    batch = tiny_batch(model.lm_tokenizer, model.text_tokenizer, "conv")
    with pytest.raises(KeyError, match="use_demonstrations"):
        model.converse(batch)
    one = {**batch, **_demo_keys(model, [["User: a sci-fi film? System: try <movie>"], ["User: hello"]])}
    base = model.converse(one).logits
    # a second, padded demonstration changes nothing
    two = {**batch, **_demo_keys(model, [["User: a sci-fi film? System: try <movie>", "pad"], ["User: hello", "pad"]])}
    two["demo_mask"] = torch.tensor([[True, False], [True, False]])
    assert torch.allclose(model.converse(two).logits, base, atol=1e-5)
    # a real second demonstration does
    two["demo_mask"] = torch.ones(2, 2, dtype=torch.bool)
    assert not torch.allclose(model.converse(two).logits, base, atol=1e-4)
    # recommendation does not use demonstrations
    rec = tiny_batch(model.lm_tokenizer, model.text_tokenizer, "rec")
    assert model.recommend(rec).item_scores.shape == (2, 5)
    assert model.generate({**tiny_batch(model.lm_tokenizer, model.text_tokenizer, "generate"),
                           **_demo_keys(model, [["x"], ["y"]])}, max_new_tokens=2).shape[0] == 2
    assert F.softmax(base, -1).isfinite().all()
