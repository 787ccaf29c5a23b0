"""Re-score stored test replies with the current metrics and item names.

KBRD/KGSF runs (their ``metrics.json`` with ``test_replies.jsonl`` beside it, written by
``run_crslab.py`` for CRSLab's own models)::

    python data_prep/rescore_replies.py results/current/runs/kbrd/inspired/seed0/metrics.json ...

MSCRS/UniCRS reply files (``--refill DATASET``): the ``<movie>`` slots of every row are
filled again from its ``raw`` reply and stored ``top_items`` with the item names of
:class:`crslab_mscrs.data.item_names.ItemNames`; the file is rewritten and the generation
metrics OF THOSE ROWS are printed (a file of the first 40 replies gives first-40 metrics,
not the run's)::

    python data_prep/rescore_replies.py --refill redial benchmarks/evidence/h200_redial_generation/test_replies_mscrs_redial_s0_first40.jsonl

Item names come from ``<data root>/dataset/<dataset>/nltk/item_names.json`` (``--data-root``
or ``$CRSLAB_MSCRS_DATA``, default ``./data``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHOWN = ("bleu@1", "dist@2", "rouge@L", "item_ratio")


def _item_names(paths, dataset: str, root):
    from crslab_mscrs.data.item_names import ITEM_NAMES_FILE, ItemNames

    folder = paths.dataset_dir(str(dataset), "nltk", root)
    entity2id = json.loads((folder / "entity2id.json").read_text(encoding="utf-8"))
    return ItemNames.load(folder / ITEM_NAMES_FILE, {int(v): k for k, v in entity2id.items()})


def refill(path: Path, item_names) -> str:
    """Re-fill one MSCRS/UniCRS reply file in place; returns a summary line."""
    from crslab_mscrs.batches.movie_mentions import DEFAULT_PLACEHOLDER
    from crslab_mscrs.data.jsonl import read_jsonl
    from crslab_mscrs.training.generation import refill_replies
    from crslab_mscrs.training.outputs import generation_metrics

    rows, changed, kept = refill_replies(read_jsonl(path), item_names, DEFAULT_PLACEHOLDER)
    from crslab_mscrs.atomic_files import write_text_atomic

    write_text_atomic(path, "".join(json.dumps(row) + "\n" for row in rows))
    generation = generation_metrics([r["reply"] for r in rows], [r["reference"] for r in rows],
                                    [r["n_slots"] > 0 for r in rows], None, None)
    return (f"{path}: {len(rows)} rows, {changed} replies changed, {kept} kept (more slots than stored items); "
            f"metrics of these {len(rows)} rows: "
            + ", ".join(f"{k}={generation[k]:.4f}" for k in SHOWN if k in generation))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", help="metrics.json files of CRSLab-model runs, or with --refill "
                                                 "test_replies*.jsonl files of MSCRS/UniCRS runs")
    parser.add_argument("--refill", metavar="DATASET", default=None,
                        help="re-fill the <movie> slots of MSCRS/UniCRS reply files of DATASET (redial, inspired)")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)
    from crslab_mscrs import paths
    from crslab_mscrs.compat.prediction_capture import rescore_replies

    root = paths.resolve_data_root(args.data_root)
    if args.refill:
        names = _item_names(paths, args.refill, root)
        for path in args.files:
            print(refill(Path(path), names))
        return 0
    for path in args.files:
        dataset = json.loads(Path(path).read_text(encoding="utf-8")).get("dataset")
        if not dataset:
            raise SystemExit(f"{path}: no 'dataset' key")
        generation = rescore_replies(path, _item_names(paths, dataset, root).values())
        print(f"{path}: " + ", ".join(f"{k}={generation[k]:.4f}" for k in SHOWN if k in generation))
    return 0


if __name__ == "__main__":
    sys.exit(main())
