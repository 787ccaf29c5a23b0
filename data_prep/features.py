#!/usr/bin/env python
"""Item features and semantic graphs for MSCRS (MSCRS, SIGIR 2025, sections 3.3-3.4).

    python data_prep/features.py all --config features/redial_offline --source RAW_DATA_FOLDER

The same command as ``crslab-mscrs features`` (:mod:`crslab_mscrs.commands.features`; every
key of a features config is documented in ``config/features/base.yaml``); ``make features``
runs it for both datasets.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    from crslab_mscrs.commands import features

    parser = features.add_arguments(argparse.ArgumentParser(description=features.__doc__,
                                    formatter_class=argparse.RawDescriptionHelpFormatter))
    return features.main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
