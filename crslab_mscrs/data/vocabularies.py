"""Token vocabulary, concept words and word graph of a built dataset (TRAIN split only)."""
from __future__ import annotations

from typing import Dict, List, Tuple

from crslab_mscrs.data.build_options import BuildOptions
from crslab_mscrs.data.crslab_format import build_token_vocab, dialog_tokens
from crslab_mscrs.data.word_graph import WordGraph, build_concept_vocab, build_word_graph, concept_words


def build_vocabularies(splits: Dict[str, List[dict]],
                       options: BuildOptions) -> Tuple[Dict[str, int], WordGraph]:
    """``token2id`` and the word graph from TRAIN, then fill every utterance's ``word``."""
    train_tokens = dialog_tokens(splits["train"])
    token2id = build_token_vocab(train_tokens)
    concept2id = build_concept_vocab(train_tokens, min_count=options.concept_min_count)
    graph = build_word_graph(train_tokens, concept2id, conceptnet_csv=options.conceptnet_csv,
                             top_k=options.word_top_k, min_pair_count=options.word_min_pair_count)
    for conversations in splits.values():
        for conv in conversations:
            for utt in conv["dialog"]:
                utt["word"] = concept_words(utt["text"], concept2id)
    return token2id, graph
