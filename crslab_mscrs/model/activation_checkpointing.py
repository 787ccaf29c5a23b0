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
