"""Types and ranges of config values, checked before any work starts.

:mod:`crslab_mscrs.config` checks key NAMES; this module checks VALUES, so that
``rec.epoch: "five"``, ``batch_size: 0``, a negative ``lr``, ``ranking_depth: -5`` or
``rec.epoch: 0`` (which would train nothing and still report metrics) stop the run at once
with a :class:`~crslab_mscrs.config.ConfigError` naming the key, instead of a traceback
when a stage reaches them (often after pre-training). Covered:

* the common keys (:data:`COMMON`), the MSCRS / UniCRS keys (:data:`MSCRS`, the keys of
  :mod:`crslab_mscrs.training.config_keys`), the KBRD / KGSF keys (:data:`TRANSFORMER`);
* the stage sections ``pretrain`` / ``rec`` / ``conv`` / ``policy`` (:data:`STAGE`; the
  batch cap is accepted as ``max_steps`` and as ``max_batches_per_epoch``);
* each stage's ``optimizer`` and ``lr_scheduler``: the ``name`` must be an optimizer /
  scheduler the system builds, every other key an argument of that class (so
  ``optimizer.lerning_rate`` is an error suggesting ``lr``), ``lr`` > 0, ``weight_decay`` >= 0.

Keys with no entry here (declared by other plugins) keep only the name check. Numbers
written as strings are errors: PyYAML reads ``1e-4`` as the STRING ``"1e-4"`` (write
``1.0e-4`` or ``!!float 1e-4``). Users' view: docs/model.md, "Config keys".
"""
from __future__ import annotations

import difflib
import inspect
import re
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple

#: spellings users type for an optimizer argument -> the argument
_ALIASES = {"learning_rate": "lr", "lerning_rate": "lr", "learningrate": "lr", "wd": "weight_decay"}


@dataclass(frozen=True)
class Spec:
    """One key's allowed values: ``kind`` (int, float, bool, bool_or_auto, str, list, dict), optional bounds
    (``low_open`` makes the lower bound exclusive), ``choices``, ``pattern`` and ``nullable``."""

    kind: str
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    choices: Optional[Tuple[str, ...]] = None
    pattern: Optional[str] = None
    nullable: bool = False

    def problem(self, value) -> Optional[str]:
        """Why ``value`` is not allowed (``None`` when it is)."""
        if value is None:
            return None if self.nullable else "must be set (null is not allowed)"
        expected = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
                    "list": "a list", "dict": "a mapping", "bool_or_auto": "true, false or auto"}[self.kind]
        if not _is_kind(value, self.kind):
            hint = ""
            if self.kind in ("int", "float") and isinstance(value, str) and _number_like(value):
                hint = " (YAML reads 1e-4 as a string: write 1.0e-4 or !!float 1e-4)"
            return f"must be {expected}, got {type(value).__name__} {value!r}{hint}"
        if self.choices is not None and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}, got {value!r}{_suggest(str(value), self.choices)}"
        if self.pattern is not None and not re.fullmatch(self.pattern, str(value)):
            return f"must have the form {self.pattern}, got {value!r}"
        if self.kind == "str" and not value.strip():
            return "must be a non-empty string"
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return f"must be {'>' if self.low_open else '>='} {_num(self.low)}, got {value!r}"
        if self.high is not None and value > self.high:
            return f"must be <= {_num(self.high)}, got {value!r}"
        return None


def _is_kind(value, kind: str) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bool_or_auto":
        return isinstance(value, bool) or value == "auto"
    return isinstance(value, {"bool": bool, "str": str, "list": list, "dict": dict}[kind])


