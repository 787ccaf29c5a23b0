"""Prefix tuning through the Hugging Face ``Cache`` API, for any decoder-only causal LM.

Li & Liang, "Prefix-Tuning" (ACL 2021), as used by UniCRS/MSCRS: every attention layer sees P
extra key/value vectors before the real tokens. Instead of patching GPT-2 (UniCRS), the
prefixes are written into a ``transformers.DynamicCache`` (one ``update(key, value, layer)``
per layer, shapes ``[B, kv_heads, P, head_dim]``), so GPT-2/DialoGPT and Llama-style models
(grouped-query attention, rotary) work alike. The 2-D attention mask is extended with the
prefix mask (padded prompt positions are masked, bug 5), and ``position_ids`` count only the
real tokens (the first real token gets position 0, left padding included): prefixes carry no
position, like past keys whose rotary phase is already applied.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import torch
from transformers import DynamicCache


@dataclass(frozen=True)
class LMGeometry:
    """Shape of an LM's key/value cache."""
    num_layers: int
    num_kv_heads: int
    head_dim: int
    hidden_size: int

    @classmethod
    def from_config(cls, config) -> "LMGeometry":
        text_config = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
        hidden = text_config.hidden_size
        heads = text_config.num_attention_heads
        kv_heads = getattr(text_config, "num_key_value_heads", None) or heads
        head_dim = getattr(text_config, "head_dim", None) or hidden // heads
        return cls(text_config.num_hidden_layers, kv_heads, head_dim, hidden)

    @property
    def kv_size(self) -> int:
        """Size of one key (or value) vector of one layer, all kv heads together."""
        return self.num_kv_heads * self.head_dim


@dataclass
class PrefixKeyValues:
    """Per-layer prefix keys/values ``[layers, B, kv_heads, P, head_dim]`` and mask ``[B, P]``."""
    keys: torch.Tensor
    values: torch.Tensor
    mask: torch.Tensor

    @property
    def length(self) -> int:
        return self.keys.size(3)

    def repeat_interleave(self, repeats: int) -> "PrefixKeyValues":
        """Repeat every sample ``repeats`` times (beam search / several samples)."""
        return PrefixKeyValues(self.keys.repeat_interleave(repeats, dim=1),
                               self.values.repeat_interleave(repeats, dim=1),
                               self.mask.repeat_interleave(repeats, dim=0))


def build_prefix_cache(prefix: PrefixKeyValues) -> DynamicCache:
    """A fresh ``DynamicCache`` holding the prefixes (the LM appends its own keys after them)."""
    cache = DynamicCache()
    for layer in range(prefix.keys.size(0)):
        cache.update(prefix.keys[layer], prefix.values[layer], layer)
    return cache


def token_position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions of the real tokens counted from 0 (padding positions get 0)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def prefixed_lm_inputs(input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       prefix: Optional[PrefixKeyValues]) -> Dict[str, object]:
    """Keyword arguments for ``lm(**kwargs)`` that put ``prefix`` in front of ``input_ids``."""
    position_ids = token_position_ids(attention_mask)
    if prefix is None:
        return {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids}
    if prefix.keys.size(1) != input_ids.size(0):
        raise ValueError(f"prefix batch {prefix.keys.size(1)} != input batch {input_ids.size(0)}.")
    full_mask = torch.cat([prefix.mask.to(attention_mask.dtype), attention_mask], dim=1)
    return {"input_ids": input_ids, "attention_mask": full_mask, "position_ids": position_ids,
            "cache": build_prefix_cache(prefix), "use_cache": True}
