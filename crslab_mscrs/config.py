"""Layered YAML configs: loading, composing and validating.

A config file may start with ``extends:`` naming the file(s) it builds on; the loader reads
the chain, deep-merges it (mappings merge key by key, any other value replaces) and applies
``--set key=value`` overrides last. Every packaged config ships in ``crslab_mscrs/configs/``
(``config/`` in a source checkout is a link to it) and is named by its path there without
``.yaml``: ``mscrs/redial``, ``kbrd/sample``, ``features/redial_offline``::

    from crslab_mscrs.config import compose
    opt = compose("mscrs/sample", ["rec.epoch=1"])      # the complete option dict

Layout (``crslab_mscrs/configs/README.md``): one documented ``base.yaml`` per model family
holds EVERY key with its default (``mscrs/base`` also serves UniCRS, ``kbrd/base``,
``kgsf/base``, ``features/base``); per-dataset and per-variant files only hold what differs.
Files whose name starts with ``_`` are layers (``unicrs/_graphs_off``: UniCRS = MSCRS with
every semantic graph off), not runnable on their own. A file of a known ``model`` that does
not extend its family's base gets that base underneath, so the composed options are always
complete and code reads them without defaults of its own.

``extends`` values are packaged names or paths (relative to the file that names them).

CRSLab reads its YAML into a plain dict and silently ignores keys it does not know, so a
typo such as ``lerning_rate`` trains with the default and nobody notices. We validate the
MERGED options against the keys the chosen model, its dataloader and system read (and the
keys of the stage sections ``pretrain``, ``rec``, ``conv``) and raise a :class:`ConfigError`
naming the file that set the key, the closest known key and the chain of files.

Precedence (highest first): ``--set`` overrides, the file given, the files it extends (later
entries of an ``extends:`` list over earlier ones), the family base.
"""
from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

import yaml

#: the packaged configs (``config/`` in a source checkout points here)
CONFIG_ROOT = Path(__file__).resolve().parent / "configs"
EXTENDS = "extends"

#: keys every config may hold (CRSLab's own and this plugin's)
COMMON_KEYS = {
    "dataset": "ReDial or Inspired",
    "tokenize": "tokenisation of the built dataset folder (nltk)",
    "model": "registered model name (KBRD, KGSF, MSCRS, UniCRS)",
    "rec_model": "CRSLab: separate recommendation model", "conv_model": "CRSLab: separate conversation model",
    "policy_model": "CRSLab: policy model",
    "data_root": "data root folder, or 'sample' for the embedded sample",
    "save_dir": "where checkpoints go (default ./save)",
    "seed": "random seed",
    "evaluator": "CRSLab evaluator name (standard, rec, conv)",
    "embedding": "pretrained word embedding .npy inside the dataset folder",
    "log_name": "CRSLab log file name", "model_file": "checkpoint file name",
    "scale": "fraction of the data to use (CRSLab)",
    "gradient_clip": "gradient clipping norm", "update_freq": "gradient accumulation steps (CRSLab)",
    "rankings_out": "write test rankings.jsonl here", "metrics_out": "write test metrics.json here",
    "stages": "training stages to run, e.g. [pretrain, rec, conv] (default: all of the system's)",
}

#: keys of a stage section (``pretrain:``, ``rec:``, ``conv:``)
STAGE_KEYS = {
    "epoch", "batch_size", "optimizer", "lr_scheduler", "early_stop", "stop_mode", "impatience",
    "gradient_clip", "update_freq", "warmup_steps", "gradient_accumulation_steps", "eval_batch_size",
    "max_batches_per_epoch", "time_limit_min", "checkpoint_every_min", "log_every", "validate",
}
#: deprecated stage key -> its new name (the loader renames it and says so)
DEPRECATED_STAGE_KEYS = {"max_steps": "max_batches_per_epoch"}
STAGE_SECTIONS = ("pretrain", "rec", "conv", "policy")

_TRANSFORMER_KEYS = {
    "context_truncate", "response_truncate", "entity_truncate", "word_truncate", "token_emb_dim",
    "kg_emb_dim", "num_bases", "n_heads", "n_layers", "ffn_size", "dropout", "attention_dropout",
    "relu_dropout", "learn_positional_embeddings", "embeddings_scale", "embedding_scale", "reduction",
    "n_positions", "longest_label", "beam",
}

