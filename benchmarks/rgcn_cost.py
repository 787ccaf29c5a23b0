"""Cost of the KBRD/KGSF R-GCN layer: PyG's ``RGCNConv.forward`` vs the compat layer's.

KBRD and KGSF (through CRSLab) run ``RGCNConv(n_entity, 128, R, num_bases=8)(None, ...)`` once
per training step over the whole DBpedia KG. This script times forward and backward of that
layer on the real KG (processed as CRSLab does) with PyG's forward and with the compat layer's
(``crslab_mscrs.compat.rgcn_featureless``, same parameters), checks that both give the same
output and gradients, and prints the figures and the speed-up measured in this one run.

    .venv/bin/python benchmarks/rgcn_cost.py                        # ReDial KG, 1 thread

(ReDial's ``dbpedia_subkg.json`` format; INSPIRED's KG is a text file and is not read here.)
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from step_cost import crslab_style_kg  # benchmarks/ is on sys.path when this script runs


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kg-file", default="data/dataset/redial/nltk/dbpedia_subkg.json",
                        help="dbpedia_subkg.json of a built dataset (make data)")
    parser.add_argument("--dim", type=int, default=128, help="kg_emb_dim of the KBRD/KGSF configs")
    parser.add_argument("--num-bases", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per implementation")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="cpu",
                        help="process CPU time (default; robust to other jobs) or wall clock")
    return parser.parse_args()


def time_steps(conv, forward, edge_index, edge_type, steps: int, clock) -> tuple:
    """Median forward and backward seconds over ``steps``, plus the last output and gradients."""
    forward_times, backward_times = [], []
    for _ in range(steps):
        conv.zero_grad()
        start = clock()
        out = forward(conv, None, edge_index, edge_type)
        middle = clock()
        (out * out.detach().sign()).sum().backward()
        end = clock()
        forward_times.append(middle - start)
        backward_times.append(end - middle)
    grads = [p.grad.clone() for p in conv.parameters()]
    return statistics.median(forward_times), statistics.median(backward_times), out.detach(), grads


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    import crslab_mscrs  # noqa: F401  (installs the compat layer)
    from torch_geometric.nn import RGCNConv

    from crslab_mscrs.compat import rgcn_featureless

    kg_file = Path(args.kg_file)
    if not kg_file.is_file():
        raise SystemExit(f"{kg_file}: not found (build the data with `make data`)")
    edge_index, edge_type, relations = crslab_style_kg(kg_file, 0)
    n_entity = int(edge_index.max()) + 1
    print(f"KG {kg_file}: {n_entity} entities, {edge_index.size(1)} edges, {relations} relations; "
          f"dim {args.dim}, {args.num_bases} bases, {args.threads} thread(s), {args.clock} clock")
    torch.manual_seed(0)
    conv = RGCNConv(n_entity, args.dim, relations, num_bases=args.num_bases)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    rows = {}
    for name, forward in (("pyg", rgcn_featureless._original_forward), ("compat", rgcn_featureless.forward)):
        rows[name] = time_steps(conv, forward, edge_index, edge_type, args.steps, clock)
        fwd, bwd = rows[name][:2]
        print(f"{name:>10}: forward {fwd:8.3f} s  backward {bwd:8.3f} s  total {fwd + bwd:8.3f} s")
    pyg, ours = rows["pyg"], rows["compat"]
    out_diff = (pyg[2] - ours[2]).abs().max().item()
    grad_diff = max(((a - b).abs().max() / a.abs().max().clamp_min(1e-12)).item() for a, b in zip(pyg[3], ours[3]))
    print(f"max |output difference| {out_diff:.2e}; max relative gradient difference {grad_diff:.2e}")
    print(f"speed-up (pyg total / compat total): {(pyg[0] + pyg[1]) / (ours[0] + ours[1]):.1f}x")


if __name__ == "__main__":
    main()
