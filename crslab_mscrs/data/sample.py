"""The embedded sample data root: a small, complete CRSLab data root shipped in the package.

``crslab_mscrs/sample/`` holds ``dataset/redial/nltk``, ``dataset/inspired/nltk`` and
``model/kgsf/{ReDial,Inspired}`` built by the real builders from slices of both datasets
(see ``MANIFEST.json`` and ``ATTRIBUTION.md`` there; rebuild with
``data_prep/build_sample.py``). :func:`sample_data_root` copies it to a writable folder,
because CRSLab writes next to its data (``all_data.pkl``, re-downloads on a bad marker)
and nothing may be written into an installed package.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import List, Optional

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample"
DEFAULT_DEST = Path("data") / "sample"
MANIFEST = "MANIFEST.json"
HASH_STAMP = ".sample_hash"
_IGNORED_NAMES = {"__pycache__", "__init__.py", HASH_STAMP}


def sample_files(sample_dir: Path = SAMPLE_DIR) -> List[Path]:
    """The sample's files (relative paths, sorted), ignoring caches and package stubs."""
    files = []
    for path in sorted(Path(sample_dir).rglob("*")):
        rel = path.relative_to(sample_dir)
        if path.is_file() and not (set(rel.parts) & _IGNORED_NAMES) and path.suffix != ".pyc":
            files.append(rel)
    return files


def content_hash(sample_dir: Path = SAMPLE_DIR) -> str:
    """SHA-256 over the sample's relative paths and bytes (``.built`` markers excluded:
    they carry a timestamp and are rewritten on copy)."""
    digest = hashlib.sha256()
    for rel in sample_files(sample_dir):
        if rel.name == ".built":
            continue
        digest.update(str(rel.as_posix()).encode("utf-8") + b"\0")
        digest.update((Path(sample_dir) / rel).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def _write_markers(root: Path, manifest: dict) -> None:
    """(Re)write the ``.built`` markers listed in the manifest: package installers may
    drop dot-files, and CRSLab would otherwise try to download."""
    from crslab_mscrs.data.crslab_format import write_built_marker

    for rel_dir, version in manifest.get("built_markers", {}).items():
        write_built_marker(root / rel_dir, version)


def sample_data_root(dest: Optional[Path] = None, sample_dir: Path = SAMPLE_DIR) -> Path:
    """Copy the embedded sample to ``dest`` (default ``./data/sample``) unless an identical
    copy is already there (same content hash); return ``dest`` as an absolute path.

    Use it as a data root: ``crslab_mscrs.paths.set_data_root(sample_data_root())``.

    Raises:
        FileNotFoundError: the package has no sample (rebuild with data_prep/build_sample.py).
        FileExistsError: ``dest`` exists, is not empty and was not made by this function.
    """
    sample_dir = Path(sample_dir)
    if not (sample_dir / MANIFEST).is_file():
        raise FileNotFoundError(f"no embedded sample at {sample_dir} (missing {MANIFEST}); "
                                "rebuild it with `python data_prep/build_sample.py`")
    dest = Path(dest if dest is not None else DEFAULT_DEST).expanduser().resolve()
    wanted = content_hash(sample_dir)
    stamp = dest / HASH_STAMP
    if stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == wanted:
        return dest
    if dest.exists() and any(dest.iterdir()) and not stamp.is_file():
        raise FileExistsError(f"{dest} exists and is not a sample copy (no {HASH_STAMP}); "
                              "pass another destination")
    staging = dest.parent / f".{dest.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for rel in sample_files(sample_dir):
        target = staging / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(sample_dir / rel, target)
    manifest = json.loads((sample_dir / MANIFEST).read_text(encoding="utf-8"))
    _write_markers(staging, manifest)
    (staging / HASH_STAMP).write_text(wanted + "\n", encoding="utf-8")
    if dest.exists():
        shutil.rmtree(dest, ignore_errors=True)
    try:
        os.replace(staging, dest)
    except OSError:
        # another process put a copy there first: fine if it is the same sample
        shutil.rmtree(staging, ignore_errors=True)
        if not (stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == wanted):
            raise
    return dest
