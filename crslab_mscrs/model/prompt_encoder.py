"""Knowledge-aware prompt encoder of UniCRS (KDD 2022, section 4.2), reused by MSCRS (section 3.5).

Inputs: frozen text-encoder token states of the dialogue context ``T [B, Lt, d_text]`` and the
fused (multimodal) embeddings of the context entities ``N [B, Le, H]``::

    T' = Linear(MLP_res(T))                                   (d_text -> H)
    S  = (T' W) N^T / sqrt(H)                                 [B, Lt, Le], padding masked
    rec / pretrain (entity-oriented prompt):  P = softmax_tokens(S)^T T' + N   (Le positions)
    conv            (token-oriented prompt):  P = softmax_entities(S) N + T'   (Lt positions)
    prefix = Linear(MLP_res([task prefix ; P]))  -> per layer key/value  [layers, 2, B, kv, len, hd]

Padding tokens and padding entities are masked in the softmax and in the LM attention mask
(bug 5 of the authors' code); a context without entities gives zero entity attention.
UniCRS divides the scores by H; we use the usual sqrt(H) scaling. Task-specific learned
prefix vectors (``n_prefix_rec`` for recommendation, ``n_prefix_conv`` for conversation; none
in pre-training, as in UniCRS) are prepended. The optional InfoNCE loss (temperature 0.07)
aligns the masked mean of the token view with the masked mean of the entity view across the
batch (samples without entities are left out).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from crslab_mscrs.model.entity_encoder import ResidualMLP
from crslab_mscrs.model.prefix_cache import LMGeometry, PrefixKeyValues

TASKS = ("pretrain", "rec", "conv")


@dataclass
class PromptOutput:
    prefix: PrefixKeyValues
    contrastive_loss: Optional[torch.Tensor]


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over dim 1 of ``states [B, L, H]`` where ``mask [B, L]`` is True; zeros if none."""
    weights = mask.to(states.dtype).unsqueeze(-1)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def info_nce(view_a: torch.Tensor, view_b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between two views [N, H] (row i of a and b are the positive pair)."""
    a, b = F.normalize(view_a, dim=-1), F.normalize(view_b, dim=-1)
    logits = a @ b.t() / temperature
    targets = torch.arange(a.size(0), device=a.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets))


class PromptEncoder(nn.Module):
    """Cross-attention prompt from context tokens and entities, projected to LM prefixes.

    Args:
        text_hidden: hidden size of the frozen text encoder.
        geometry: key/value geometry of the LM (layers, kv heads, head dim, hidden).
        n_prefix_rec, n_prefix_conv: numbers of learned task prefix vectors.
        contrastive_temperature: InfoNCE temperature.
    """

    def __init__(self, text_hidden: int, geometry: LMGeometry, n_prefix_rec: int = 10,
                 n_prefix_conv: int = 20, contrastive_temperature: float = 0.07):
        super().__init__()
        hidden = geometry.hidden_size
        self.geometry, self.hidden = geometry, hidden
        self.contrastive_temperature = contrastive_temperature
        self.token_projection = nn.Sequential(ResidualMLP(text_hidden), nn.Linear(text_hidden, hidden))
        self.cross_attention = nn.Linear(hidden, hidden, bias=False)
        self.prompt_mlp = ResidualMLP(hidden)
        self.prefix_projection = nn.Linear(hidden, geometry.num_layers * 2 * geometry.kv_size)
        self.task_prefix = nn.ParameterDict()
        self.task_prefix_mlp = nn.ModuleDict()
        for task, length in (("rec", n_prefix_rec), ("conv", n_prefix_conv)):
            if length > 0:
                self.task_prefix[task] = nn.Parameter(torch.randn(length, hidden) * hidden ** -0.5)
                self.task_prefix_mlp[task] = ResidualMLP(hidden)

    def project_tokens(self, token_states: torch.Tensor) -> torch.Tensor:
        return self.token_projection(token_states)

    def forward(self, token_states: torch.Tensor, token_mask: torch.Tensor,
                entity_embeds: torch.Tensor, entity_mask: torch.Tensor, task: str,
                with_contrastive: bool = False, extra_prompt: Optional[torch.Tensor] = None,
                extra_mask: Optional[torch.Tensor] = None) -> PromptOutput:
        """Build the prefix for ``task`` in ``("pretrain", "rec", "conv")``.

        Args:
            token_states: ``[B, Lt, d_text]`` frozen text-encoder outputs.
            token_mask: ``[B, Lt]`` True/1 on real tokens.
            entity_embeds: ``[B, Le, H]`` fused entity embeddings of the context entities.
            entity_mask: ``[B, Le]`` True on real entities.
            extra_prompt, extra_mask: optional ``[B, K, H]`` extra prompt vectors (retrieved
                demonstrations) and their mask, placed between the task prefix and the prompt.
        """
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
        token_mask, entity_mask = token_mask.bool(), entity_mask.bool()
        tokens = self.project_tokens(token_states)
        scores = self.cross_attention(tokens) @ entity_embeds.transpose(1, 2) / self.hidden ** 0.5
        pair_mask = token_mask.unsqueeze(2) & entity_mask.unsqueeze(1)  # [B, Lt, Le]
        scores = scores.masked_fill(~pair_mask, float("-inf"))
        if task == "conv":
            weights = torch.softmax(scores, dim=2).nan_to_num(0.0)  # rows without entities -> 0
            prompt, prompt_mask = weights @ entity_embeds + tokens, token_mask
        else:
            weights = torch.softmax(scores, dim=1).nan_to_num(0.0)  # entities attend over tokens
            prompt, prompt_mask = weights.transpose(1, 2) @ tokens + entity_embeds, entity_mask
        prompt = prompt * prompt_mask.unsqueeze(-1).to(prompt.dtype)
        if extra_prompt is not None:
            extra_mask = extra_mask.bool() if extra_mask is not None else \
                torch.ones(extra_prompt.shape[:2], dtype=torch.bool, device=prompt.device)
            prompt = torch.cat([extra_prompt * extra_mask.unsqueeze(-1).to(prompt.dtype), prompt], dim=1)
            prompt_mask = torch.cat([extra_mask, prompt_mask], dim=1)
        prompt = self.prompt_mlp(prompt)
        if task in self.task_prefix:
            batch = prompt.size(0)
            task_vectors = self.task_prefix_mlp[task](self.task_prefix[task])
            prompt = torch.cat([task_vectors.unsqueeze(0).expand(batch, -1, -1), prompt], dim=1)
            ones = torch.ones(batch, task_vectors.size(0), dtype=torch.bool, device=prompt.device)
            prompt_mask = torch.cat([ones, prompt_mask], dim=1)
        prefix = self._to_key_values(prompt, prompt_mask)
        contrastive = self.contrastive_loss(tokens, token_mask, entity_embeds, entity_mask) \
            if with_contrastive else None
        return PromptOutput(prefix, contrastive)

    def _to_key_values(self, prompt: torch.Tensor, prompt_mask: torch.Tensor) -> PrefixKeyValues:
        geometry = self.geometry
        batch, length, _ = prompt.shape
        projected = self.prefix_projection(prompt).view(
            batch, length, geometry.num_layers, 2, geometry.num_kv_heads, geometry.head_dim)
        key_values = projected.permute(2, 3, 0, 4, 1, 5)  # [layers, 2, B, kv, len, head_dim]
        return PrefixKeyValues(key_values[:, 0], key_values[:, 1], prompt_mask.long())

    def contrastive_loss(self, tokens: torch.Tensor, token_mask: torch.Tensor,
                         entity_embeds: torch.Tensor, entity_mask: torch.Tensor) -> torch.Tensor:
        """InfoNCE between the pooled token view and the pooled entity view (masked pooling)."""
        has_entities = entity_mask.any(1)
        if int(has_entities.sum()) < 2:
            return tokens.new_zeros(())
        token_view = masked_mean(tokens, token_mask)[has_entities]
        entity_view = masked_mean(entity_embeds, entity_mask)[has_entities]
        return info_nce(token_view, entity_view, self.contrastive_temperature)
