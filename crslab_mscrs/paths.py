"""Where data, models and checkpoints live: one data root instead of CRSLab's site-packages.

CRSLab 0.1.2 derives ``ROOT_PATH`` from its own install location, so by default it writes
datasets and checkpoints into site-packages, and about 14 modules copy the ``*_PATH``
globals with ``from crslab.config import ...``. :func:`set_data_root` rewrites the
globals of ``crslab.config`` *and* every already imported ``crslab.*`` module that copied
them. Precedence of the root (highest first): explicit argument / CLI flag ``--data-root``,
config key ``data_root``, environment variable ``CRSLAB_MSCRS_DATA``, default ``./data``.

Layout under the root::

    <root>/dataset/<dataset>/<tokenize>/   CRSLab-format datasets (our builder writes them)
    <root>/features/<dataset>/              item features and semantic graphs
    <root>/model/, <root>/model/pretrain/   model side data
    <root>/embedding/                       fastText vectors for embedding metrics (optional)
    <root>/../save/                         checkpoints (``save_dir``, default ``./save``)
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

ENV_VAR = "CRSLAB_MSCRS_DATA"
SAVE_ENV_VAR = "CRSLAB_MSCRS_SAVE"
DEFAULT_DATA_ROOT = "data"
DEFAULT_SAVE_ROOT = "save"
SAMPLE = "sample"

_PATH_NAMES = ("ROOT_PATH", "SAVE_PATH", "DATA_PATH", "DATASET_PATH", "MODEL_PATH",
               "PRETRAIN_PATH", "EMBEDDING_PATH")

_current: dict = {}


def resolve_data_root(explicit: Optional[str] = None, config_value: Optional[str] = None) -> Path:
    """Return the data root following the documented precedence, as an absolute path.

    The special value ``sample`` selects the embedded sample shipped inside the package; it
    is copied to ``./data/sample`` first, so nothing is written into the installed package.
    """
    for candidate in (explicit, config_value, os.environ.get(ENV_VAR)):
        if candidate:
            if candidate == SAMPLE:
                from crslab_mscrs.data.sample import sample_data_root

                return Path(sample_data_root()).resolve()
            return Path(candidate).expanduser().resolve()
    return Path(DEFAULT_DATA_ROOT).resolve()


def resolve_save_root(explicit: Optional[str] = None) -> Path:
    for candidate in (explicit, os.environ.get(SAVE_ENV_VAR)):
        if candidate:
            return Path(candidate).expanduser().resolve()
    return Path(DEFAULT_SAVE_ROOT).resolve()


def crslab_paths(data_root: Path, save_root: Path) -> dict:
    """The values CRSLab's ``*_PATH`` globals get for a data root."""
    data_root = Path(data_root)
    return {
        "ROOT_PATH": str(data_root.parent),
        "SAVE_PATH": str(save_root),
        "DATA_PATH": str(data_root),
        "DATASET_PATH": str(data_root / "dataset"),
        "MODEL_PATH": str(data_root / "model"),
        "PRETRAIN_PATH": str(data_root / "model" / "pretrain"),
        "EMBEDDING_PATH": str(data_root / "embedding"),
    }


def set_data_root(data_root, save_root=None) -> dict:
    """Point every CRSLab path global (and copies of it in imported modules) at ``data_root``.

    Idempotent; returns the mapping applied. Modules imported *after* this call copy the
    new values from ``crslab.config``, so they follow too.
    """
    import crslab.config as cfg

    new = crslab_paths(Path(data_root).resolve(), resolve_save_root(save_root))
    if not _current:
        _current.update({name: getattr(cfg, name) for name in _PATH_NAMES})
    old_values = {name: {_current[name], getattr(cfg, name)} for name in _PATH_NAMES}
    for mod_name, module in list(sys.modules.items()):
        if module is None or not (mod_name == "crslab" or mod_name.startswith("crslab.")):
            continue
        for name in _PATH_NAMES:
            if name in vars(module) and getattr(module, name) in old_values[name]:
                setattr(module, name, new[name])
    _current.update(new)
    return dict(new)


def data_root() -> Path:
    """The data root currently in force."""
    import crslab.config as cfg

    return Path(cfg.DATA_PATH)


def dataset_dir(dataset: str, tokenize: str = "nltk", root: Optional[Path] = None) -> Path:
    """Folder of a built CRSLab-format dataset, e.g. ``<root>/dataset/redial/nltk``."""
    return Path(root or data_root()) / "dataset" / dataset.lower() / tokenize


def features_dir(dataset: str, root: Optional[Path] = None) -> Path:
    """Folder of a dataset's item features and semantic graphs."""
    return Path(root or data_root()) / "features" / dataset.lower()
