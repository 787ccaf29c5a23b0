#!/usr/bin/env python
"""Build your own dataset (docs/own_data.md) into CRSLab format under a name of your choice.

    python data_prep/build_custom.py --source my_folder --name MyMovies [--data-root data]
    python data_prep/build_custom.py --example --name MiniFilms     # the shipped example dataset

The folder holds items.jsonl, train.jsonl, test.jsonl and optionally valid.jsonl, kg.tsv,
entities.txt (format: docs/own_data.md). Then train with ``dataset: MyMovies`` in a config.
Thin wrapper over :func:`crslab_mscrs.data.custom.build_custom`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--source", help="your dataset folder (items.jsonl, train/valid/test.jsonl, kg.tsv)")
    source.add_argument("--example", action="store_true", help="the example dataset shipped in the package")
    parser.add_argument("--name", required=True, help="CRSLab dataset name to register, e.g. MyMovies")
    parser.add_argument("--data-root", default=None, help="output data root (default: $CRSLAB_MSCRS_DATA or ./data)")
    parser.add_argument("--valid-fraction", type=float, default=0.1,
                        help="share of train carved out as valid when there is no valid.jsonl")
    parser.add_argument("--seed", type=int, default=None, help="seed of that carve")
    parser.add_argument("--limit", type=int, default=None, help="max conversations per split (quick builds)")
    parser.add_argument("--word-min-pair-count", type=int, default=3,
                        help="PMI word graph: co-occurrences a word pair needs (lower it for tiny datasets)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from crslab_mscrs.data import DEFAULT_SEED, BuildOptions
    from crslab_mscrs.data.custom import CustomFormatError, build_custom
    from crslab_mscrs.examples import EXAMPLE_DIR
    from crslab_mscrs.paths import resolve_data_root

    data_root = resolve_data_root(args.data_root)
    source = EXAMPLE_DIR if args.example else Path(args.source)
    options = BuildOptions(valid_fraction=args.valid_fraction, seed=DEFAULT_SEED if args.seed is None else args.seed,
                           limit=args.limit, word_min_pair_count=args.word_min_pair_count)
    print(f"source {source.resolve()} -> data root {data_root}")
    try:
        build_custom(source, data_root, args.name, options)
    except (CustomFormatError, ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
