"""Word vectors for the embedding metrics (greedy / average / extreme), when really present.

CRSLab evaluates them with fastText ``cc.<lang>.300.bin`` (Grave et al., 2018) stored at
``<EMBEDDING_PATH>/<lang>/cc.<lang>.300.bin``. Those vectors are several GB and need the
``fasttext`` package; when either is missing :func:`load_fasttext_vectors` returns
``(None, reason)`` and the metrics are reported as "n/a". It never downloads (the CRSLab
links are dead) and never substitutes random or hashed vectors.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

SHIM_MARKER = "__crslab_mscrs_shim__"
"""Attribute set on the stand-in ``fasttext`` module that ``crslab_mscrs.compat`` installs."""


def fasttext_model_path(language: str, embedding_root) -> Path:
    """``<embedding_root>/<language>/cc.<language>.300.bin`` (CRSLab's layout)."""
    return Path(embedding_root) / language / f"cc.{language}.300.bin"


def real_fasttext_module():
    """The installed ``fasttext`` package, or ``None`` if absent (the compat stand-in does not count)."""
    try:
        module = importlib.import_module("fasttext")
    except ImportError:
        return None
    return None if getattr(module, SHIM_MARKER, False) else module


class FastTextLookup:
    """Word -> vector lookup over a loaded fastText model (sub-word vectors for OOV words)."""

    def __init__(self, model, source: Path):
        self.model = model
        self.source = Path(source)

    def __call__(self, word: str) -> np.ndarray:
        return np.asarray(self.model.get_word_vector(word), dtype=np.float32)

    def __repr__(self) -> str:
        return f"FastTextLookup({str(self.source)!r})"


def load_fasttext_vectors(language: str, embedding_root) -> Tuple[Optional[FastTextLookup], str]:
    """Load real fastText vectors, or return ``(None, why they are absent)``."""
    path = fasttext_model_path(language, embedding_root)
    fasttext = real_fasttext_module()
    if fasttext is None:
        return None, "the fasttext package is not installed"
    if not path.is_file():
        return None, f"no fastText vectors at {path}"
    return FastTextLookup(fasttext.load_model(str(path)), path), f"loaded {path}"
