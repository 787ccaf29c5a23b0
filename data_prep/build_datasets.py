#!/usr/bin/env python
"""Build ReDial / INSPIRED in CRSLab's ``nltk`` format from the raw files, offline.

    python data_prep/build_datasets.py --source RAW_DATA_FOLDER      # both, into ./data
    python data_prep/build_datasets.py --source RAW --datasets redial --data-root /tmp/data --seed 7

The same command as ``crslab-mscrs build-data`` (:mod:`crslab_mscrs.commands.build_data`);
``make data`` runs it with ``--source $(SOURCE)``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    from crslab_mscrs.commands import build_data

    parser = build_data.add_arguments(argparse.ArgumentParser(description=build_data.__doc__,
                                      formatter_class=argparse.RawDescriptionHelpFormatter))
    return build_data.main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
