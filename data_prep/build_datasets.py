#!/usr/bin/env python
"""Build ReDial / INSPIRED in CRSLab's ``nltk`` format from the raw files, offline.

    python data_prep/build_datasets.py                       # both, into ./data
    python data_prep/build_datasets.py --datasets redial --data-root /tmp/data --seed 7
    python data_prep/build_datasets.py --conceptnet-csv conceptnet-assertions-5.7.0.csv.gz

Thin wrapper over :func:`crslab_mscrs.data.build_datasets`; see that package for the format.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=str(REPO_ROOT.parent / "shared" / "data"),
                        help="folder with redial/ and inspired/ (default: <repo>/../shared/data)")
    parser.add_argument("--data-root", default=None,
                        help="output data root (default: $CRSLAB_MSCRS_DATA or ./data)")
    parser.add_argument("--datasets", default="redial,inspired", help="comma-separated: redial,inspired")
    parser.add_argument("--valid-fraction", type=float, default=0.1,
                        help="ReDial: share of the train pool carved out as valid")
    parser.add_argument("--seed", type=int, default=None, help="seed of the valid carve")
    parser.add_argument("--limit", type=int, default=None, help="max conversations per split (quick builds)")
    parser.add_argument("--conceptnet-csv", default=None,
                        help="ConceptNet assertions CSV (.csv or .csv.gz) for KGSF's word graph; "
                             "default: PMI co-occurrence graph from the train split")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from crslab_mscrs.data import DEFAULT_SEED, BuildOptions, build_datasets
    from crslab_mscrs.paths import resolve_data_root

    data_root = resolve_data_root(args.data_root)
    options = BuildOptions(valid_fraction=args.valid_fraction,
                           seed=DEFAULT_SEED if args.seed is None else args.seed, limit=args.limit,
                           conceptnet_csv=Path(args.conceptnet_csv) if args.conceptnet_csv else None)
    started = time.perf_counter()
    print(f"source {Path(args.source).resolve()} -> data root {data_root}")
    try:
        build_datasets(Path(args.source), data_root, args.datasets.split(","), options)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"total {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
