"""``crslab-mscrs build-data``: ReDial / INSPIRED in CRSLab's ``nltk`` format from the raw files, offline.

    crslab-mscrs build-data --source RAW_DATA_FOLDER                 # both, into ./data
    crslab-mscrs build-data --source RAW --datasets redial --data-root /tmp/data --seed 7
    crslab-mscrs build-data --source RAW --conceptnet-csv conceptnet-assertions-5.7.0.csv.gz

``RAW_DATA_FOLDER`` holds ``redial/`` and ``inspired/`` (``make data SOURCE=...``); it may also
come from ``$CRSLAB_MSCRS_SOURCE``. Wraps :func:`crslab_mscrs.data.build_datasets`.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

SOURCE_ENV_VAR = "CRSLAB_MSCRS_SOURCE"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--source", default=os.environ.get(SOURCE_ENV_VAR),
                        help=f"folder with redial/ and inspired/ raw files (default: ${SOURCE_ENV_VAR})")
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
    return parser


def main(args: argparse.Namespace) -> int:
    from crslab_mscrs.data import DEFAULT_SEED, BuildOptions, build_datasets
    from crslab_mscrs.paths import resolve_data_root

    if not args.source:
        print(f"error: give the raw data folder: --source DIR (or ${SOURCE_ENV_VAR}; "
              "`make data SOURCE=DIR` in a source checkout)", file=sys.stderr)
        return 2
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
