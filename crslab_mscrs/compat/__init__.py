"""Compatibility layer: CRSLab 0.1.2 (the PyPI wheel) on Python 3.11 / torch 2.x / transformers 5.

Nothing in site-packages is edited; :func:`apply` patches at import time, in this order
(each step needs the previous ones to import CRSLab at all):

1. :mod:`.optional_imports`   stand-ins for fasttext, fuzzywuzzy (on rapidfuzz), pkuseg
2. :mod:`.transformers_api`   ``transformers.AdamW`` (removed in transformers 5)
3. :mod:`.metrics`            numpy scalars accepted by CRSLab metrics
4. :mod:`.positional`         position codes without an in-place op on a leaf parameter
5. :mod:`.kbrd_user_embedding` KBRD's user embedding really uses the context entities
6. :mod:`.inspired_cache`     INSPIRED's GPT-2 loop on ``DynamicCache``
7. :mod:`.lr_scheduler`       ``ReduceLROnPlateau`` without ``verbose``
8. :mod:`.evaluators`         fixed ``standard`` / ``conv`` evaluators (word-level Dist-n etc.)
9. :mod:`.rgcn_featureless`   KBRD/KGSF's R-GCN without one dense weight per relation (speed)

CRSLab's own systems are also wrapped, not patched, by three modules here (the one folder
that touches CRSLab's code paths, besides :mod:`crslab_mscrs.registry`):

- :mod:`.conversation_tags`  datasets that tag every sample with its conversation and turn
- :mod:`.stage_selection`    config key ``stages`` for KBRD / KGSF
- :mod:`.prediction_capture` test rankings and replies of KBRD / KGSF, scored by our evaluator

Each module's docstring names the CRSLab file:line it fixes. :func:`apply` is idempotent:
every patch checks a marker before installing itself. It imports only what CRSLab
imports anyway (``crslab.evaluator``, ``crslab.model``, ``crslab.system``).
"""
from __future__ import annotations

import importlib

PATCH_MODULES = (
    "optional_imports",
    "transformers_api",
    "metrics",
    "positional",
    "kbrd_user_embedding",
    "inspired_cache",
    "lr_scheduler",
    "evaluators",
    "rgcn_featureless",
)

_applied = False


def apply() -> None:
    """Apply every patch, idempotently (a second call is a no-op; each patch also self-checks)."""
    global _applied
    if _applied:
        return
    for name in PATCH_MODULES:
        # imported lazily: later modules import crslab code that needs the earlier patches
        importlib.import_module(f"{__name__}.{name}").install()
    _applied = True


def applied() -> bool:
    """Whether :func:`apply` has completed in this process."""
    return _applied
