"""Scale of the fused entity table and of the initial item scores, per model variant.

MSCRS sums four views of an item (KG, co-occurrence, text, image; MSCRS section 3.4) where
UniCRS has one, so before any training its item scores spread wider and its first
recommendation loss is larger. This script builds each variant from its offline config
(same seed, untrained), takes the first train recommendation batch, and prints:

- mean L2 norm of the item rows of e0 (R-GCN output), of the fused table h (before the
  MLP) and of the LM-sized table;
- the item scores' standard deviation and max - min per row, and the cross-entropy over
  the items (ln n_items for uniform scores).

    .venv/bin/python benchmarks/fusion_scale.py                  # INSPIRED: unicrs, mscrs, mscrs fusion=mean, authors
    .venv/bin/python benchmarks/fusion_scale.py --variants mscrs:fusion=mean,lambda_text=0.5
"""
from __future__ import annotations

import argparse
import math
import tempfile

import torch


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=["inspired", "redial"], default="inspired")
    parser.add_argument("--variants", nargs="+",
                        default=["unicrs", "mscrs", "mscrs:fusion=mean", "mscrs:fusion=authors"],
                        help="model[:key=value,...] with overrides of config/<model>/<dataset>_offline.yaml")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--context", type=int, default=128, help="context_max_length / prompt_max_length")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args()


def build_system(model: str, dataset: str, overrides, data_root: str, seed: int):
    """The MSCRS system of ``config/<model>/<dataset>_offline.yaml`` as run_crslab.py builds it."""
    from crslab_mscrs import cli
    from crslab_mscrs.config import load_config
    from crslab_mscrs.training.checkpoint import seed_everything

    opt = load_config(f"config/{model}/{dataset}_offline.yaml", overrides)
    opt["seed"] = seed
    seed_everything(seed)
    save_dir = tempfile.mkdtemp(prefix="fusion_scale_")  # nothing written under ./save
    return cli.build_system(opt, data_root, save_dir)[0]


@torch.no_grad()
def measure(system, batch_size: int) -> dict:
    core = system.core
    core.eval()
    encoder, items = core.entity_encoder, core.item_ids
    e0, fused, table = encoder.kg_encoder(), encoder.fused_embeddings(), core.entity_table()
    batch = system.to_device(next(iter(system.train_dataloader.get_rec_data(batch_size, shuffle=False))))
    out = core.recommend(batch, table)
    scores = out.item_scores.float()
    return {
        "e0 item norm": e0[items].norm(dim=1).mean().item(),
        "fused item norm": fused[items].norm(dim=1).mean().item(),
        "table item norm": table[items].norm(dim=1).mean().item(),
        "score std": scores.std(dim=1).mean().item(),
        "score max-min": (scores.max(1).values - scores.min(1).values).mean().item(),
        "initial loss": out.loss.item() if out.loss is not None else float("nan"),
        "ln n_items": math.log(len(items)),
    }


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    import crslab_mscrs  # noqa: F401  (compat layer + registration)

    rows = []
    for variant in args.variants:
        model, _, extra = variant.partition(":")
        overrides = [f"context_max_length={args.context}", f"prompt_max_length={args.context}"]
        overrides += [item for item in extra.split(",") if item]
        system = build_system(model, args.dataset, overrides, args.data_root, args.seed)
        rows.append((variant, measure(system, args.batch)))
        del system
    keys = list(rows[0][1])
    print(f"\n{args.dataset}, first train rec batch of {args.batch}, seed {args.seed}, untrained")
    print("| variant | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for variant, values in rows:
        print(f"| {variant} | " + " | ".join(f"{values[k]:.3f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