#: model name -> keys its model / dataloader / system read (besides COMMON_KEYS)
MODEL_KEYS: Dict[str, set] = {
    "KBRD": _TRANSFORMER_KEYS | {"user_proj_dim"} | set(STAGE_SECTIONS),
    "KGSF": _TRANSFORMER_KEYS | set(STAGE_SECTIONS),
}

#: model name -> the layers every config of that model sits on (its family base first)
FAMILY_BASES: Dict[str, tuple] = {
    "MSCRS": ("mscrs/base",),
    "UniCRS": ("mscrs/base", "unicrs/_graphs_off"),
    "KBRD": ("kbrd/base",),
    "KGSF": ("kgsf/base",),
}
FEATURES_BASE = "features/base"
#: keys a features config holds besides its ``features:`` section
FEATURES_TOP_KEYS = {"dataset", "data_root", "features"}
OVERRIDE_SOURCE = "--set"


class ConfigError(ValueError):
    """A config file is malformed or holds a key nobody reads."""


def register_model_keys(model_name: str, keys: Iterable[str]) -> None:
    """Let a plugin model declare the config keys it reads (used by validation)."""
    MODEL_KEYS[model_name] = set(keys) | set(STAGE_SECTIONS)


# ----------------------------------------------------------------------------- files
def read_yaml(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML: {err}") from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def list_configs(include_layers: bool = False) -> List[str]:
    """Names of the packaged configs (``mscrs/redial``, ...); bases and ``_`` layers only
    with ``include_layers``."""
    names = []
    for path in sorted(CONFIG_ROOT.rglob("*.yaml")):
        name = path.relative_to(CONFIG_ROOT).with_suffix("").as_posix()
        if include_layers or not (path.stem == "base" or path.stem.startswith("_")):
            names.append(name)
    return names


def config_name(path: Path) -> Optional[str]:
    """``mscrs/redial`` for a packaged file, ``None`` for any other file."""
    try:
        return Path(path).resolve().relative_to(CONFIG_ROOT).with_suffix("").as_posix()
    except ValueError:
        return None


def find_config(spec: Union[str, Path], relative_to: Optional[Path] = None) -> Path:
    """The file of a config given as a path or a packaged name.

    An existing path (absolute, relative to ``relative_to``, or to the working directory)
    wins; otherwise ``mscrs/redial``, ``mscrs/redial.yaml`` and ``config/mscrs/redial.yaml``
    all name the packaged ``crslab_mscrs/configs/mscrs/redial.yaml``, from any directory.
    """
    text = str(spec)
    candidates = [Path(text).expanduser()]
    if relative_to is not None and not Path(text).is_absolute():
        candidates.insert(0, Path(relative_to) / text)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    name = text[:-5] if text.endswith(".yaml") else text
    parts = Path(name).parts
    if parts and parts[0] == "config":
        name = Path(*parts[1:]).as_posix() if len(parts) > 1 else ""
    packaged = CONFIG_ROOT / f"{name}.yaml"
    if name and not Path(name).is_absolute() and packaged.is_file():
        return packaged
    raise ConfigError(f"config not found: {text} (neither a file nor a packaged config; packaged: "
                      f"{', '.join(list_configs())})")


def _label(path: Path) -> str:
    name = config_name(path)
    return f"{name}.yaml" if name is not None else str(path)


# ----------------------------------------------------------------------------- composing
@dataclass
class ComposedConfig:
    """Merged options of a config chain, with the file that set every key."""
    opt: dict
    chain: List[str]                                    # files, base first, as labels
    sources: Dict[str, str] = field(default_factory=dict)  # dotted key -> file label (or --set)

    def source(self, dotted: str) -> str:
        """The file that set ``dotted`` (or its closest parent section)."""
        key = dotted
        while key:
            if key in self.sources:
                return self.sources[key]
            key = key.rpartition(".")[0]
        return self.chain[-1] if self.chain else "<config>"

    def chain_text(self) -> str:
        return " <- ".join(reversed(self.chain))


def _merge(target: dict, layer: dict, label: str, sources: Dict[str, str], prefix: str = "") -> None:
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value, label, sources, dotted + ".")
        else:
            for old in [k for k in sources if k.startswith(dotted + ".")]:
                del sources[old]
            target[key] = copy.deepcopy(value)
            _record(sources, dotted, value, label)


def _record(sources: Dict[str, str], dotted: str, value, label: str) -> None:
    sources[dotted] = label
    if isinstance(value, dict):
        for key, sub in value.items():
            _record(sources, f"{dotted}.{key}", sub, label)


