#!/usr/bin/env python
"""Item features and semantic graphs for MSCRS (docs/data.md; MSCRS, SIGIR 2025, sections 3.3-3.4).

    python data_prep/features.py all --config features/redial_offline --source RAW_DATA_FOLDER

The same command as ``crslab-mscrs features`` (:mod:`crslab_mscrs.commands.features`; every
key of a features config is documented in ``config/features/base.yaml``); ``make features``
runs it for both datasets. Without a source folder given, this script reads
``<repo>/../shared/data`` (the Makefile's default).
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
#: the Makefile's SOURCE default, used when neither --source, the config nor $CRSLAB_MSCRS_SOURCE give one
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data"


def main(argv=None) -> int:
    from crslab_mscrs.commands import features, run_as_script

    return run_as_script(features, argv, DEFAULT_SOURCE)


if __name__ == "__main__":
    sys.exit(main())
