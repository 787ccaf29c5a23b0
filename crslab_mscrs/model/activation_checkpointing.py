"""Activation checkpointing of the frozen LM (config key ``lm_activation_checkpointing``).

The LM is frozen, yet a training step keeps every layer's activations (attention
probabilities included) to pass gradients back to the prefix keys/values. With this option
each decoder layer keeps only its input and recomputes its forward during the backward pass
(``torch.utils.checkpoint``, non-reentrant): peak memory falls from about one layer's
activations per layer to one layer's, for about one more LM forward of compute.

Why not ``transformers``' own ``gradient_checkpointing_enable``: it acts only in train mode
(the frozen LM stays in eval mode) and drops the KV cache inside checkpointed layers, which is
where the prefixes live (:mod:`.prefix_cache`). Here the cache stays: each layer's cache
entry (the prefix, before the layer appends its own keys) is put back before the forward and
before its recomputation, so the replay reads what the forward read. Without autograd
(evaluation, generation) the layers run as they are.
"""
from __future__ import annotations

import inspect
import os
from typing import Optional

import torch
from torch.utils.checkpoint import checkpoint

ATTRIBUTE = "_mscrs_checkpointed_forward"


def decoder_layers(lm: torch.nn.Module):
    """The LM's decoder layers (``transformers``' ``GradientCheckpointingLayer`` modules)."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    return [m for m in lm.modules() if isinstance(m, GradientCheckpointingLayer)]


def _layer_index(layer: torch.nn.Module) -> Optional[int]:
    for module in layer.modules():
        index = getattr(module, "layer_idx", None)
        if isinstance(index, int):
            return index
    return None


CACHE_ARGUMENTS = ("cache", "past_key_values", "layer_past")


def _cache_argument(signature: inspect.Signature, args, kwargs):
    """The cache a layer was called with (by keyword or, as GPT-2 passes it, by position)."""
    try:
        bound = signature.bind_partial(*args, **kwargs).arguments
    except TypeError:
        return None
    return next((bound[name] for name in CACHE_ARGUMENTS if bound.get(name) is not None), None)


def _checkpointed(layer: torch.nn.Module, forward, index: Optional[int]):
    signature = inspect.signature(forward)

    def run(*args, **kwargs):
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        cache = _cache_argument(signature, args, kwargs)
        entry = None
        if cache is not None and index is not None and index < len(getattr(cache, "layers", ())):
            entry = (cache.layers[index].keys, cache.layers[index].values)

        def replay(*a, **k):
            if entry is not None:  # the cache as this layer found it (the recompute must not append twice)
                cache.layers[index].keys, cache.layers[index].values = entry
            return forward(*a, **k)

        return checkpoint(replay, *args, use_reentrant=False, **kwargs)
    return run


def enable_activation_checkpointing(lm: torch.nn.Module) -> int:
    """Checkpoint every decoder layer of ``lm`` (idempotent); returns how many."""
    layers = decoder_layers(lm)
    if not layers:
        raise ValueError(f"lm_activation_checkpointing: {type(lm).__name__} has no transformers decoder layers")
    for layer in layers:
        if getattr(layer, ATTRIBUTE, False):
            continue
        layer.forward = _checkpointed(layer, layer.forward, _layer_index(layer))
        setattr(layer, ATTRIBUTE, True)
    return len(layers)


def disable_activation_checkpointing(lm: torch.nn.Module) -> None:
    """Undo :func:`enable_activation_checkpointing`."""
    for layer in decoder_layers(lm):
        if getattr(layer, ATTRIBUTE, False):
            del layer.forward  # the class's forward again
            setattr(layer, ATTRIBUTE, False)


AUTO_MEMORY_SHARE = 0.25  # auto: on when one training step's LM activations would exceed this share of the memory


def activation_bytes_per_token(lm_config, sequence_length: int, element_bytes: int = 4) -> float:
    """Activation memory a training step keeps per token in the LM without checkpointing.

    Korthikanti et al., "Reducing Activation Recomputation in Large Transformer Models"
    (MLSys 2023), eq. 1: per layer and token ``h (34 + 5 a s / h)`` bytes at 2-byte activations
    (h hidden size, a heads, s sequence length), scaled to ``element_bytes``. For SmolLM2-135M
    in float32 at 210 positions this gives 1.74 MB per token; benchmarks/lm_memory.py measured
    1.35 MB (no dropout masks in the frozen LM), so the estimate errs on the safe side.
    """
    h = int(getattr(lm_config, "hidden_size", None) or lm_config.n_embd)
    heads = int(getattr(lm_config, "num_attention_heads", None) or lm_config.n_head)
    layers = int(getattr(lm_config, "num_hidden_layers", None) or lm_config.n_layer)
    return layers * h * (34 + 5 * heads * sequence_length / h) * element_bytes / 2


def device_memory_bytes(device=None) -> int:
    """Total memory of ``device``: the GPU's, or the host's for a CPU (None)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def resolve_activation_checkpointing(setting, lm_config, step_shapes, device=None, element_bytes: int = 4,
                                     memory_bytes: Optional[int] = None) -> tuple:
    """``(on, reason)`` for the config value ``true`` / ``false`` / ``"auto"``.

    ``step_shapes``: ``(rows, positions)`` of each training step type the run will take
    (batch size x LM positions: context + prefix, plus the response for conversation).
    ``auto`` turns checkpointing on when the largest step's estimated activations
    (:func:`activation_bytes_per_token`) exceed :data:`AUTO_MEMORY_SHARE` of the device's
    memory: on a CPU host the ReDial rec step (64 x 210) would need about 23 GB, so it is on;
    on a 139 GB GPU it is off, and the recompute (one more LM forward) is saved.
    """
    if isinstance(setting, bool):
        return setting, "set in the config"
    if setting != "auto":
        raise ValueError(f"lm_activation_checkpointing must be true, false or auto, got {setting!r}")
    if not step_shapes:
        return False, "auto: no training step"
    need = max(rows * positions * activation_bytes_per_token(lm_config, positions, element_bytes)
               for rows, positions in step_shapes)
    memory = memory_bytes if memory_bytes is not None else device_memory_bytes(device)
    on = need > AUTO_MEMORY_SHARE * memory
    rows, positions = max(step_shapes, key=lambda shape: shape[0] * shape[1])
    amount = f"{need / 1e9:.1f} GB" if need >= 1e9 else f"{need / 1e6:.0f} MB"
    return on, (f"auto: about {amount} of LM activations for the largest step ({rows} rows x "
                f"{positions} positions) {'>' if on else '<='} {AUTO_MEMORY_SHARE:.0%} of "
                f"{memory / 1e9:.1f} GB ({torch.device(device).type if device is not None else 'cpu'})")
