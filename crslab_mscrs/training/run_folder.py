"""Run folders ``<save_dir>/<run_name>/``: one per recipe, with the recipe recorded inside.

The default ``run_name`` is ``<dataset>_<model>_seed<seed>_<hash>``, where ``hash`` is a short
sha256 of the run's *identity*: every effective setting except those that only say where files
go or how long to run (:data:`NOT_IDENTITY`, :data:`NOT_IDENTITY_STAGE`). Two runs that differ
in any other setting (an ablation) therefore never share a folder; a resumed run (``-rs``) of
the same config computes the same name and finds its checkpoints.

The folder holds :data:`RECORD` (the identity and the full effective config). Opening a folder
whose record holds another identity (e.g. the same explicit ``run_name`` for two recipes) is
refused with a :class:`~crslab_mscrs.config.ConfigError` naming every differing key.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Dict, List, Mapping

import yaml

RECORD = "run_config.yaml"
HASH_LENGTH = 8

#: top-level keys that do not change what a run computes: paths, outputs, logging, device,
#: which of its stages this invocation runs, interaction
NOT_IDENTITY = frozenset({
    "data_root", "save_dir", "rankings_out", "metrics_out", "log_name", "model_file", "run_name",
    "resume", "gpu", "model_name", "stages", "interact_top_k", "allow_untrained",
})
#: stage keys that bound a run in time or log it, but leave its recipe alone (a resumed run
#: may be given more time)
NOT_IDENTITY_STAGE = frozenset({"time_limit_min", "checkpoint_every_min", "log_every"})
STAGE_SECTIONS = ("pretrain", "rec", "conv", "policy")


def _plain(opt) -> dict:
    """The option dict of CRSLab's ``Config`` (its ``.opt``) or of a mapping, JSON-normalised."""
    options = getattr(opt, "opt", opt)
    return json.loads(json.dumps(dict(options), default=str))


def identity(opt) -> dict:
    """The settings that decide a run's result (see the module docstring)."""
    out = {}
    for key, value in _plain(opt).items():
        if key in NOT_IDENTITY:
            continue
        if key in STAGE_SECTIONS and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in NOT_IDENTITY_STAGE}
        out[key] = value
    return out


def identity_hash(opt) -> str:
    text = json.dumps(identity(opt), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_LENGTH]


def default_run_name(opt, seed: int) -> str:
    options = getattr(opt, "opt", opt)
    model = options.get("model_name") or options.get("model")
    return f"{options['dataset']}_{model}_seed{seed}_{identity_hash(opt)}"


def _flatten(tree: Mapping, prefix: str = "") -> Dict[str, object]:
    out: Dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def differences(recorded: Mapping, current: Mapping) -> List[str]:
    """``key=recorded (now current)`` for every setting that differs (dotted keys)."""
    before, now = _flatten(recorded), _flatten(current)
    missing = "<unset>"
    return [f"{key}={before.get(key, missing)!r} (now {now.get(key, missing)!r})"
            for key in sorted(set(before) | set(now)) if before.get(key, missing) != now.get(key, missing)]


def read_record(folder: Path) -> dict:
    path = Path(folder) / RECORD
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {} if path.is_file() else {}


def run_dir(opt, seed: int) -> Path:
    """The run folder of ``opt``: ``<save_dir>/<run_name>``, the default name with the hash."""
    import crslab.config as crslab_config

    options = getattr(opt, "opt", opt)
    save_root = Path(options.get("save_dir") or crslab_config.SAVE_PATH)
    return save_root / str(options.get("run_name") or default_run_name(opt, seed))


def open_run_dir(folder: Path, opt) -> Path:
    """Create ``folder`` with the recipe of ``opt`` recorded; refuse it when it holds a run of
    another recipe (a :class:`~crslab_mscrs.config.ConfigError` naming every differing key)."""
    from crslab_mscrs.config import ConfigError

    folder = Path(folder)
    current = identity(opt)
    record = read_record(folder)
    if record.get("identity") is not None and record["identity"] != current:
        changed = differences(record["identity"], current)
        raise ConfigError(f"run folder {folder} holds a run of another config ({folder / RECORD}); "
                          f"it was trained with {'; '.join(changed)}. Use another run_name, "
                          "or leave run_name unset (the default name includes a hash of the config)")
    if not record:
        folder.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump({"identity_hash": identity_hash(opt), "identity": current,
                               "effective_config": _plain(opt)}, sort_keys=False)
        (folder / RECORD).write_text(text, encoding="utf-8")
    return folder
