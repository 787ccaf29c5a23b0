"""The MSCRS / UniCRS training system for CRSLab: data pipeline, stages, checkpoints, outputs.

- :mod:`.dataloader`: ``MSCRSDataLoader`` (CRSLab samples -> prompt-learning batches)
- :mod:`.system`: ``MSCRSSystem`` (pretrain -> rec -> conv, validation-chosen checkpoints,
  resumable runs, test outputs, ``interact``)

:func:`register` adds both under the model names ``MSCRS`` and ``UniCRS`` to CRSLab's
registries (called from :mod:`crslab_mscrs.registry`). Heavy modules are imported lazily
so importing this package stays cheap.
"""
from __future__ import annotations

MODEL_NAMES = ("MSCRS", "UniCRS")


def register() -> None:
    """Register the MSCRS dataloader and system for ``model: MSCRS`` and ``model: UniCRS``."""
    import crslab.data as crslab_data
    import crslab.system as crslab_system

    from crslab_mscrs.mscrs_system.config_keys import register_config_keys
    from crslab_mscrs.mscrs_system.dataloader import MSCRSDataLoader
    from crslab_mscrs.mscrs_system.system import MSCRSSystem

    for name in MODEL_NAMES:
        crslab_data.dataloader_register_table[name] = MSCRSDataLoader
        crslab_system.system_register_table[name] = MSCRSSystem
    register_config_keys(MODEL_NAMES)