def _extends_list(data: dict, path: Path) -> List[str]:
    value = data.pop(EXTENDS, None)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"{path}: '{EXTENDS}' must be a config name or a list of them, got {value!r}")


def _layers(path: Path, stack: Sequence[str]) -> List[tuple]:
    """(path, data) of ``path`` and everything it extends, base first (each file once)."""
    label = _label(path)
    if label in stack:
        raise ConfigError(f"{path}: '{EXTENDS}' loops: {' -> '.join([*stack, label])}")
    data = read_yaml(path)
    out: List[tuple] = []
    for parent in _extends_list(data, path):
        try:
            parent_path = find_config(parent, relative_to=path.parent)
        except ConfigError as err:
            raise ConfigError(f"{path}: {EXTENDS} {parent!r}: {err}") from None
        for layer in _layers(parent_path, [*stack, label]):
            if all(_label(layer[0]) != _label(seen[0]) for seen in out):
                out.append(layer)
    out.append((path, data))
    return out


def resolve(spec: Union[str, Path], overrides: Optional[Iterable[str]] = None) -> ComposedConfig:
    """Read ``spec`` and its ``extends`` chain, add the family base, deep-merge, override.

    No validation (see :func:`compose`); useful for tools that only read a few keys.
    """
    path = find_config(spec)
    layers = _layers(path, [])
    model = next((data["model"] for _, data in reversed(layers) if "model" in data), None)
    is_features = any("features" in data for _, data in layers) or config_name(path) == FEATURES_BASE
    base_names = (FEATURES_BASE,) if is_features else FAMILY_BASES.get(model, ())
    labels = [_label(p) for p, _ in layers]
    for name in reversed(base_names):
        if f"{name}.yaml" not in labels:
            base_layers = _layers(CONFIG_ROOT / f"{name}.yaml", [])
            layers = [layer for layer in base_layers if _label(layer[0]) not in labels] + layers
            labels = [_label(p) for p, _ in layers]
    opt: dict = {}
    sources: Dict[str, str] = {}
    for layer_path, data in layers:
        _merge(opt, _renamed(data, layer_path), _label(layer_path), sources)
    composed = ComposedConfig(opt, labels, sources)
    apply_overrides(opt, overrides, sources)
    return composed


def _renamed(data: dict, path: Path) -> dict:
    """Deprecated stage keys under their new names (with a note naming the file)."""
    for section in STAGE_SECTIONS:
        stage = data.get(section)
        if not isinstance(stage, dict):
            continue
        for old, new in DEPRECATED_STAGE_KEYS.items():
            if old in stage:
                if new in stage:
                    raise ConfigError(f"{path}: '{section}.{old}' and '{section}.{new}' both set; "
                                      f"'{old}' is the deprecated name of '{new}': keep only '{new}'")
                _note(f"{path}: '{section}.{old}' is deprecated, read as '{section}.{new}'")
                stage[new] = stage.pop(old)
    return data


def _note(message: str) -> None:
    from loguru import logger

    logger.warning(message)


_BASE_CACHE: Dict[str, dict] = {}


def base_defaults(name: str) -> dict:
    """The options of a family base (``mscrs/base``): the one place of its defaults, for code
    handed a partial option dict (a copy; read once per process)."""
    if name not in _BASE_CACHE:
        _BASE_CACHE[name] = resolve(name).opt
    return copy.deepcopy(_BASE_CACHE[name])


def compose(spec: Union[str, Path], overrides: Optional[Iterable[str]] = None) -> dict:
    """The complete, validated option dict of a config (packaged name or path) with overrides.

    ``compose("mscrs/sample", ["rec.epoch=1"])`` is what ``--config mscrs/sample --set
    rec.epoch=1`` trains with.
    """
    composed = resolve(spec, overrides)
    validate(composed.opt, composed)
    if "features" not in composed.opt:
        from crslab_mscrs.config_schema import check_values  # value types and ranges

        check_values(composed.opt, source=composed.chain[-1])
    return composed.opt


def load_config(path, overrides: Optional[Iterable[str]] = None) -> dict:
    """Read, compose, override and validate a config file; returns the plain option dict."""
    return compose(path, overrides)


