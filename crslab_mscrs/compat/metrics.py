"""Metric values given as numpy scalars.

Fixes ``crslab/evaluator/metrics/gen.py:158``: ``GreedyMatch(score_max)`` receives a
``numpy.float32`` (from ``cosine_similarity(...).mean()``) and
``Metric.as_number`` (``crslab/evaluator/metrics/base.py:95``) asserts a Python int/float.
The patched ``as_number`` turns numpy scalars and 0-d arrays into Python numbers first,
for every metric class, then defers to the original check.
"""
from __future__ import annotations

import numpy as np

from ._patching import is_marked, mark


def install() -> None:
    from crslab.evaluator.metrics.base import Metric

    original = Metric.as_number.__func__
    if is_marked(original):
        return

    def as_number(cls, obj):
        if isinstance(obj, np.generic) or (isinstance(obj, np.ndarray) and obj.ndim == 0):
            obj = obj.item()
        return original(cls, obj)

    Metric.as_number = classmethod(mark(as_number, "metrics"))