def _number_like(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _suggest(key: str, known: Iterable[str]) -> str:
    known = sorted(known)
    if _ALIASES.get(key.lower()) in known:
        return f" (did you mean '{_ALIASES[key.lower()]}'?)"
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def INT(low=None, **kw) -> Spec:  # noqa: N802 - reads like a type in the tables below
    return Spec("int", low, **kw)


def FLOAT(low=None, **kw) -> Spec:  # noqa: N802
    return Spec("float", low, **kw)


BOOL, STR, OPT_STR = Spec("bool"), Spec("str"), Spec("str", nullable=True)
POSITIVE, OPT_POSITIVE = INT(1), INT(1, nullable=True)
PROBABILITY = FLOAT(0, high=1)

COMMON: Dict[str, Spec] = {
    "dataset": STR, "model": STR, "rec_model": STR, "conv_model": STR, "policy_model": STR,
    "data_root": OPT_STR, "save_dir": OPT_STR, "seed": INT(0, high=2 ** 32 - 1), "evaluator": STR,
    "embedding": OPT_STR, "log_name": OPT_STR, "model_file": OPT_STR, "scale": FLOAT(0, high=1, low_open=True),
    "gradient_clip": FLOAT(), "update_freq": POSITIVE, "rankings_out": OPT_STR, "metrics_out": OPT_STR,
    "stages": Spec("list", nullable=True),
}

TRANSFORMER: Dict[str, Spec] = {  # KBRD / KGSF (CRSLab)
    **{key: POSITIVE for key in ("context_truncate", "response_truncate", "entity_truncate", "word_truncate",
                                  "token_emb_dim", "kg_emb_dim", "num_bases", "n_heads", "n_layers", "ffn_size",
                                  "n_positions", "longest_label", "beam", "user_proj_dim")},
    **{key: FLOAT(0, high=1) for key in ("dropout", "attention_dropout", "relu_dropout")},
    **{key: BOOL for key in ("learn_positional_embeddings", "embeddings_scale", "embedding_scale", "reduction")},
}

MSCRS: Dict[str, Spec] = {  # MSCRS / UniCRS: crslab_mscrs.training.config_keys
    "lm": STR, "lm_gguf_file": OPT_STR, "lm_dtype": OPT_STR, "lm_activation_checkpointing": Spec("bool_or_auto"), "text_encoder": STR, "entity_dim": OPT_POSITIVE,
    "num_bases": POSITIVE, "use_cooccurrence_graph": BOOL, "use_text_graph": BOOL, "use_image_graph": BOOL,
    "lambda_text": FLOAT(0), "lambda_image": FLOAT(0), "fusion": Spec("str", choices=("sum", "mean", "authors")),
    "cooccurrence_input": Spec("str", choices=("e0", "embedding")), "cooccurrence_layers": POSITIVE,
    "graph_edge_weights": Spec("str", choices=("weighted", "unweighted"), nullable=True),
    "lightgcn_layers": INT(0), "features_dir": OPT_STR, "n_prefix_rec": POSITIVE, "n_prefix_conv": POSITIVE,
    "contrastive_weight": FLOAT(0), "contrastive_temperature": FLOAT(0, low_open=True), "use_demonstrations": BOOL,
    "entity_max_length": POSITIVE, "context_max_length": POSITIVE, "prompt_max_length": POSITIVE,
    "response_max_length": POSITIVE, "movie_placeholder": STR, "item_names_file": OPT_STR,
    "dialogue_text": Spec("str", choices=("dataset", "ids")),
    "run_name": OPT_STR, "resume": BOOL, "bf16": BOOL,
    # per-turn recall@K (ours), per-mention recall@K_mention, CRSLab's own hit@K / crslab_ndcg@K / crslab_mrr@K
    "rec_select_metric": Spec("str", pattern=r"(recall|mrr|ndcg)@(1|10|50)(_mention)?|hit@(1|10|50)|crslab_(mrr|ndcg)@(1|10|50)"),
    "ranking_depth": POSITIVE, "max_new_tokens": POSITIVE, "num_beams": POSITIVE, "do_sample": BOOL,
    "top_p": FLOAT(0, high=1, low_open=True, nullable=True), "no_repeat_ngram_size": INT(0),
    "interact_top_k": POSITIVE, "allow_untrained": BOOL, "cpu_malloc_mmap_threshold": INT(0, nullable=True), "n_demonstrations": POSITIVE, "demonstration_max_length": POSITIVE,
    "demonstration_context_turns": INT(0),
}

STAGE: Dict[str, Spec] = {  # pretrain: / rec: / conv: / policy:
    "epoch": POSITIVE, "batch_size": POSITIVE, "eval_batch_size": POSITIVE, "gradient_accumulation_steps": POSITIVE,
    "update_freq": POSITIVE, "gradient_clip": FLOAT(), "warmup_steps": INT(0),
    "max_steps": OPT_POSITIVE, "max_batches_per_epoch": OPT_POSITIVE,
    "time_limit_min": FLOAT(0, low_open=True, nullable=True),
    "checkpoint_every_min": FLOAT(0, low_open=True, nullable=True), "validate": BOOL, "log_every": POSITIVE,
    "early_stop": BOOL, "stop_mode": Spec("str", choices=("min", "max")), "impatience": POSITIVE,
    "optimizer": Spec("dict"), "lr_scheduler": Spec("dict", nullable=True),
}
STAGE_SECTIONS = ("pretrain", "rec", "conv", "policy")

#: values checked inside an optimizer section, whatever the optimizer
OPTIMIZER_VALUES: Dict[str, Spec] = {"name": STR, "lr": FLOAT(0, low_open=True), "weight_decay": FLOAT(0),
                                     "eps": FLOAT(0, low_open=True), "momentum": FLOAT(0)}
#: models whose system builds only torch's AdamW (crslab_mscrs.training.optim)
ADAMW_ONLY = ("MSCRS", "UniCRS")


def _optimizer_class(name: str, model: Optional[str]) -> Optional[Callable]:
    """The class CRSLab / our system builds for optimizer ``name`` (``None``: unknown name)."""
    import torch.optim

    if model in ADAMW_ONLY:
        return torch.optim.AdamW if name == "AdamW" else None
    if name == "Adafactor":
        try:
            from transformers.optimization import Adafactor
        except ImportError:  # pragma: no cover
            return None
        return Adafactor
    cls = getattr(torch.optim, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer) else None


def _optimizer_names(model: Optional[str]) -> List[str]:
    import torch.optim

    if model in ADAMW_ONLY:
        return ["AdamW"]
    return sorted([n for n, c in vars(torch.optim).items() if isinstance(c, type) and
                   issubclass(c, torch.optim.Optimizer) and c is not torch.optim.Optimizer] + ["Adafactor"])


def _scheduler_class(name: str) -> Optional[Callable]:
    from crslab.system.utils import lr_scheduler

    cls = getattr(lr_scheduler, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, lr_scheduler.LRScheduler) and \
        cls is not lr_scheduler.LRScheduler else None


def _scheduler_names() -> List[str]:
    from crslab.system.utils import lr_scheduler

    return sorted(n for n in vars(lr_scheduler) if n[0].isupper() and _scheduler_class(n) is not None)


def _arguments(cls: Callable) -> Tuple[set, set]:
    """(all keyword arguments, required ones) of ``cls.__init__`` after its first one
    (``params`` / ``optimizer``)."""
    params = list(inspect.signature(cls.__init__).parameters.values())[2:]
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    required = {p.name for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names, required


def value_problems(opt: Mapping) -> List[Tuple[str, str]]:
    """``[(dotted key, problem)]`` for every value of ``opt`` outside its type or range."""
    model = opt.get("model")
    tables = [COMMON, TRANSFORMER] if model in ("KBRD", "KGSF") else [COMMON, MSCRS] if model in ADAMW_ONLY \
        else [COMMON]
    specs = {key: spec for table in tables for key, spec in table.items()}
    problems = []
    for key, value in opt.items():
        if key == "tokenize":
            if not (isinstance(value, str) and value.strip()) and not (
                    isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
                problems.append((key, f"must be a tokenizer name such as nltk, got {value!r}"))
        elif key in STAGE_SECTIONS:
            problems += _stage_problems(key, value, model)
        elif key in specs:
            problem = specs[key].problem(value)
            if problem is None and key == "stages" and value is not None:
                problem = _stages_problem(value)
            if problem:
                problems.append((key, problem))
    return problems


def _stages_problem(stages: list) -> Optional[str]:
    if not stages:
        return "must list at least one stage"
    unknown = [s for s in stages if s not in STAGE_SECTIONS]
    return f"unknown stage(s) {unknown}; stages are {', '.join(STAGE_SECTIONS)}" if unknown else None


def _stage_problems(stage: str, section, model: Optional[str]) -> List[Tuple[str, str]]:
    if section is None:
        return []
    if not isinstance(section, dict):
        return [(stage, f"must be a mapping of stage settings, got {type(section).__name__} {section!r}")]
    problems = []
    for key, value in section.items():
        spec = STAGE.get(key)
        problem = spec.problem(value) if spec is not None else None
        if problem:
            problems.append((f"{stage}.{key}", problem))
        elif key == "optimizer":
            problems += _class_section_problems(f"{stage}.optimizer", value, "optimizer", model)
        elif key == "lr_scheduler" and value is not None:
            problems += _class_section_problems(f"{stage}.lr_scheduler", value, "lr_scheduler", model)
    return problems


def _class_section_problems(where: str, section: dict, what: str, model: Optional[str]) -> List[Tuple[str, str]]:
    """``optimizer: {name, ...}`` / ``lr_scheduler: {name, ...}``: the name and its arguments."""
    name = section.get("name")
    if model in ADAMW_ONLY and what == "optimizer" and name is None:
        name = "AdamW"  # crslab_mscrs.training.optim's default
    if not isinstance(name, str):
        return [(f"{where}.name", f"must be set to the {what} class name, got {name!r}")]
    cls = _optimizer_class(name, model) if what == "optimizer" else _scheduler_class(name)
    if cls is None:
        known = _optimizer_names(model) if what == "optimizer" else _scheduler_names()
        return [(f"{where}.name", f"names an unknown {what} {name!r}{' for ' + model if model else ''}; "
                                  f"choose from {', '.join(known)}{_suggest(name, known)}")]
    names, required = _arguments(cls)
    problems = []
    for key, value in section.items():
        if key == "name":
            continue
        if key not in names:
            problems.append((f"{where}.{key}", f"is not an argument of {name}{_suggest(key, names)}"))
        elif what == "optimizer" and key in OPTIMIZER_VALUES:
            problem = OPTIMIZER_VALUES[key].problem(value)
            if problem:
                problems.append((f"{where}.{key}", problem))
    if what == "lr_scheduler":  # CRSLab passes only the optimizer: the rest must be in the config
        missing = sorted(required - set(section))
        if missing:
            problems.append((where, f"lacks {', '.join(missing)}, which {name} requires"))
    return problems


def check_values(opt: Mapping, source: str = "<config>") -> None:
    """Raise :class:`~crslab_mscrs.config.ConfigError` naming the first key (and any others)
    whose value is outside its type or range."""
    problems = value_problems(opt)
    if problems:
        from crslab_mscrs.config import ConfigError

        lines = [f"{source}: config key '{key}' {problem}" for key, problem in problems]
        raise ConfigError("\n".join(lines))
