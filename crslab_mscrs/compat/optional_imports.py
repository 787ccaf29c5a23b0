"""Stand-ins for packages CRSLab imports but that cannot be installed on Python 3.11.

Fixes (CRSLab 0.1.2 wheel):

* ``crslab/evaluator/standard.py:14`` and ``crslab/evaluator/conv.py:13``: ``import fasttext``
  at module level, which blocks importing ``crslab.evaluator`` and therefore every system.
  The stand-in only makes the import succeed: its ``load_model`` raises, and our fixed
  evaluators (:mod:`crslab_mscrs.compat.evaluators`) report embedding metrics as absent
  unless the REAL fastText package and vectors are present. No fake vectors, ever.
* ``crslab/system/base.py:15``: ``from fuzzywuzzy.process import extractOne`` (entity
  linking in interactive mode). Served by ``rapidfuzz`` with fuzzywuzzy's defaults
  (``WRatio`` scorer, full pre-processing, integer scores, ``(choice, score)`` results).
* ``crslab/system/base.py:353``: ``import pkuseg`` (Chinese tokenisation, TG-ReDial and
  DuRecDial only). The stand-in raises a clear ImportError when a segmenter is built.

The finder is appended to the END of ``sys.meta_path``: it is only consulted when no real
package of that name was found, so installing fasttext / fuzzywuzzy / pkuseg wins.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import types
from typing import Callable, Dict

SHIM_MARKER = "__crslab_mscrs_shim__"


def _build_fasttext(module: types.ModuleType) -> None:
    def load_model(path, *args, **kwargs):
        raise ImportError(
            f"fastText is not installed, cannot load {path!r}. crslab-mscrs reports the "
            "embedding metrics as absent instead; `pip install fasttext` (and place the "
            "cc.<lang>.300.bin vectors under <data_root>/embedding/<lang>/) to compute them."
        )

    module.load_model = load_model


def _build_fuzzywuzzy(module: types.ModuleType) -> None:
    module.__path__ = []  # a package, so that ``fuzzywuzzy.process`` can be imported


def _build_fuzzywuzzy_fuzz(module: types.ModuleType) -> None:
    from rapidfuzz import fuzz

    def _as_int(scorer):
        def score(s1, s2, *args, **kwargs):
            return int(round(scorer(s1, s2, *args, **kwargs)))
        score.__name__ = scorer.__name__
        return score

    for name in ("ratio", "partial_ratio", "token_sort_ratio", "token_set_ratio",
                 "partial_token_sort_ratio", "partial_token_set_ratio", "WRatio", "QRatio"):
        setattr(module, name, _as_int(getattr(fuzz, name)))
    module.UWRatio = module.WRatio
    module.UQRatio = module.QRatio


def _build_fuzzywuzzy_process(module: types.ModuleType) -> None:
    from rapidfuzz import fuzz, process, utils

    def _result(match, choices):
        choice, score, key = match
        score = int(round(score))
        return (choice, score, key) if hasattr(choices, "items") else (choice, score)

    def extractOne(query, choices, processor=utils.default_process, scorer=fuzz.WRatio, score_cutoff=0):
        """fuzzywuzzy.process.extractOne on rapidfuzz: best (choice, score) or None."""
        match = process.extractOne(query, choices, scorer=scorer, processor=processor,
                                   score_cutoff=score_cutoff)
        return None if match is None else _result(match, choices)

    def extract(query, choices, processor=utils.default_process, scorer=fuzz.WRatio, limit=5):
        """fuzzywuzzy.process.extract on rapidfuzz: the ``limit`` best (choice, score)."""
        matches = process.extract(query, choices, scorer=scorer, processor=processor, limit=limit)
        return [_result(match, choices) for match in matches]

    module.extractOne = extractOne
    module.extract = extract


def _build_pkuseg(module: types.ModuleType) -> None:
    class pkuseg:  # noqa: N801 - the name CRSLab uses
        def __init__(self, *args, **kwargs):
            raise ImportError(
                "pkuseg is not installed (it has no wheel for Python 3.11); Chinese datasets "
                "(TG-ReDial, DuRecDial) need it for tokenisation: `pip install pkuseg`."
            )

    module.pkuseg = pkuseg


STAND_INS: Dict[str, Callable[[types.ModuleType], None]] = {
    "fasttext": _build_fasttext,
    "fuzzywuzzy": _build_fuzzywuzzy,
    "fuzzywuzzy.fuzz": _build_fuzzywuzzy_fuzz,
    "fuzzywuzzy.process": _build_fuzzywuzzy_process,
    "pkuseg": _build_pkuseg,
}


class _StandInLoader(importlib.abc.Loader):
    def __init__(self, build: Callable[[types.ModuleType], None]):
        self.build = build

    def create_module(self, spec):
        return None  # default module creation

    def exec_module(self, module):
        setattr(module, SHIM_MARKER, True)
        module.__doc__ = f"crslab-mscrs stand-in for the missing package {module.__name__!r}."
        self.build(module)


class MissingPackageFinder(importlib.abc.MetaPathFinder):
    """Serves the stand-ins above, only for names no other finder could locate."""

    crslab_mscrs_finder = True

    def find_spec(self, fullname, path=None, target=None):
        build = STAND_INS.get(fullname)
        if build is None:
            return None
        return importlib.util.spec_from_loader(fullname, _StandInLoader(build),
                                               is_package=fullname == "fuzzywuzzy")


def install() -> None:
    """Append the fallback finder to ``sys.meta_path`` once."""
    if not any(getattr(finder, "crslab_mscrs_finder", False) for finder in sys.meta_path):
        sys.meta_path.append(MissingPackageFinder())


def is_stand_in(module: types.ModuleType) -> bool:
    """True if ``module`` is one of our stand-ins rather than the real package."""
    return bool(getattr(module, SHIM_MARKER, False))
