"""Registration of this plugin's datasets, models, systems and evaluators into CRSLab.

CRSLab dispatches through plain module-level dicts (see ``docs/crslab_compat.md#registries-and-data-paths``); we only
ever mutate them, never rebind, so every module that imported a table sees our entries.
This is the ONE place where the plugin touches CRSLab's registries.

User datasets (docs/own_data.md) are registered by name from the data root: every
``<data_root>/dataset/<folder>/nltk/dataset_info.json`` written by the generic builder
(:func:`register_custom_datasets`, called at import for the default root and by the CLI
once the run's data root is known).
"""
from __future__ import annotations

import json
from pathlib import Path

_done = False
_custom: dict = {}


def register_all() -> None:
    """Register everything, idempotently."""
    global _done
    if _done:
        return
    import crslab.data as crslab_data

    from crslab_mscrs.compat.conversation_tags import TaggedInspiredDataset, TaggedReDialDataset

    # same loaders, plus conv_id / turn_index on every sample (for per-conversation evaluation)
    crslab_data.dataset_register_table["ReDial"] = TaggedReDialDataset
    crslab_data.dataset_register_table["Inspired"] = TaggedInspiredDataset

    from crslab_mscrs.model.mscrs import register as register_models
    from crslab_mscrs.training import register as register_systems

    register_models()
    register_systems()
    from crslab_mscrs.paths import resolve_data_root

    register_custom_datasets(resolve_data_root(), strict=False)
    _done = True


def register_custom_dataset(name: str, version: str) -> None:
    """Make the user dataset ``name`` loadable by CRSLab: its dataset class, its language
    (English, for CRSLab's evaluators) and the version of its KGSF copy mask."""
    if _custom.get(name) == version:
        return
    import crslab.data as crslab_data
    from crslab.model.crs.kgsf.resources import resources as kgsf_resources

    from crslab_mscrs.compat.custom_dataset import NotBuiltResource, custom_dataset_class

    crslab_data.dataset_register_table[name] = custom_dataset_class(name, version)
    crslab_data.dataset_language_map[name] = "en"
    kgsf_resources[name] = {"version": version, "file": NotBuiltResource(name)}
    _custom[name] = version


def register_custom_datasets(data_root, strict: bool = True) -> list:
    """Register every user dataset built under ``data_root``; returns their names.

    A broken ``dataset_info.json`` raises (``strict``) or is logged and skipped (at import)."""
    from crslab_mscrs.data.custom.format import INFO_FILE

    names = []
    for info_path in sorted(Path(data_root).glob(f"dataset/*/nltk/{INFO_FILE}")):
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
            name, version = info["crslab_name"], info["version"]
            if name.lower() != info_path.parent.parent.name:
                raise ValueError(f"names dataset {name!r} but lies in folder {info_path.parent.parent.name!r}")
        except (ValueError, KeyError, TypeError) as err:
            if strict:
                raise ValueError(f"{info_path}: not a user dataset descriptor ({err})") from err
            from loguru import logger

            logger.warning(f"{info_path}: not a user dataset descriptor ({err}); dataset not registered")
            continue
        register_custom_dataset(name, version)
        names.append(name)
    return names
