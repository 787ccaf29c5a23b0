"""Example inputs shipped with the package (docs/own_data.md).

``minifilms/``: a tiny dataset in the bring-your-own-data format (64 invented films, 64
conversations written for this project by a templated script; no third-party text), used
by ``config/mscrs/minifilms.yaml`` and the tests.
"""
from pathlib import Path

EXAMPLE_DIR = Path(__file__).resolve().parent / "minifilms"
EXAMPLE_NAME = "MiniFilms"
