"""KBRD's user representation from the context entities.

Fixes ``crslab/model/crs/kbrd/kbrd.py:177`` (``KBRDModel.encode_user``): the wheel tests
``if entity_list is not None`` and then appends a ZERO vector, so every user embedding is
zero and KBRD ignores the dialogue (CRSLab's main branch tests ``is None``). The fixed
method follows KBRD (Chen et al., 2019): self-attention pooling of the R-GCN embeddings
of the entities mentioned in the context; a context without entities gets a zero vector.
"""
from __future__ import annotations

import torch

from ._patching import is_marked, mark


def encode_user(self, entity_lists, kg_embedding):
    """(batch) lists of context entity ids -> (batch, kg_emb_dim) user embeddings."""
    user_representations = []
    for entity_list in entity_lists:
        if entity_list is None or len(entity_list) == 0:
            user_representations.append(torch.zeros(self.user_emb_dim, device=kg_embedding.device,
                                                    dtype=kg_embedding.dtype))
            continue
        entity_ids = torch.as_tensor(entity_list, dtype=torch.long, device=kg_embedding.device)
        user_representations.append(self.kg_attn(kg_embedding[entity_ids]))
    return torch.stack(user_representations, dim=0)


mark(encode_user, "kbrd_user_embedding")


def install() -> None:
    from crslab.model.crs.kbrd.kbrd import KBRDModel

    if not is_marked(KBRDModel.encode_user):
        KBRDModel.encode_user = encode_user
