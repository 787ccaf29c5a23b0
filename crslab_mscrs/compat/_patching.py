"""Small helpers shared by the compat patches: marking patched objects, rebinding references."""
from __future__ import annotations

import sys
from typing import Any

PATCH_MARKER = "__crslab_mscrs_patch__"


def mark(obj: Any, name: str) -> Any:
    """Tag ``obj`` (a function or class) as the replacement installed by patch ``name``."""
    setattr(obj, PATCH_MARKER, name)
    return obj


def is_marked(obj: Any) -> bool:
    """True if ``obj`` was installed by one of our patches (used for idempotence)."""
    return getattr(obj, PATCH_MARKER, None) is not None


def rebind_everywhere(original: Any, replacement: Any, prefix: str = "crslab") -> list:
    """Replace every module-level reference to ``original`` in imported ``prefix.*`` modules.

    CRSLab modules copy functions and classes with ``from x import name``; patching only
    the defining module would leave those copies untouched. Returns the rebound
    ``module.name`` strings.
    """
    rebound = []
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == prefix or module_name.startswith(prefix + ".")):
            continue
        for attribute, value in list(vars(module).items()):
            if value is original:
                setattr(module, attribute, replacement)
                rebound.append(f"{module_name}.{attribute}")
    return rebound
