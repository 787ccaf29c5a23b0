"""Sinusoidal position codes written without an in-place op on a leaf that requires grad.

Fixes ``crslab/model/utils/modules/transformer.py:47`` (``create_position_codes``): it
assigns slices of ``nn.Embedding.weight`` (a leaf Parameter with ``requires_grad=True``)
in place, which modern torch rejects with "a leaf Variable that requires grad is being used
in an in-place operation" whenever ``learn_positional_embeddings`` is false. KGSF's
``crslab/model/crs/kgsf/modules.py:5-7`` (used at line 174) imports the function by name, so every module
holding a reference is rebound, not only the defining one.

Codes as in Vaswani et al., 2017: ``PE[pos, 2j] = sin(pos / 10000^(2j/dim))``,
``PE[pos, 2j+1] = cos(...)``; afterwards the weight is frozen (``requires_grad=False``),
exactly what CRSLab intended.
"""
from __future__ import annotations

import torch

from ._patching import is_marked, mark, rebind_everywhere

MODULES_USING_IT = ("crslab.model.utils.modules.transformer", "crslab.model.crs.kgsf.modules")


def create_position_codes(n_pos: int, dim: int, out: torch.Tensor) -> None:
    """Fill ``out`` (``n_pos x dim``) with sinusoidal position codes and freeze it."""
    positions = torch.arange(n_pos, dtype=torch.float64).unsqueeze(1)
    frequencies = torch.pow(10000.0, 2 * torch.arange(dim // 2, dtype=torch.float64) / dim)
    angles = positions / frequencies
    with torch.no_grad():
        out[:, 0::2] = torch.sin(angles).to(out.dtype)
        out[:, 1::2] = torch.cos(angles).to(out.dtype)
    out.requires_grad_(False)


mark(create_position_codes, "positional")


def install() -> None:
    import importlib

    for module_name in MODULES_USING_IT:
        module = importlib.import_module(module_name)
        current = module.create_position_codes
        if not is_marked(current):
            rebind_everywhere(current, create_position_codes)
