#!/usr/bin/env python
"""CRSLab-compatible launcher: ``python run_crslab.py --config config/kbrd/sample.yaml``.

All logic lives in :mod:`crslab_mscrs.cli`; run ``python run_crslab.py -h`` for the flags.
"""
import sys

from crslab_mscrs.cli import main

if __name__ == "__main__":
    sys.exit(main())
