"""Compatibility layer for CRSLab 0.1.2 on a modern stack (filled in by the compat work)."""


def apply() -> None:
    """Apply every patch, idempotently."""
