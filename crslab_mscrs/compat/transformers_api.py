"""``transformers.AdamW`` for CRSLab on transformers 5.

Fixes ``crslab/system/base.py:19``: ``from transformers import AdamW, Adafactor``.
transformers removed its own AdamW (4.x deprecated it in favour of ``torch.optim.AdamW``).

Why a plain ``transformers.AdamW = torch.optim.AdamW`` is not enough: the first import of
``transformers.processing_utils`` calls ``direct_transformers_import``, which re-executes
``transformers/__init__.py``; that ends with ``sys.modules["transformers"] = _LazyModule(...)``,
a NEW module object, so an attribute set earlier is lost. Instead we hook attribute lookup
on the ``_LazyModule`` class: any module object named ``transformers``, present or future,
answers ``AdamW`` with ``torch.optim.AdamW`` when it has no such name itself. The attribute is
also set directly on the current module object (cheap, and the hook re-sets it lazily).
"""
from __future__ import annotations

import sys

from ._patching import is_marked, mark

REMOVED_NAMES = {"AdamW": ("torch.optim", "AdamW")}
"""Names removed from ``transformers`` -> (module, attribute) that replaces them."""


def _replacement(name):
    import importlib

    module_name, attribute = REMOVED_NAMES[name]
    return getattr(importlib.import_module(module_name), attribute)


def _hook_lazy_module_class(lazy_module_class) -> None:
    original_getattr = lazy_module_class.__getattr__
    if is_marked(original_getattr):
        return

    def __getattr__(self, name):
        try:
            return original_getattr(self, name)
        except (AttributeError, ModuleNotFoundError):
            if getattr(self, "__name__", None) == "transformers" and name in REMOVED_NAMES:
                value = _replacement(name)
                setattr(self, name, value)
                return value
            raise

    lazy_module_class.__getattr__ = mark(__getattr__, "transformers_api")


def install() -> None:
    import transformers  # noqa: F401  (cheap: a lazy module)

    module = sys.modules["transformers"]
    try:
        from transformers.utils.import_utils import _LazyModule
    except ImportError:  # pragma: no cover - a transformers without lazy modules
        _LazyModule = None
    if _LazyModule is not None:
        _hook_lazy_module_class(_LazyModule)
    for name in REMOVED_NAMES:
        if name not in vars(module):
            try:
                getattr(module, name)  # goes through the hook for lazy modules
            except AttributeError:
                setattr(module, name, _replacement(name))
