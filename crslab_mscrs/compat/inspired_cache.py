"""INSPIRED's GPT-2 turn loop on transformers' ``Cache`` objects.

Fixes ``crslab/model/crs/inspired/inspired_conv.py:74,80`` (``InspiredConvModel.converse``):
the 1024-token guard reads ``past[0].shape[3]``, i.e. the legacy tuple of per-layer tensors;
transformers 5 returns a ``DynamicCache`` (not subscriptable, TypeError on the second turn
of every batch). The replacement reads the cached length with ``get_seq_length()`` (legacy
tuples still work) and is otherwise the original loop. The cache goes in as the second
positional argument, which is ``past_key_values`` in transformers 4 and ``cache`` in 5.
"""
from __future__ import annotations

import torch

from ._patching import is_marked, mark

GPT2_MAX_POSITIONS = 1024


def cached_length(past) -> int:
    """Number of positions held by a transformers cache or a legacy ``past`` tuple."""
    if past is None:
        return 0
    if hasattr(past, "get_seq_length"):
        return int(past.get_seq_length())
    first_layer = past[0]
    if isinstance(first_layer, (tuple, list)):  # ((key, value), ...), key: (bs, heads, seq, dim)
        return int(first_layer[0].shape[-2])
    return int(first_layer.shape[3])  # stacked (2, bs, heads, seq, dim)


def _returned_cache(outputs):
    cache = getattr(outputs, "cache", None)
    return cache if cache is not None else outputs.past_key_values


def converse(self, batch, mode):
    """Same contract as ``InspiredConvModel.converse`` (``(loss, pred)`` or generated ids)."""
    roles, input_ids, context, _ = batch
    if mode == 'test':
        return self.generate(roles, context)

    past = None
    lm_logits_all = []
    for turn, turn_ids in enumerate(input_ids.unsqueeze(1)):
        model = self.model_sk if roles[turn] == 0 else self.model_rm
        # GPT-2 supports at most 1024 positions: drop the history when it would overflow
        if past is not None and cached_length(past) + turn_ids.shape[1] > GPT2_MAX_POSITIONS:
            past = None
        outputs = model(turn_ids, past)
        lm_logits_all.append(outputs.logits)
        past = _returned_cache(outputs)

    lm_logits_all = torch.cat(lm_logits_all, dim=0)  # (batch, seq_len, vocab)
    # positions 1..response_truncate of the response are the targets
    loss = self.calculate_loss(lm_logits_all[:, -self.response_truncate:-1, :],
                               input_ids[:, -self.response_truncate + 1:])
    pred = torch.max(lm_logits_all, dim=2)[1][:, -self.response_truncate:]
    return loss, pred


mark(converse, "inspired_cache")


def install() -> None:
    from crslab.model.crs.inspired.inspired_conv import InspiredConvModel

    if not is_marked(InspiredConvModel.converse):
        InspiredConvModel.converse = converse
