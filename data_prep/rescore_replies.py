"""Re-score the captured test replies of finished KBRD/KGSF runs with the current metrics.

    python data_prep/rescore_replies.py results/current/runs/kbrd/inspired/seed0/metrics.json ...

Each ``metrics.json`` needs ``test_replies.jsonl`` beside it (written by ``run_crslab.py``
for CRSLab's own models) and names its dataset; item names come from
``<data root>/dataset/<dataset>/nltk/item_names.json`` (``--data-root`` or
``$CRSLAB_MSCRS_DATA``, default ``./data``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("metrics", nargs="+", help="metrics.json files of CRSLab-model runs")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)
    from crslab_mscrs import paths
    from crslab_mscrs.compat.prediction_capture import rescore_replies
    from crslab_mscrs.batches.dataloader import load_item_names

    root = paths.resolve_data_root(args.data_root)
    for path in args.metrics:
        dataset = json.loads(Path(path).read_text(encoding="utf-8")).get("dataset")
        if not dataset:
            raise SystemExit(f"{path}: no 'dataset' key")
        names_file = paths.dataset_dir(str(dataset), "nltk", root) / "item_names.json"
        generation = rescore_replies(path, load_item_names({"item_names_file": str(names_file)}).values())
        print(f"{path}: " + ", ".join(f"{k}={generation[k]:.4f}" for k in
                                      ("bleu@1", "dist@2", "rouge@L", "item_ratio") if k in generation))
    return 0


if __name__ == "__main__":
    sys.exit(main())
