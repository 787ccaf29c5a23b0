"""Files a run needs that another command makes: the error says which command.

A missing built dataset is made by ``make data`` / ``crslab-mscrs build-data``; missing
semantic graphs by ``make features`` / ``crslab-mscrs features all``. Both raise
:class:`MissingPrerequisite` (a ``FileNotFoundError``), which the CLI prints without a traceback.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional


class MissingPrerequisite(FileNotFoundError):
    """A file made by another command is absent; the message names that command."""


def build_data_hint(data_root: Optional[Path] = None) -> str:
    root = f" --data-root {data_root}" if data_root else ""
    return ("build it with `make data SOURCE=RAW_DATA_FOLDER` in a source checkout or "
            f"`crslab-mscrs build-data --source RAW_DATA_FOLDER{root}`; `--data-root sample` runs on "
            "the embedded sample")


def features_hint(dataset: str = "<dataset>", data_root: Optional[Path] = None) -> str:
    root = f" --data-root {data_root}" if data_root else ""
    return ("build the graphs with `make features` in a source checkout or `crslab-mscrs features all "
            f"--config features/{dataset.lower()}_offline --source RAW_DATA_FOLDER{root}`")


def require_built_dataset(data_root: Path, dataset: str, tokenize: str) -> Path:
    """The built dataset folder, or :class:`MissingPrerequisite` naming ``make data``."""
    from crslab_mscrs.paths import dataset_dir

    folder = dataset_dir(dataset, tokenize, Path(data_root))
    if not (folder / "train_data.json").is_file():
        raise MissingPrerequisite(f"built dataset not found: {folder} (no train_data.json): "
                                  f"{build_data_hint(data_root)}")
    return folder


def require_kgsf_copy_mask(data_root: Path, dataset: str) -> Path:
    """KGSF's copy mask (:mod:`crslab_mscrs.data.copy_mask`), or :class:`MissingPrerequisite`.

    Without it CRSLab's KGSF tries to download its original resources from a dead link and
    fails with "Connection broken"; ``build-data`` writes the mask beside the dataset.
    """
    from crslab_mscrs.data.copy_mask import copy_mask_dir

    path = copy_mask_dir(Path(data_root), dataset) / "copy_mask.npy"
    if not path.is_file():
        raise MissingPrerequisite(f"KGSF copy mask not found: {path} (written with the dataset by "
                                  f"build-data into <data root>/model): {build_data_hint(data_root)}")
    return path
