#!/usr/bin/env python
"""Build ReDial / INSPIRED in CRSLab's ``nltk`` format from the raw files, offline.

    python data_prep/build_datasets.py --source RAW_DATA_FOLDER      # both, into ./data
    python data_prep/build_datasets.py --source RAW --datasets redial --data-root /tmp/data --seed 7

The same command as ``crslab-mscrs build-data`` (:mod:`crslab_mscrs.commands.build_data`);
``make data`` runs it with ``--source $(SOURCE)``; without ``--source`` (and
``$CRSLAB_MSCRS_SOURCE``) this script reads ``<repo>/../shared/data``, the Makefile's default.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
#: the Makefile's SOURCE default, used when neither --source, the config nor $CRSLAB_MSCRS_SOURCE give one
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data"


def main(argv=None) -> int:
    from crslab_mscrs.commands import build_data, run_as_script

    return run_as_script(build_data, argv, DEFAULT_SOURCE)


if __name__ == "__main__":
    sys.exit(main())
