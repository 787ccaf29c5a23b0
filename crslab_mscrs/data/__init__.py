"""Offline dataset builders: raw ReDial / INSPIRED -> CRSLab ``nltk`` format, plus the sample.

Public entry points::

    build_redial(source_root, data_root, options) -> BuildReport
    build_inspired(source_root, data_root, options) -> BuildReport
    build_datasets(source_root, data_root, datasets=("redial", "inspired"), options) -> dict
    sample_data_root(dest=None) -> Path            (crslab_mscrs.data.sample)

Each built dataset folder also holds ``item_names.json`` (entity id -> movie name, see
:mod:`crslab_mscrs.data.item_names`); the sample also ships its semantic graphs
(:mod:`crslab_mscrs.data.sample_features`).

Submodules import CRSLab lazily where they can, so ``import crslab_mscrs.data`` is cheap.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, Optional

from crslab_mscrs.data.build_options import DEFAULT_SEED, BuildOptions

BUILDERS = ("redial", "inspired")


def build_redial(source_root, data_root, options: Optional[BuildOptions] = None, echo: bool = True):
    from crslab_mscrs.data.redial import build_redial as _build

    return _build(source_root, data_root, options, echo)


def build_inspired(source_root, data_root, options: Optional[BuildOptions] = None, echo: bool = True):
    from crslab_mscrs.data.inspired import build_inspired as _build

    return _build(source_root, data_root, options, echo)


def build_datasets(source_root, data_root, datasets: Iterable[str] = BUILDERS,
                   options: Optional[BuildOptions] = None, echo: bool = True) -> Dict[str, "BuildReport"]:
    """Build each named dataset (``redial``, ``inspired``); returns ``{name: BuildReport}``."""
    keys = [name.strip().lower() for name in datasets if name.strip()]
    unknown = [key for key in keys if key not in BUILDERS]
    if unknown or not keys:
        raise ValueError(f"unknown dataset(s) {unknown or keys}; choose from {', '.join(BUILDERS)}")
    reports = {}
    for key in keys:
        build = build_redial if key == "redial" else build_inspired
        reports[key] = build(source_root, data_root, options, echo)
    return reports


def sample_data_root(dest: Optional[Path] = None) -> Path:
    from crslab_mscrs.data.sample import sample_data_root as _sample

    return _sample(dest)


__all__ = ["BuildOptions", "DEFAULT_SEED", "build_redial", "build_inspired", "build_datasets",
           "sample_data_root"]