# ----------------------------------------------------------------------------- validation
def _suggest(key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _where(composed, key: str) -> str:
    if isinstance(composed, ComposedConfig):
        chain = f" [config chain: {composed.chain_text()}]" if len(composed.chain) > 1 else ""
        return f"{composed.source(key)}{chain}"
    return str(composed)


def validate(opt: dict, source: Union[str, ComposedConfig] = "<config>") -> None:
    """Raise :class:`ConfigError` for missing required keys or keys no component reads.

    ``source`` is a :class:`ComposedConfig` (errors name the file that set the key and the
    chain) or a plain label.
    """
    if "features" in opt:
        return _validate_features(opt, source)
    for required in ("dataset", "tokenize"):
        if opt.get(required) is None:
            raise ConfigError(f"{_where(source, required)}: missing required key '{required}'")
    model = opt.get("model")
    if model is None:
        return  # CRSLab's rec_model/conv_model combinations: not validated further
    if model not in MODEL_KEYS:
        raise ConfigError(f"{_where(source, 'model')}: model '{model}' declares no config keys; known models: "
                          f"{', '.join(sorted(MODEL_KEYS))}")
    known = set(COMMON_KEYS) | MODEL_KEYS[model]
    for key, value in opt.items():
        if key not in known:
            raise ConfigError(f"{_where(source, key)}: unknown key '{key}' for model {model}{_suggest(key, known)}")
        if key in STAGE_SECTIONS and isinstance(value, dict):
            for sub in value:
                if sub not in STAGE_KEYS:
                    raise ConfigError(f"{_where(source, f'{key}.{sub}')}: unknown key '{key}.{sub}'"
                                      f"{_suggest(sub, STAGE_KEYS)}")


def _validate_features(opt: dict, source) -> None:
    """Every key of a features config must exist in ``features/base.yaml``."""
    for key in opt:
        if key not in FEATURES_TOP_KEYS:
            raise ConfigError(f"{_where(source, key)}: unknown key '{key}' in a features config"
                              f"{_suggest(key, FEATURES_TOP_KEYS)}")
    base = read_yaml(CONFIG_ROOT / f"{FEATURES_BASE}.yaml")["features"]
    _check_tree(opt.get("features") or {}, base, "features", source)


def _check_tree(tree: dict, known: dict, prefix: str, source) -> None:
    for key, value in tree.items():
        dotted = f"{prefix}.{key}"
        if key not in known:
            raise ConfigError(f"{_where(source, dotted)}: unknown key '{dotted}'{_suggest(key, known)}")
        if isinstance(value, dict) and isinstance(known[key], dict) and known[key]:
            _check_tree(value, known[key], dotted, source)


# ----------------------------------------------------------------------------- overrides
def parse_override(text: str):
    """``a.b=1`` -> (['a', 'b'], 1); the value is parsed as YAML (numbers, bools, lists)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value or section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"override '{text}': the value is not valid YAML ({getattr(err, 'problem', err)})") from None
    if not all(part.strip() for part in key.split(".")):
        raise ConfigError(f"override '{text}': empty key name (use key=value or section.key=value)")
    if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
        try:
            value = float(value)
        except ValueError:
            pass
    return key.strip().split("."), value


def effective_overrides(overrides: Iterable[str]) -> List[str]:
    """``key=value`` overrides as they act: the last one of each key wins, at its last place.

    ``['rec.epoch=1', 'lr=2', 'rec.epoch=3']`` -> ``['lr=2', 'rec.epoch=3']``.
    """
    last: Dict[str, str] = {}
    for text in overrides:
        key = text.split("=", 1)[0].strip()
        last.pop(key, None)
        last[key] = text
    return list(last.values())


def apply_overrides(opt: dict, overrides: Optional[Iterable[str]],
                    sources: Optional[Dict[str, str]] = None) -> dict:
    """Set ``key=value`` / ``section.key=value`` in ``opt`` (deprecated stage keys renamed)."""
    for text in overrides or ():
        keys, value = parse_override(text)
        if len(keys) == 2 and keys[0] in STAGE_SECTIONS and keys[1] in DEPRECATED_STAGE_KEYS:
            _note(f"override '{text}': '{keys[1]}' is deprecated, read as '{DEPRECATED_STAGE_KEYS[keys[1]]}'")
            keys = [keys[0], DEPRECATED_STAGE_KEYS[keys[1]]]
        node = opt
        for part in keys[:-1]:
            if node.get(part) is None:  # absent or a null section (e.g. lr_scheduler: null)
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise ConfigError(f"override '{text}': '{part}' is not a section")
        node[keys[-1]] = value
        if sources is not None:
            _record(sources, ".".join(keys), value, OVERRIDE_SOURCE)
    return opt
