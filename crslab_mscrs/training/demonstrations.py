"""Retrieved demonstrations for the conversation stage (MSCRS section 3.6, option
``use_demonstrations``): the data side of :mod:`crslab_mscrs.model.demonstrations`.

Index: every recommender turn of the TRAIN split. Its key is the masked-mean pooled frozen
text-encoder embedding of its dialogue context (the same text-encoder tokens as the
prompt); its demonstration text is the last ``demo_context_turns`` context turns followed
by the system response, tokenised for the text encoder and cut to
``demonstration_max_length`` tokens (from the left, so the response is kept).

Query: the context of each conv / generation turn of a split (or of the live dialogue in
``interact``); the top ``n_demonstrations`` training turns by cosine similarity are attached,
never from the query's own conversation (no leakage of the reply being generated).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
from loguru import logger
from tqdm import tqdm

from crslab_mscrs.model.demonstrations import DemonstrationRetriever
from crslab_mscrs.model.prompt_encoder import masked_mean
from crslab_mscrs.batches.collate import pad_ids


class DemonstrationIndex:
    """Pooled-context index over the training recommender turns."""

    def __init__(self, core, train_loader, k: int = 3, max_length: int = 128, context_turns: int = 2,
                 batch_size: int = 32, device: Optional[torch.device] = None):
        self.core, self.k, self.batch_size = core, int(k), int(batch_size)
        self.device = device or torch.device("cpu")
        enc = train_loader.encoder
        turns = [train_loader.turns[i] for i in train_loader.conv_turns()]
        if not turns:
            raise ValueError("use_demonstrations: the train split has no recommender turns to retrieve from")
        self.texts: List[List[int]] = []
        for turn in turns:
            pieces = turn.context[-context_turns:] + [turn.response_turn] if context_turns > 0 else [turn.response_turn]
            ids = enc.prompt(pieces)
            self.texts.append(ids[:1] + ids[1:][-(max_length - 1):] if len(ids) > max_length else ids)
        keys = self.embed([train_loader._feature("context", t.index)["prompt"] for t in turns], enc.text_pad_id)
        self.retriever = DemonstrationRetriever(keys, [t.conv_id for t in turns])
        self.pad_id = enc.text_pad_id
        logger.info(f"[demonstrations: index of {len(turns)} training turns, k={self.k}]")

    @torch.no_grad()
    def embed(self, prompts: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
        """Masked-mean pooled frozen text-encoder states, one row per prompt."""
        rows = []
        encoder = self.core.text_encoder
        for start in tqdm(range(0, len(prompts), self.batch_size), desc="demonstrations: encode", leave=False):
            ids, mask = pad_ids(prompts[start:start + self.batch_size], pad_id, left=False)
            states = encoder(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).last_hidden_state
            rows.append(masked_mean(states.float(), mask.bool().to(self.device)).cpu())
        return torch.cat(rows)

    def retrieve(self, prompts: Sequence[Sequence[int]], conv_ids: Sequence) -> List[List[List[int]]]:
        """For each query prompt: the token ids of its k demonstrations (empty = none)."""
        found = self.retriever.retrieve(self.embed(prompts, self.pad_id), self.k, list(conv_ids))
        return [[self.texts[j] if j >= 0 else [] for j in row.tolist()] for row in found]

    def attach(self, loader) -> None:
        """Give every conv turn of ``loader`` its demonstrations (used by its batches)."""
        indices = loader.conv_turns()
        prompts = [loader._feature("context", i)["prompt"] for i in indices]
        demos = self.retrieve(prompts, [loader.turns[i].conv_id for i in indices])
        loader.set_demonstrations(dict(zip(indices, demos)))


def demonstration_tensors(demos: Sequence[Sequence[Sequence[int]]], pad_id: int) -> Dict[str, torch.Tensor]:
    """``demo_input_ids [B, K, Ld]``, ``demo_attention_mask [B, K, Ld]``, ``demo_mask [B, K]``."""
    k = max(1, max((len(row) for row in demos), default=1))
    flat = [list(row[j]) if j < len(row) else [] for row in demos for j in range(k)]
    ids, mask = pad_ids(flat, pad_id, left=False)
    batch = len(demos)
    ids, mask = ids.view(batch, k, -1), mask.view(batch, k, -1)
    return {"demo_input_ids": ids, "demo_attention_mask": mask, "demo_mask": mask.bool().any(-1)}


class Demonstrations:
    """Option ``use_demonstrations`` of a run (:class:`~.settings.DemonstrationSettings`): the
    index is built on first use; :meth:`attach` gives the loaders' conv turns theirs."""

    def __init__(self, settings, core, train_loader, device: Optional[torch.device] = None):
        self.settings, self.core, self.train_loader, self.device = settings, core, train_loader, device
        self._index: Optional[DemonstrationIndex] = None

    @property
    def index(self) -> Optional[DemonstrationIndex]:
        """The training-turn index (None when the option is off)."""
        if not self.settings.enabled:
            return None
        if self._index is None:
            s = self.settings
            self._index = DemonstrationIndex(self.core, self.train_loader, k=s.k, max_length=s.max_length,
                                             context_turns=s.context_turns, device=self.device)
        return self._index

    def attach(self, loaders) -> None:
        index = self.index
        if index is not None:
            for loader in loaders:
                if loader.demonstrations is None:
                    index.attach(loader)

    def live(self, batch: dict) -> dict:
        """``batch`` of a live dialogue (``interact``) with its retrieved demonstrations."""
        index = self.index
        if index is not None:
            batch.update(demonstration_tensors(index.retrieve(batch["prompt_ids"], [None]), index.pad_id))
        return batch
