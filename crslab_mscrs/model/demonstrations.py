"""Retrieved demonstrations as extra prompt vectors (MSCRS, SIGIR 2025, conversation stage).

MSCRS conditions reply generation on similar training dialogues. Here each retrieved
demonstration (its text, tokenised for the frozen text encoder) is encoded, mean-pooled over
its real tokens and projected to the LM hidden size: one extra prompt vector per
demonstration, placed after the task prefix (padding demonstrations are masked). Switched on
with the config key ``use_demonstrations`` (default false). Batch keys (optional):
``demo_input_ids [B, K, Ld]``, ``demo_attention_mask [B, K, Ld]``, ``demo_mask [B, K]``
(True = a real demonstration; default: any real token).

:class:`DemonstrationRetriever` finds the demonstrations: cosine top-k between pooled
text-encoder embeddings of the query contexts and of the training contexts, in blocks (no
N x N matrix), excluding the query's own conversation (no leakage of the reply being
generated). Building the index and tokenising demonstrations is the data loader's job.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from crslab_mscrs.model.entity_encoder import ResidualMLP
from crslab_mscrs.model.prompt_encoder import masked_mean


class DemonstrationEncoder(nn.Module):
    """Pooled frozen text-encoder states of K demonstrations -> K prompt vectors [B, K, H]."""

    def __init__(self, text_hidden: int, hidden: int):
        super().__init__()
        self.projection = nn.Sequential(ResidualMLP(text_hidden), nn.Linear(text_hidden, hidden))

    def forward(self, text_encoder: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        batch, num_demos, length = input_ids.shape
        flat_ids, flat_mask = input_ids.view(-1, length), attention_mask.view(-1, length)
        with torch.no_grad():
            states = text_encoder(input_ids=flat_ids, attention_mask=flat_mask).last_hidden_state
        pooled = masked_mean(states, flat_mask.bool())
        return self.projection(pooled).view(batch, num_demos, -1)


class DemonstrationRetriever:
    """Cosine top-k retrieval over L2-normalised training-context embeddings.

    Args:
        embeddings: ``[N, d]`` one embedding per training context (e.g. masked-mean pooled
            text-encoder states).
        conversation_ids: ``N`` conversation ids, to exclude a query's own conversation.
        block_size: query rows scored at once (memory ~ block_size x N floats).
    """

    def __init__(self, embeddings: torch.Tensor, conversation_ids: Sequence, block_size: int = 1024):
        if embeddings.size(0) != len(conversation_ids):
            raise ValueError(f"{embeddings.size(0)} embeddings but {len(conversation_ids)} conversation ids.")
        self.embeddings = F.normalize(embeddings.float(), dim=-1)
        self.conversation_ids = list(conversation_ids)
        self.block_size = block_size

    def retrieve(self, queries: torch.Tensor, k: int, query_conversation_ids: Optional[Sequence] = None
                 ) -> torch.Tensor:
        """Indices ``[Q, k]`` of the most similar training contexts (-1 when fewer exist)."""
        queries = F.normalize(queries.float(), dim=-1)
        results = []
        index_of = {}
        for position, conv_id in enumerate(self.conversation_ids):
            index_of.setdefault(conv_id, []).append(position)
        for start in range(0, queries.size(0), self.block_size):
            scores = queries[start:start + self.block_size] @ self.embeddings.t()
            if query_conversation_ids is not None:
                for row, conv_id in enumerate(query_conversation_ids[start:start + self.block_size]):
                    scores[row, index_of.get(conv_id, [])] = float("-inf")
            top = scores.topk(min(k, scores.size(1)), dim=1)
            indices = top.indices.masked_fill(torch.isinf(top.values), -1)
            if indices.size(1) < k:
                indices = F.pad(indices, (0, k - indices.size(1)), value=-1)
            results.append(indices)
        return torch.cat(results) if results else torch.zeros(0, k, dtype=torch.long)
