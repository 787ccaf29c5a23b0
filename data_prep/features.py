#!/usr/bin/env python
"""Item features and semantic graphs for MSCRS (docs/data.md; MSCRS, SIGIR 2025, sections 3.3-3.4).

    python data_prep/features.py all --config features/redial_offline --source RAW_DATA_FOLDER

The same command as ``crslab-mscrs features`` (:mod:`crslab_mscrs.commands.features`; every
key of a features config is documented in ``config/features/base.yaml``); ``make features``
runs it for both datasets. Without a source folder given, this script reads
``<repo>/../shared/data`` (the Makefile's default).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
#: the Makefile's SOURCE default, used when neither --source, the config nor $CRSLAB_MSCRS_SOURCE give one
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data"


def main(argv=None) -> int:
    from crslab_mscrs.commands import features

    if DEFAULT_SOURCE.is_dir():  # lowest precedence: --source and the config's shared_data win
        os.environ.setdefault("CRSLAB_MSCRS_SOURCE", str(DEFAULT_SOURCE))

    parser = features.add_arguments(argparse.ArgumentParser(description=features.__doc__,
                                      formatter_class=argparse.RawDescriptionHelpFormatter))
    return features.main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
