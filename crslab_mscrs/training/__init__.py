"""Training MSCRS / UniCRS through CRSLab: stages, checkpoints, outputs.

- :mod:`crslab_mscrs.batches.dataloader`: ``MSCRSDataLoader`` (CRSLab samples -> prompt-learning batches)
- :mod:`.system`: ``MSCRSSystem``, the CRSLab ``BaseSystem`` adapter; each job has its module:
  :mod:`.settings` (config keys and defaults), :mod:`.loop` (stages, epochs, accumulation,
  time limits, resume), :mod:`.run_state` + :mod:`.checkpoint` (typed ``last.pth``),
  :mod:`.validation` (ranking metrics), :mod:`.generation` (test replies, slot filling,
  journal), :mod:`.outputs` (result files), :mod:`.chat` (``interact``),
  :mod:`.demonstrations` (``use_demonstrations``), :mod:`.optim` (AdamW + schedule)

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

    from crslab_mscrs.training.config_keys import register_config_keys
    from crslab_mscrs.batches.dataloader import MSCRSDataLoader
    from crslab_mscrs.training.system import MSCRSSystem

    for name in MODEL_NAMES:
        crslab_data.dataloader_register_table[name] = MSCRSDataLoader
        crslab_system.system_register_table[name] = MSCRSSystem
    register_config_keys(MODEL_NAMES)
