"""Throughput of the frozen LM's step types, against this machine's measured matmul peak.

For each step type and batch size: tokens/s, achieved TFLOP/s from the FLOP count below, and
that as a share of the matmul peak measured in the same run (the best of ``--peak-repeats``
square ``--peak-size`` matmuls: float32 on a CPU, bfloat16 on a GPU). On a shared machine both
are measured under whatever else runs, so a share can exceed 100 % when the peak was timed in a
busier moment than a step.

FLOP count (multiply-add = 2 FLOP; decoder layers only, embeddings free; ``d`` hidden, ``kv``
key/value width, ``f`` MLP width, ``L`` layers, ``P`` prefix, ``T`` tokens per row, causal):

- forward per token: ``2 L (2 d d + 2 d kv + 3 d f)`` for the projections and the gated MLP,
  plus ``4 L d (P + t + 1)`` for the scores and the weighted sum of token ``t`` (0-based);
  plus ``2 d V`` for every token whose logits are computed (conv labels, generated tokens);
- the frozen LM's backward passes gradients to activations only (no weight gradients): one
  more forward's worth, so a training step (``rec``, ``conv``) = 2 x forward (x 1.5 with
  ``--checkpointing``, the replayed forward counted as work done but not as useful FLOP:
  TFLOP/s is reported for the 2 x forward);
- ``generation``: prefill of the context (forward) + ``--new-tokens`` single-token forwards
  over the growing cache (batched, greedy).

    python benchmarks/throughput.py --batches 1,4 --steps 2                 # CPU, SmolLM2-135M geometry
    python benchmarks/throughput.py --device cuda --bf16 --batches 16,64,128 --steps 10
"""
from __future__ import annotations

