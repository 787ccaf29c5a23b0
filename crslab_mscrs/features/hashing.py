"""Content hashes of inputs, so a cached feature/graph file can tell that it is stale.

Every saved artefact (features, graphs) stores in its JSON manifest the sha256 of the
inputs it was computed from (files or in-memory objects). Reloading with
``expected_inputs`` recomputes those hashes and refuses a mismatch (docs/data.md,
"Features and semantic graphs").
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

_CHUNK = 1 << 20


def sha256_file(path) -> str:
    """sha256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _canonical(obj: Any) -> Any:
    """A JSON-serialisable, order-stable view of ``obj`` (tensors/arrays become lists)."""
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return obj.tolist()
    if isinstance(obj, Mapping):
        return {str(key): _canonical(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canonical(value) for value in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def sha256_object(obj: Any) -> str:
    """sha256 of a canonical JSON encoding of ``obj`` (dict keys sorted)."""
    text = json.dumps(_canonical(obj), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_input(value: Any) -> str:
    """Hash of one input: a file's bytes when ``value`` is an existing path, else the object."""
    if isinstance(value, (str, Path)) and Path(value).is_file():
        return sha256_file(value)
    return sha256_object(value)


def hash_inputs(inputs: Mapping[str, Any]) -> dict:
    """``{name: sha256}`` for a mapping of named inputs (paths or objects)."""
    return {name: sha256_input(value) for name, value in inputs.items()}


def compare_hashes(recorded: Mapping[str, str], expected: Mapping[str, str]) -> list:
    """Human-readable differences between recorded and freshly computed input hashes."""
    problems = []
    for name, digest in expected.items():
        if name not in recorded:
            problems.append(f"input '{name}' was not recorded in the manifest")
        elif recorded[name] != digest:
            problems.append(f"input '{name}' changed (manifest {recorded[name][:12]}..., now {digest[:12]}...)")
    return problems
