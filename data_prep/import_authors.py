#!/usr/bin/env python
"""Import the MSCRS authors' released data folder (docs/own_data.md, path 1).

    # their GPT-4o/RoBERTa text and ViT image vectors -> our features + graphs for a built dataset
    python data_prep/import_authors.py features --authors-dir mscrs_data/redial --dataset ReDial
    # ... using THEIR co-occurrence file too (flagged: it may contain test co-occurrences)
    python data_prep/import_authors.py features --authors-dir mscrs_data/redial --dataset ReDial --cooccurrence authors
    # their dialogues + KG as a dataset of its own, with exactly their splits
    python data_prep/import_authors.py dataset --authors-dir mscrs_data/inspired --name MSCRSInspired

Thin wrapper over :mod:`crslab_mscrs.data.authors_import`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("features", "dataset"))
    parser.add_argument("--authors-dir", required=True, help="their dataset folder (entity2id.json, id_embeddings_*.json, ...)")
    parser.add_argument("--dataset", help="features: our built dataset (ReDial, Inspired or a user dataset name)")
    parser.add_argument("--name", help="dataset: the CRSLab name to build their data under")
    parser.add_argument("--data-root", default=None, help="data root (default: $CRSLAB_MSCRS_DATA or ./data)")
    parser.add_argument("--k", type=int, default=20, help="kNN neighbours (paper code: 20 ReDial, 10 INSPIRED)")
    parser.add_argument("--out-dir", default=None,
                        help="features folder (default <data_root>/features/<dataset>; point the config's "
                             "features_dir at another one to keep both)")
    parser.add_argument("--cooccurrence", default="rebuild", choices=("rebuild", "authors", "skip"),
                        help="rebuild from our train split (default), import theirs (flagged), or leave as is")
    parser.add_argument("--modalities", default="text,image", help="comma list of text,image")
    parser.add_argument("--turns-pattern", default=None,
                        help="dataset: turn-record file name with {split}, e.g. '{split}_data_processed.jsonl'")
    parser.add_argument("--word-min-pair-count", type=int, default=3, help="dataset: PMI word graph threshold")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from crslab_mscrs import paths
    from crslab_mscrs.data import BuildOptions
    from crslab_mscrs.data.authors_import import build_dataset_from_authors, import_authors_features
    from crslab_mscrs.data.custom import CustomFormatError

    root = paths.resolve_data_root(args.data_root)
    try:
        if args.what == "features":
            if not args.dataset:
                print("error: features needs --dataset", file=sys.stderr)
                return 2
            modalities = [m for m in args.modalities.split(",") if m]
            report = import_authors_features(args.authors_dir, paths.dataset_dir(args.dataset, root=root),
                                             args.out_dir or paths.features_dir(args.dataset, root), k=args.k,
                                             cooccurrence=args.cooccurrence, modalities=modalities,
                                             dataset=args.dataset, data_root=root)
            print(json.dumps(report, indent=2, ensure_ascii=False, default=str))
            if args.cooccurrence == "authors":
                print(f"WARNING: {report['cooccurrence']['warning']}", file=sys.stderr)
        else:
            if not args.name:
                print("error: dataset needs --name", file=sys.stderr)
                return 2
            build_dataset_from_authors(args.authors_dir, root, args.name,
                                       BuildOptions(word_min_pair_count=args.word_min_pair_count),
                                       turns_pattern=args.turns_pattern)
    except (CustomFormatError, ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
