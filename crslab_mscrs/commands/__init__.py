"""Subcommands of the ``crslab-mscrs`` console script besides training (:mod:`crslab_mscrs.cli`).

``build-data`` (:mod:`.build_data`), ``features`` (:mod:`.features`), ``config``
(:mod:`.show_config`). Each module has ``add_arguments(parser)`` and ``main(args) -> int``;
``data_prep/*.py`` in a source checkout are thin wrappers over the same functions.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from types import ModuleType
from typing import Optional, Sequence


def run_as_script(command: ModuleType, argv: Optional[Sequence[str]] = None,
                  default_source: Optional[Path] = None) -> int:
    """``command.main`` on ``argv`` with its own parser: what a ``data_prep/`` wrapper runs.

    ``default_source`` (the Makefile's ``SOURCE`` default of a source checkout) is used only when
    it exists and neither ``--source``, the config nor ``$CRSLAB_MSCRS_SOURCE`` name a folder.
    """
    if default_source is not None and default_source.is_dir():
        os.environ.setdefault("CRSLAB_MSCRS_SOURCE", str(default_source))
    parser = command.add_arguments(argparse.ArgumentParser(description=command.__doc__,
                                                           formatter_class=argparse.RawDescriptionHelpFormatter))
    return command.main(parser.parse_args(argv))
