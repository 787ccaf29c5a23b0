"""Tiny hand-made CRSLab models and inputs shared by ``test_compat.py`` and its subprocesses.

This module must NOT import ``crslab_mscrs`` (the subprocesses use it to show how the
unpatched CRSLab behaves). It holds no tests itself.
"""
import sys
import types

import torch

# A 5-entity KG: 0-1, 1-2 (relation 0), 2-3, 3-4 (relation 1), both directions.
TINY_KG_EDGES = [(0, 1, 0), (1, 0, 0), (1, 2, 0), (2, 1, 0), (2, 3, 1), (3, 2, 1), (3, 4, 1), (4, 3, 1)]
N_ENTITY = 5
VOCAB_SIZE = 12


def tiny_vocab():
    return {"pad": 0, "start": 1, "end": 2, "unk": 3, "vocab_size": VOCAB_SIZE, "n_entity": N_ENTITY,
            "n_word": 6, "pad_word": 0, "pad_entity": 0}


def tiny_kbrd_opt():
    return {"gpu": [-1], "token_emb_dim": 8, "kg_emb_dim": 8, "num_bases": 2, "n_heads": 2, "n_layers": 1,
            "ffn_size": 16, "dropout": 0.0, "attention_dropout": 0.0, "relu_dropout": 0.0,
            "learn_positional_embeddings": True, "n_positions": 32, "user_proj_dim": 8}


def build_tiny_kbrd():
    from crslab.model.crs.kbrd.kbrd import KBRDModel

    torch.manual_seed(0)
    side_data = {"entity_kg": {"edge": TINY_KG_EDGES, "n_relation": 2}}
    model = KBRDModel(tiny_kbrd_opt(), torch.device("cpu"), tiny_vocab(), side_data)
    return model.eval()


def kbrd_user_embeddings(model, context_entities):
    """User embeddings KBRD computes in ``recommend`` for the given context entity lists."""
    kg_embedding = model.kg_encoder(None, model.edge_idx, model.edge_type)
    return model.encode_user(context_entities, kg_embedding)


def tiny_kgsf_opt(learn_positional_embeddings=False):
    return {"gpu": [-1], "dataset": "ReDial", "token_emb_dim": 8, "kg_emb_dim": 8, "num_bases": 2,
            "n_heads": 2, "n_layers": 1, "ffn_size": 8, "dropout": 0.0, "attention_dropout": 0.0,
            "relu_dropout": 0.0, "learn_positional_embeddings": learn_positional_embeddings,
            "embeddings_scale": True, "reduction": False, "n_positions": 32, "response_truncate": 5}


def tiny_kgsf_side_data():
    return {"entity_kg": {"edge": TINY_KG_EDGES, "n_relation": 2},
            "word_kg": {"edge": [(1, 2), (2, 1), (2, 3), (3, 2), (4, 5), (5, 4)]}}


def write_kgsf_copy_mask(model_root, dataset="ReDial", version="0.2"):
    """KGSF reads ``<MODEL_PATH>/kgsf/<dataset>/copy_mask.npy``; write a tiny one marked as built."""
    import numpy as np

    folder = model_root / "kgsf" / dataset
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "copy_mask.npy", np.ones(VOCAB_SIZE, dtype=bool))
    (folder / ".built").write_text(f"written by test\n{version}")


def tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=VOCAB_SIZE, n_positions=64,
                        bos_token_id=1, eos_token_id=2)
    return GPT2LMHeadModel(config).eval()


def build_tiny_inspired_conv():
    """An ``InspiredConvModel`` around tiny random GPT-2s (its ``__init__`` would download GPT-2)."""
    from crslab.model.crs.inspired.inspired_conv import InspiredConvModel
    from crslab.model.crs.inspired.modules import SequenceCrossEntropyLoss

    model = InspiredConvModel.__new__(InspiredConvModel)
    torch.nn.Module.__init__(model)
    model.context_truncate, model.response_truncate, model.pad_id = 16, 4, 0
    model.model_sk, model.model_rm = tiny_gpt2(), tiny_gpt2()
    model.loss = SequenceCrossEntropyLoss(0, -1)
    return model


def inspired_batch():
    """Two turns (seeker, recommender) of 6 tokens, as ``InspiredDataLoader`` batches them."""
    input_ids = torch.tensor([[4, 5, 6, 7, 8, 2], [5, 6, 7, 8, 9, 2]])
    return torch.tensor([0, 1]), input_ids, input_ids[:, :3], None


def stub_import_blockers():
    """For the UNPATCHED subprocess only: empty modules for the imports that block CRSLab
    entirely (fasttext, fuzzywuzzy, transformers.AdamW), so that the code behind them can be
    reached and its own bug shown. Never used with crslab_mscrs."""
    sys.modules.setdefault("fasttext", types.ModuleType("fasttext"))
    fuzzy = sys.modules.setdefault("fuzzywuzzy", types.ModuleType("fuzzywuzzy"))
    process = types.ModuleType("fuzzywuzzy.process")
    process.extractOne = lambda *args, **kwargs: None
    fuzzy.process = process
    sys.modules.setdefault("fuzzywuzzy.process", process)
    import transformers.processing_utils  # noqa: F401  (settles sys.modules['transformers'])

    sys.modules["transformers"].AdamW = torch.optim.AdamW
