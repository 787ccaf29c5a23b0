"""Loading and validating CRSLab-style YAML configs.

CRSLab reads its YAML into a plain dict and silently ignores keys it does not know, so a
typo such as ``lerning_rate`` trains with the default and nobody notices. We validate
every top-level key against the keys the chosen model, its dataloader and system read,
and every key of the per-stage sections (``pretrain``, ``rec``, ``conv``), and raise a
:class:`ConfigError` that names the file, the key and the closest known key.

Precedence of values (highest first): ``--set key=value`` command-line overrides, the
YAML file, the defaults of the model code.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import yaml

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
    "max_batches_per_epoch", "max_steps", "time_limit_min", "checkpoint_every_min", "log_every", "validate",
}
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


class ConfigError(ValueError):
    """A config file is malformed or holds a key nobody reads."""


def register_model_keys(model_name: str, keys: Iterable[str]) -> None:
    """Let a plugin model declare the config keys it reads (used by validation)."""
    MODEL_KEYS[model_name] = set(keys) | set(STAGE_SECTIONS)


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
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def _suggest(key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def validate(opt: dict, source: str = "<config>") -> None:
    """Raise :class:`ConfigError` for missing required keys or keys no component reads."""
    for required in ("dataset", "tokenize"):
        if required not in opt:
            raise ConfigError(f"{source}: missing required key '{required}'")
    model = opt.get("model")
    if model is None:
        return  # CRSLab's rec_model/conv_model combinations: not validated further
    if model not in MODEL_KEYS:
        raise ConfigError(f"{source}: model '{model}' declares no config keys; known models: "
                          f"{', '.join(sorted(MODEL_KEYS))}")
    known = set(COMMON_KEYS) | MODEL_KEYS[model]
    for key, value in opt.items():
        if key not in known:
            raise ConfigError(f"{source}: unknown key '{key}' for model {model}{_suggest(key, known)}")
        if key in STAGE_SECTIONS and isinstance(value, dict):
            for sub in value:
                if sub not in STAGE_KEYS:
                    raise ConfigError(f"{source}: unknown key '{key}.{sub}'{_suggest(sub, STAGE_KEYS)}")


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


def apply_overrides(opt: dict, overrides: Optional[Iterable[str]]) -> dict:
    for text in overrides or ():
        keys, value = parse_override(text)
        node = opt
        for part in keys[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{text}': '{part}' is not a section")
        node[keys[-1]] = value
    return opt


def load_config(path, overrides: Optional[Iterable[str]] = None) -> dict:
    """Read, override and validate a config file; returns the plain option dict."""
    opt = apply_overrides(read_yaml(path), overrides)
    validate(opt, source=str(path))
    from crslab_mscrs.config_schema import check_values  # value types and ranges (issue 16)
    check_values(opt, source=str(path))
    return opt
