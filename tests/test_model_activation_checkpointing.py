"""Activation checkpointing of the frozen LM (``lm_activation_checkpointing``): the same
outputs and the same gradients to the prefix as without it, on tiny random GPT-2 and Llama."""
import pytest
import torch

from crslab_mscrs.model.activation_checkpointing import (decoder_layers, disable_activation_checkpointing,
                                                         enable_activation_checkpointing)
from crslab_mscrs.model.loading import load_causal_lm
from crslab_mscrs.model.prefix_cache import LMGeometry, PrefixKeyValues, prefixed_lm_inputs
from crslab_mscrs.model.tiny import single_thread


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    with single_thread():
        yield


def prefix_gradients(lm, seed=0):
    """Loss and gradients to prefix keys and values of a left-padded batch through ``lm``."""
    torch.manual_seed(seed)
    geometry = LMGeometry.from_config(lm.config)
    shape = (geometry.num_layers, 2, geometry.num_kv_heads, 3, geometry.head_dim)
    keys, values = torch.randn(shape, requires_grad=True), torch.randn(shape, requires_grad=True)
    prefix = PrefixKeyValues(keys, values, torch.tensor([[1, 1, 1], [0, 1, 1]]))
    tokens = torch.randint(5, 1000, (2, 6))
    mask = torch.tensor([[1] * 6, [0, 0] + [1] * 4])
    logits = lm(**prefixed_lm_inputs(tokens, mask, prefix)).logits
    loss = (logits * torch.linspace(-1, 1, logits.shape[-1])).sum()
    loss.backward()
    return loss.detach(), keys.grad, values.grad


@pytest.mark.parametrize("name", ["tiny-random-gpt2", "tiny-random-llama"])
def test_prefix_gradients_are_identical_with_and_without_checkpointing(name):
    lm, _ = load_causal_lm(name)
    lm.requires_grad_(False).eval()
    plain = prefix_gradients(lm)
    assert enable_activation_checkpointing(lm) == len(decoder_layers(lm)) == lm.config.num_hidden_layers
    recomputed = []
    original = decoder_layers(lm)[0].mlp.forward

    def counting(*args, **kwargs):  # the layer really runs again during backward
        recomputed.append(torch.is_grad_enabled())
        return original(*args, **kwargs)

    decoder_layers(lm)[0].mlp.forward = counting
    checkpointed = prefix_gradients(lm)
    assert len(recomputed) == 2  # forward + its replay in the backward pass
    for a, b in zip(plain, checkpointed):
        assert torch.equal(a, b)
    assert plain[1].abs().sum() > 0 and plain[2].abs().sum() > 0
    del decoder_layers(lm)[0].mlp.forward
    disable_activation_checkpointing(lm)
    assert all(torch.equal(a, b) for a, b in zip(plain, prefix_gradients(lm)))


def test_checkpointing_changes_nothing_without_autograd():
    lm, _ = load_causal_lm("tiny-random-llama")
    tokens = torch.randint(5, 1000, (2, 5))
    with torch.no_grad():
        before = lm(tokens).logits
        enable_activation_checkpointing(lm)
        assert torch.equal(lm(tokens).logits, before)


def test_config_key_checkpoints_the_lm_of_prompt_crs_with_the_same_gradients(tmp_path):
    from crslab_mscrs.model.prompt_crs import PromptCRS
    from crslab_mscrs.model.tiny import tiny_batch, tiny_opt, tiny_side_data, tiny_vocab, write_tiny_graph_files

    features = write_tiny_graph_files(tmp_path)
    grads = []
    for on in (False, True):
        torch.manual_seed(0)
        model = PromptCRS.from_opt(tiny_opt(features, lm_activation_checkpointing=on), tiny_vocab(), tiny_side_data())
        assert all(getattr(layer, "_mscrs_checkpointed_forward", False) == on for layer in decoder_layers(model.lm))
        model.train()
        model.recommend(tiny_batch(model.lm_tokenizer, model.text_tokenizer, "rec")).loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and any(n.startswith("prompt_encoder") for n in grads[0])
    for name in grads[0]:
        assert torch.equal(grads[0][name], grads[1][name]), name


def test_auto_turns_checkpointing_on_where_the_step_would_not_fit():
    from types import SimpleNamespace

    from crslab_mscrs.model.activation_checkpointing import activation_bytes_per_token, resolve_activation_checkpointing

    smollm2 = SimpleNamespace(hidden_size=576, num_attention_heads=9, num_hidden_layers=30)  # SmolLM2-135M
    assert activation_bytes_per_token(smollm2, 210) / 1e6 == pytest.approx(1.742, abs=1e-3)  # lm_memory.py measured 1.35
    redial_rec = [(64, 210), (8, 397)]  # rec and conv steps of the ReDial configs
    on, reason = resolve_activation_checkpointing("auto", smollm2, redial_rec, memory_bytes=24 * 10**9)
    assert on and "64 rows x 210 positions" in reason  # a 24 GB host: ~23 GB would not fit
    assert not resolve_activation_checkpointing("auto", smollm2, redial_rec, memory_bytes=139 * 10**9)[0]  # an H200
    assert resolve_activation_checkpointing(False, smollm2, redial_rec, memory_bytes=1)[0] is False  # explicit wins
    assert resolve_activation_checkpointing("auto", smollm2, [], memory_bytes=1)[0] is False
    with pytest.raises(ValueError, match="true, false or auto"):
        resolve_activation_checkpointing("yes", smollm2, redial_rec)


def test_prompt_crs_resolves_auto_from_the_stage_batch_sizes(tmp_path):
    from crslab_mscrs.model.prompt_crs import PromptCRS, training_step_shapes
    from crslab_mscrs.model.tiny import tiny_opt, tiny_side_data, tiny_vocab, write_tiny_graph_files

    features = write_tiny_graph_files(tmp_path)
    opt = tiny_opt(features, lm_activation_checkpointing="auto", rec={"batch_size": 4}, conv={"batch_size": 2})
    assert training_step_shapes(opt)[0][0] == 4 and len(training_step_shapes(opt)) == 2
    model = PromptCRS.from_opt(opt, tiny_vocab(), tiny_side_data())  # a tiny LM: a few KB per step, off
    assert model.config.lm_activation_checkpointing is False
    assert not any(getattr(layer, "_mscrs_checkpointed_forward", False) for layer in decoder_layers(model.lm))
