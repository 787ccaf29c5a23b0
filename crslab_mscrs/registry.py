"""Registration of this plugin's datasets, models, systems and evaluators into CRSLab.

CRSLab dispatches through plain module-level dicts (see ``docs/crslab_compat.md#registries-and-data-paths``); we only
ever mutate them, never rebind, so every module that imported a table sees our entries.
This is the ONE place where the plugin touches CRSLab's registries.
"""
from __future__ import annotations

_done = False


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
    _done = True