import argparse
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # this checkout's crslab_mscrs, also when another one is installed
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lm_memory import build_lm  # noqa: E402


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int, repeats: int = 5) -> float:
    """Best TFLOP/s of ``size`` x ``size`` matmuls."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = 0.0
    for _ in range(repeats):
        sync(device)
        started = time.perf_counter()
        a @ b
        sync(device)
        best = max(best, 2 * size ** 3 / (time.perf_counter() - started) / 1e12)
    return best


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_flops(config, rows: int, tokens: int, prefix: int, logit_tokens: int, start: int = 0) -> float:
    """FLOP of one forward over ``tokens`` new tokens per row after ``start`` cached ones."""
    d, f, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    heads = config.num_attention_heads
    kv = (getattr(config, "num_key_value_heads", None) or heads) * (d // heads)
    projections = 2 * layers * (2 * d * d + 2 * d * kv + 3 * d * f) * tokens
    attended = sum(prefix + start + t + 1 for t in range(tokens))
    return rows * (projections + 4 * layers * d * attended + 2 * d * config.vocab_size * logit_tokens)


def prefix_of(lm, rows: int, length: int, device):
    from crslab_mscrs.model.prefix_cache import LMGeometry, PrefixKeyValues

    g = LMGeometry.from_config(lm.config)
    shape = (g.num_layers, rows, g.num_kv_heads, length, g.head_dim)
    keys = torch.randn(shape, device=device).requires_grad_()
    return PrefixKeyValues(keys, torch.randn(shape, device=device).requires_grad_(),
                           torch.ones(rows, length, dtype=torch.long, device=device))


def train_step(lm, rows: int, args, device, conv: bool):
    from crslab_mscrs.model.prefix_cache import prefixed_lm_inputs

    length = args.context + (args.response if conv else 0)
    tokens = torch.randint(5, lm.config.vocab_size, (rows, length), device=device)
    prefix = prefix_of(lm, rows, args.prefix_conv if conv else args.prefix_rec, device)
    kwargs = prefixed_lm_inputs(tokens, torch.ones_like(tokens), prefix)
    with autocast(args, device):
        if conv:  # logits for the response tokens only, as PromptCRS.converse
            keep = torch.zeros(rows, length, dtype=torch.bool, device=device)
            keep[:, args.context - 1:length - 1] = True
            logits = lm(**kwargs, logits_to_keep=keep).logits
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(),
                                   tokens[:, args.context:].reshape(-1))
        else:
            hidden = lm(**kwargs, output_hidden_states=True, logits_to_keep=1).hidden_states[-1][:, -1]
            loss = hidden.float().pow(2).mean()
    loss.backward()
    logits = rows * args.response if conv else 0
    return rows * length, 2 * forward_flops(lm.config, rows, length, prefix.length, 0) + 2 * 2 * \
        lm.config.hidden_size * lm.config.vocab_size * logits


@torch.no_grad()
def generation_step(lm, rows: int, args, device):
    from crslab_mscrs.model.prefix_cache import prefixed_lm_inputs

    tokens = torch.randint(5, lm.config.vocab_size, (rows, args.context), device=device)
    prefix = prefix_of(lm, rows, args.prefix_conv, device)
    kwargs = prefixed_lm_inputs(tokens, torch.ones_like(tokens), prefix)
    with autocast(args, device):
        out = lm(**kwargs, logits_to_keep=1)
        cache, mask, position = out.cache, kwargs["attention_mask"], kwargs["position_ids"][:, -1:]
        for _ in range(args.new_tokens):
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            mask = torch.cat([mask, torch.ones_like(nxt)], 1)
            position = position + 1
            out = lm(input_ids=nxt, attention_mask=mask, position_ids=position, cache=cache, use_cache=True)
            cache = out.cache
    flops = forward_flops(lm.config, rows, args.context, args.prefix_conv, 1)
    flops += sum(forward_flops(lm.config, rows, 1, args.prefix_conv, 1, start=args.context + i)
                 for i in range(args.new_tokens))
    return rows * (args.context + args.new_tokens), flops


def autocast(args, device):
    return torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else nullcontext()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", default="1,4", help="rows per step (comma list)")
    p.add_argument("--types", default="rec,conv,generation")
    p.add_argument("--context", type=int, default=200)
    p.add_argument("--response", type=int, default=32, help="conv: response tokens with labels")
    p.add_argument("--new-tokens", type=int, default=32, help="generation: tokens generated per row")
    p.add_argument("--prefix-rec", type=int, default=10)
    p.add_argument("--prefix-conv", type=int, default=20)
    p.add_argument("--lm", default="smollm2-135m", help="smollm2-135m (random weights, same compute) or an lm spec")
    p.add_argument("--steps", type=int, default=2, help="timed steps per cell (after one warm-up)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    p.add_argument("--checkpointing", action="store_true", help="lm_activation_checkpointing on")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--peak-size", type=int, default=2048)
    p.add_argument("--peak-repeats", type=int, default=30, help="matmuls timed for the peak (the best counts)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    lm = build_lm(args.lm).to(device).eval().requires_grad_(False)
    if args.checkpointing:
        from crslab_mscrs.model.activation_checkpointing import enable_activation_checkpointing

        enable_activation_checkpointing(lm)
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    peak = matmul_peak(device, dtype, args.peak_size, args.peak_repeats)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"# {args.lm} on {name}; matmul peak {peak:.3f} TFLOP/s ({dtype}, {args.peak_size}^2)"
          + (", activation checkpointing" if args.checkpointing else ""))
    print(f"{'type':<11} {'rows':>5} {'s/step':>9} {'tokens/s':>10} {'TFLOP/s':>9} {'of peak':>8}")
    steps = {"rec": lambda b: train_step(lm, b, args, device, conv=False),
             "conv": lambda b: train_step(lm, b, args, device, conv=True),
             "generation": lambda b: generation_step(lm, b, args, device)}
    for kind in args.types.split(","):
        for rows in (int(b) for b in args.batches.split(",")):
            steps[kind](rows)  # warm-up
            sync(device)
            started = time.perf_counter()
            for _ in range(args.steps):
                tokens, flops = steps[kind](rows)
            sync(device)
            seconds = (time.perf_counter() - started) / args.steps
            achieved = flops / seconds / 1e12
            print(f"{kind:<11} {rows:>5} {seconds:>9.3f} {tokens / seconds:>10.0f} {achieved:>9.4f} "
                  f"{achieved / peak:>7.1%}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
