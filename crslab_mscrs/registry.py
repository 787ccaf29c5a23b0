"""Registration of this plugin's datasets, models, systems and evaluators into CRSLab.

CRSLab dispatches through plain module-level dicts (see ``docs/CRSLAB_NOTES.md``); we only
ever mutate them, never rebind, so every module that imported a table sees our entries.
This is the ONE place where the plugin touches CRSLab's registries.
"""


def register_all() -> None:
    """Register everything, idempotently."""
