"""Prefixes through the HF Cache API work for GPT-2 and Llama-style (GQA, rotary) LMs."""
import pytest
import torch

from crslab_mscrs.model.decoding import banned_ngram_mask, top_p_sample
from crslab_mscrs.model.loading import load_causal_lm
from crslab_mscrs.model.prefix_cache import (LMGeometry, PrefixKeyValues, build_prefix_cache,
                                             prefixed_lm_inputs, token_position_ids)
from crslab_mscrs.model.tiny import single_thread


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    with single_thread():
        yield

LMS = ["tiny-random-gpt2", "tiny-random-llama"]


@pytest.fixture(scope="module", params=LMS)
def lm(request):
    model, _ = load_causal_lm(request.param)
    return model


def _prefix_from_tokens(lm, tokens):
    """Real keys/values of ``tokens``: a prefix whose effect we know exactly."""
    cache = lm(tokens, use_cache=True).cache
    keys = torch.stack([layer.keys for layer in cache.layers])
    values = torch.stack([layer.values for layer in cache.layers])
    return PrefixKeyValues(keys, values, torch.ones(tokens.shape, dtype=torch.long))


def test_geometry_of_gqa_llama_and_gpt2():
    gpt2, _ = load_causal_lm("tiny-random-gpt2")
    llama, _ = load_causal_lm("tiny-random-llama")
    assert LMGeometry.from_config(gpt2.config) == LMGeometry(2, 4, 16, 64)
    assert LMGeometry.from_config(llama.config) == LMGeometry(2, 2, 16, 64)  # 2 kv heads for 4 query heads


@torch.no_grad()
def test_prefix_cache_equals_running_the_prefix_tokens(lm):
    torch.manual_seed(0)
    context, tokens = torch.randint(5, 1000, (2, 4)), torch.randint(5, 1000, (2, 5))
    reference = lm(torch.cat([context, tokens], 1)).logits[:, 4:]
    kwargs = prefixed_lm_inputs(tokens, torch.ones_like(tokens), _prefix_from_tokens(lm, context))
    kwargs["position_ids"] = kwargs["position_ids"] + 4  # the reference numbers these tokens from 4
    assert kwargs["attention_mask"].shape == (2, 9)
    assert torch.allclose(lm(**kwargs).logits, reference, atol=1e-5)


@torch.no_grad()
def test_left_padding_and_masked_prefix_positions_change_nothing(lm):
    torch.manual_seed(0)
    tokens = torch.randint(5, 1000, (2, 5))
    prefix = _prefix_from_tokens(lm, torch.randint(5, 1000, (2, 3)))
    base = lm(**prefixed_lm_inputs(tokens, torch.ones_like(tokens), prefix)).logits
    # three pad tokens on the left
    padded = torch.cat([torch.zeros(2, 3, dtype=torch.long), tokens], 1)
    mask = torch.cat([torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 5, dtype=torch.long)], 1)
    assert torch.allclose(lm(**prefixed_lm_inputs(padded, mask, prefix)).logits[:, 3:], base, atol=1e-5)
    # two extra prefix positions with random keys/values but mask 0
    noise = PrefixKeyValues(torch.cat([prefix.keys, torch.randn_like(prefix.keys[:, :, :, :2])], 3),
                            torch.cat([prefix.values, torch.randn_like(prefix.values[:, :, :, :2])], 3),
                            torch.cat([prefix.mask, torch.zeros(2, 2, dtype=torch.long)], 1))
    assert torch.allclose(lm(**prefixed_lm_inputs(tokens, torch.ones_like(tokens), noise)).logits, base, atol=1e-5)
    # ... and an unmasked one does change the output (the test can fail)
    visible = PrefixKeyValues(noise.keys, noise.values, torch.ones_like(noise.mask))
    assert not torch.allclose(lm(**prefixed_lm_inputs(tokens, torch.ones_like(tokens), visible)).logits, base,
                              atol=1e-3)



def test_prefix_gradients_flow_and_cache_is_fresh_per_call(lm):
    geometry = LMGeometry.from_config(lm.config)
    keys = torch.randn(geometry.num_layers, 1, geometry.num_kv_heads, 2, geometry.head_dim, requires_grad=True)
    prefix = PrefixKeyValues(keys, torch.randn_like(keys), torch.ones(1, 2, dtype=torch.long))
    tokens = torch.randint(5, 1000, (1, 4))
    lm(**prefixed_lm_inputs(tokens, torch.ones_like(tokens), prefix)).logits.sum().backward()
    assert keys.grad is not None and keys.grad.abs().sum() > 0
    assert build_prefix_cache(prefix).get_seq_length() == 2


def test_position_ids_count_real_tokens_only():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 0]])
    assert token_position_ids(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 3]]


def test_banned_ngram_mask_and_top_p():
    history = torch.tensor([[5, 6, 7, 5, 6], [-1, -1, 5, 6, 8]])
    banned = banned_ngram_mask(history, 3, 10)
    assert banned[0].nonzero().flatten().tolist() == [7]  # "5 6" was followed by 7
    assert not banned[1].any()
    logits = torch.tensor([[10.0, 9.0, -10.0, -10.0]])
    draws = {int(top_p_sample(logits, 0.5, torch.Generator().manual_seed(s))) for s in range(20)}
    assert draws == {0}
