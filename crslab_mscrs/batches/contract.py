"""The batches :class:`~crslab_mscrs.batches.dataloader.MSCRSDataLoader` builds and
:class:`~crslab_mscrs.model.prompt_crs.PromptCRS` reads, one ``TypedDict`` per task.

Shapes: ``B`` rows, ``L`` LM tokens, ``P`` text-encoder tokens, ``E`` context entities,
``K`` demonstrations of ``Ld`` tokens. Text format: :mod:`crslab_mscrs.batches.text` (turns
prefixed ``User: `` / ``System: ``, joined by the LM's eos token; rec / generation inputs end
with the reply prompt ``System:``).

Padding: the LM input is LEFT padded for ``pretrain`` / ``rec`` / ``rec_eval`` /
``generation`` (the score and the first generated token read the last position;
``PromptCRS.recommend`` / ``pretrain`` raise ValueError on a right-padded batch) and RIGHT padded for
``conv``. Position ids count real tokens only (``crslab_mscrs.model.prefix_cache``).
Entities are padded with the vocabulary's ``pad_entity`` (``entity_mask`` False there).

Labels: ``pretrain`` any entity id; ``rec`` item entity ids only (``PromptCRS.recommend``
raises ValueError otherwise; the loader drops non-item targets, see ``set_item_ids``);
``conv`` token ids of the response, ``IGNORE_INDEX`` (-100) elsewhere, response movie names
masked as ``<movie>``.
"""
from __future__ import annotations

from typing import List, Optional, TypedDict

import torch


class ModelInputs(TypedDict):
    """Keys of every task's batch."""

    input_ids: torch.Tensor              # [B, L] LM tokens of the dialogue context
    attention_mask: torch.Tensor         # [B, L] 1 = real token
    prompt_input_ids: torch.Tensor       # [B, P] text-encoder tokens of the same context (the prompt)
    prompt_attention_mask: torch.Tensor  # [B, P]
    entity_ids: torch.Tensor             # [B, E] most recent context entities (entity_max_length)
    entity_mask: torch.Tensor            # [B, E] bool


class Demonstrations(TypedDict, total=False):
    """Option ``use_demonstrations``: conv / generation batches carry these (MSCRS section 3.6);
    each demonstration becomes one extra conversation prompt vector."""

    demo_input_ids: torch.Tensor         # [B, K, Ld] text-encoder tokens of retrieved training turns
    demo_attention_mask: torch.Tensor    # [B, K, Ld]
    demo_mask: torch.Tensor              # [B, K] bool: False = no demonstration in that slot


class TurnMeta(TypedDict):
    """``batch["meta"]`` of ``rec_eval`` / ``generation`` batches: one list entry per row."""

    conv_ids: List[Optional[str]]
    turn_indices: List[int]
    items: List[List[int]]               # label items of the turn (all of them, for evaluation)
    references: List[str]                # response text, movie names kept
    references_masked: List[str]         # response text, movie names -> placeholder
    context_entities: List[List[int]]


class PretrainBatch(ModelInputs):
    """One row per (turn, target): context + response as input, so its recall is inflated."""

    labels: torch.Tensor                 # [B] target entity ids


class RecBatch(ModelInputs):
    """One row per (recommender turn, item), CRSLab style."""

    labels: torch.Tensor                 # [B] item entity ids


class RecEvalBatch(ModelInputs):
    """One row per recommender turn with items (test rankings are per turn)."""

    meta: TurnMeta


class ConvBatch(ModelInputs, Demonstrations):
    """One row per recommender turn: context + masked response, right padded."""

    labels: torch.Tensor                 # [B, L] response token ids, IGNORE_INDEX elsewhere


class GenerationBatch(ModelInputs, Demonstrations):
    """One row per recommender turn: context ending with the reply prompt, left padded."""

    meta: TurnMeta


class LiveBatch(ModelInputs):
    """One live dialogue in interactive mode (rec and generation at once)."""

    prompt_ids: List[List[int]]          # the prompt tokens, for demonstration retrieval
