"""Every config key the MSCRS / UniCRS system and its dataloader read.

The ONE place that reads the option dict (CRSLab's ``Config`` or a plain dict) for
:mod:`crslab_mscrs.training` and :mod:`crslab_mscrs.batches`: the other modules get frozen
dataclasses. Defaults are not written here: a key an option dict leaves out takes its value
from ``crslab_mscrs/configs/mscrs/base.yaml`` (every key, its default, its meaning; composed
configs always hold them all). More on the keys: ``docs/model.md`` ("Training stages").

- :class:`RunSettings`: run-wide keys (seed, stages, run folder, selection metric, outputs);
- :class:`StageSettings`: one stage section (``pretrain:`` / ``rec:`` / ``conv:``), built
  when the stage starts, so a bad value fails the run that needs it, naming ``stage.key``;
- :class:`GenerationSettings`: decoding keys (read when a generation pass starts);
- :class:`DemonstrationSettings`: retrieved demonstrations (option ``use_demonstrations``);
- :class:`BatchSettings`: what the dataloader reads (lengths, placeholder, text source).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

from crslab_mscrs.config import DEPRECATED_STAGE_KEYS  # old stage key -> its new name

STAGES = ("pretrain", "rec", "conv")
DIALOGUE_TEXT_MODES = ("dataset", "ids")
"""Config key ``dialogue_text``: ``dataset`` (original words from the split files, with
fallback to ids) or ``ids`` (CRSLab's word ids, detokenised: the old behaviour)."""


SYSTEM_KEYS = frozenset({
    "stages", "run_name", "resume", "bf16", "rec_select_metric", "ranking_depth", "interact_top_k",  # RunSettings
    "allow_untrained", "cpu_malloc_mmap_threshold",                                                  # RunSettings
    "max_new_tokens", "num_beams", "do_sample", "top_p", "no_repeat_ngram_size",                    # GenerationSettings
    "n_demonstrations", "demonstration_max_length", "demonstration_context_turns",                  # DemonstrationSettings
})
"""Top-level keys read here for the system (besides CRSLab's common ones: seed, save_dir, ...)."""
DATALOADER_KEYS = frozenset({
    "entity_max_length", "context_max_length", "prompt_max_length", "response_max_length",  # EncodingLimits
    "movie_placeholder", "item_names_file", "dialogue_text",                                 # BatchSettings
})
"""Top-level keys read here for the dataloader (``lm``, ``text_encoder``: model keys)."""


FAMILY_BASE = "mscrs/base"
"""``crslab_mscrs/configs/mscrs/base.yaml``: every key below, its default and its meaning. The
ONE place of the defaults: composed configs always hold every key; a partial option dict (a
test, a notebook) gets the base's value for what it leaves out."""


def _default(key: str, stage: Optional[str] = None):
    from crslab_mscrs.config import base_defaults

    base = base_defaults(FAMILY_BASE)
    return (base.get(stage) or {}).get(key) if stage else base.get(key)


def _get(opt, key: str):
    """``opt[key]`` for CRSLab's ``Config`` (``[]`` gives None for a missing key) and dicts;
    absent or null -> the family base's default (which may itself be null)."""
    value = opt.get(key) if hasattr(opt, "get") else None
    return _default(key) if value is None else value


def _given(opt, key: str):
    """``opt[key]`` with no default (None when absent)."""
    return opt.get(key) if hasattr(opt, "get") else None


def _stage_get(section: Mapping, stage: str, key: str):
    """``<stage>.<key>``; absent or null -> the base's ``<stage>.<key>`` (``pretrain``/``rec``/``conv``)."""
    value = section.get(key)
    return _default(key, stage) if value is None else value


def _positive_minutes(section: Mapping, stage: str, key: str) -> Optional[float]:
    value = section.get(key) if key in section else _default(key, stage)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
        raise ValueError(f"config key '{stage}.{key}' must be a positive number of minutes or null, got {value!r}")
    return value


@dataclass(frozen=True)
class OptimizerSettings:
    """``<stage>.optimizer``: ``{name: AdamW, lr, weight_decay, ...}`` (other keys go to AdamW)."""

    name: str
    lr: float
    weight_decay: float
    extra: Tuple[Tuple[str, Any], ...] = ()

    @classmethod
    def from_section(cls, value: Optional[Mapping], stage: str = "rec") -> "OptimizerSettings":
        """Keys left out of ``<stage>.optimizer`` take the base's ``<stage>.optimizer`` values."""
        options = {**(_default("optimizer", stage) or {}), **dict(value or {})}
        name = options.pop("name")
        lr = float(options.pop("lr"))
        weight_decay = float(options.pop("weight_decay"))
        extra = tuple(sorted((k, float(v) if isinstance(v, str) else v) for k, v in options.items()))
        return cls(name, lr, weight_decay, extra)


@dataclass(frozen=True)
class StageSettings:
    """One stage section (``pretrain:`` / ``rec:`` / ``conv:``)."""

    name: str
    epochs: int
    batch_size: int
    eval_batch_size: int
    gradient_accumulation_steps: int
    gradient_clip: float                   # <= 0: no clipping
    max_batches_per_epoch: Optional[int]   # at most this many training batches per epoch
    time_limit_min: Optional[float]        # the stage ends after the batch that passes it
    checkpoint_every_min: Optional[float]  # mid-epoch last.pth interval
    validate: bool                         # false: no valid pass, the last epoch is chosen
    warmup_steps: int
    optimizer: OptimizerSettings

    @classmethod
    def from_opt(cls, opt, stage: str) -> "StageSettings":
        section = _given(opt, stage)  # a stage that runs must be configured, never defaulted whole
        if not isinstance(section, Mapping):
            raise KeyError(f"config section '{stage}:' is missing (needed because stages lists '{stage}')")
        for key in ("epoch", "batch_size"):
            if key not in section:
                raise KeyError(f"config key '{stage}.{key}' is missing")
        max_batches = section.get("max_batches_per_epoch")
        for old, new in DEPRECATED_STAGE_KEYS.items():
            if section.get(old) is not None:
                if max_batches is not None:
                    raise ValueError(f"config keys '{stage}.{old}' and '{stage}.{new}' are both set: keep '{new}'")
                warnings.warn(f"config key '{stage}.{old}' is deprecated: it means training batches per "
                              f"epoch, call it '{stage}.{new}'", FutureWarning, stacklevel=2)
                max_batches = section[old]
        validate = _stage_get(section, stage, "validate")
        if not isinstance(validate, bool):
            raise ValueError(f"config key '{stage}.validate' must be true or false, got {validate!r}")
        batch_size = int(section["batch_size"])
        return cls(name=stage, epochs=int(section["epoch"]), batch_size=batch_size,
                   eval_batch_size=int(_stage_get(section, stage, "eval_batch_size") or batch_size),
                   gradient_accumulation_steps=max(1, int(_stage_get(section, stage, "gradient_accumulation_steps"))),
                   gradient_clip=float(_stage_get(section, stage, "gradient_clip")),
                   max_batches_per_epoch=int(max_batches) if max_batches else None,
                   time_limit_min=_positive_minutes(section, stage, "time_limit_min"),
                   checkpoint_every_min=_positive_minutes(section, stage, "checkpoint_every_min"),
                   validate=validate, warmup_steps=int(_stage_get(section, stage, "warmup_steps")),
                   optimizer=OptimizerSettings.from_section(section.get("optimizer"), stage))


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding keys of test generation and ``interact``."""

    max_new_tokens: int
    num_beams: int
    do_sample: bool
    top_p: Optional[float]
    no_repeat_ngram_size: int

    @classmethod
    def from_opt(cls, opt) -> "GenerationSettings":
        return cls(int(_get(opt, "max_new_tokens")), int(_get(opt, "num_beams")), bool(_get(opt, "do_sample")),
                   _get(opt, "top_p"), int(_get(opt, "no_repeat_ngram_size")))

    def as_kwargs(self) -> Dict[str, Any]:
        """Keyword arguments of ``PromptCRS.generate``."""
        return {"max_new_tokens": self.max_new_tokens, "num_beams": self.num_beams, "do_sample": self.do_sample,
                "top_p": self.top_p, "no_repeat_ngram_size": self.no_repeat_ngram_size}


@dataclass(frozen=True)
class DemonstrationSettings:
    """Retrieved demonstrations (MSCRS section 3.6; ``use_demonstrations``)."""

    enabled: bool
    k: int
    max_length: int
    context_turns: int

    @classmethod
    def from_opt(cls, opt) -> "DemonstrationSettings":
        return cls(bool(_get(opt, "use_demonstrations")), int(_get(opt, "n_demonstrations")),
                   int(_get(opt, "demonstration_max_length")), int(_get(opt, "demonstration_context_turns")))


@dataclass(frozen=True)
class EncodingLimits:
    """Lengths in tokens (config keys of the same names)."""

    context_max_length: int   # LM tokens of the dialogue context (incl. the reply prompt)
    prompt_max_length: int    # text-encoder tokens of the context (incl. [CLS]/[SEP])
    response_max_length: int  # LM tokens of a response (incl. the final eos)
    entity_max_length: int    # most recent context entities

    @classmethod
    def from_opt(cls, opt) -> "EncodingLimits":
        return cls(*(int(_get(opt, name)) for name in
                     ("context_max_length", "prompt_max_length", "response_max_length", "entity_max_length")))


@dataclass(frozen=True)
class BatchSettings:
    """What :class:`~crslab_mscrs.batches.dataloader.MSCRSDataLoader` reads."""

    limits: EncodingLimits
    placeholder: str
    dialogue_text: str
    item_names_file: Optional[str] = None   # explicit ``item_names.json`` (must exist)
    dataset: Optional[str] = None
    tokenize: str = "nltk"
    lm: Optional[str] = None
    lm_gguf_file: Optional[str] = None
    text_encoder: Optional[str] = None

    @classmethod
    def from_opt(cls, opt) -> "BatchSettings":
        dialogue_text = str(_get(opt, "dialogue_text"))
        if dialogue_text not in DIALOGUE_TEXT_MODES:
            raise ValueError(f"config key 'dialogue_text' must be one of {DIALOGUE_TEXT_MODES}, "
                             f"got {dialogue_text!r}")
        tokenize = _get(opt, "tokenize")
        dataset = _get(opt, "dataset")
        return cls(limits=EncodingLimits.from_opt(opt), placeholder=_get(opt, "movie_placeholder"),
                   dialogue_text=dialogue_text, item_names_file=_get(opt, "item_names_file") or None,
                   dataset=str(dataset) if dataset else None,
                   tokenize=tokenize if isinstance(tokenize, str) and tokenize else "nltk",
                   # the frozen models are never defaulted: the model refuses to start without them
                   lm=_given(opt, "lm"), lm_gguf_file=_given(opt, "lm_gguf_file"),
                   text_encoder=_given(opt, "text_encoder"))

    def dataset_folder(self) -> Optional[Path]:
        """``<data_root>/dataset/<dataset>/<tokenize>``, or None without a dataset."""
        if not self.dataset:
            return None
        from crslab_mscrs.paths import dataset_dir

        return dataset_dir(self.dataset, self.tokenize)

    def item_names_path(self) -> Optional[Path]:
        """``item_names_file`` (must exist), else the dataset folder's ``item_names.json`` when it exists."""
        from crslab_mscrs.data.item_names import ITEM_NAMES_FILE

        if self.item_names_file:
            path = Path(self.item_names_file)
            if not path.is_file():
                raise FileNotFoundError(f"config key 'item_names_file': {path} does not exist")
            return path
        try:
            folder = self.dataset_folder()
        except Exception:  # pragma: no cover - paths not configured
            return None
        path = folder / ITEM_NAMES_FILE if folder is not None else None
        return path if path is not None and path.is_file() else None


@dataclass(frozen=True)
class RunSettings:
    """Run-wide keys of the system."""

    model_name: Optional[str]
    dataset: Optional[str]
    seed: int
    stages: Tuple[str, ...]
    run_dir: Path
    resume: bool
    bf16: bool
    rec_select_metric: str           # per-turn recall@K (ours); recall@K_mention per mention; hit@K CRSLab's
    ranking_depth: int
    placeholder: str
    interact_top_k: int
    allow_untrained: bool            # interactive mode may chat without conv_best.pth
    cpu_malloc_mmap_threshold: Optional[int]  # bytes; CPU runs set glibc's mmap threshold (crslab_mscrs.host_memory)
    rankings_out: Optional[str]
    metrics_out: Optional[str]
    demonstrations: DemonstrationSettings

    @classmethod
    def from_opt(cls, opt) -> "RunSettings":
        from crslab_mscrs.training import run_folder

        seed = int(_get(opt, "seed"))
        stages = tuple(_get(opt, "stages"))
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise ValueError(f"config key 'stages': unknown stage(s) {unknown}; use a list of {list(STAGES)}")
        return cls(model_name=_get(opt, "model_name"), dataset=_get(opt, "dataset"), seed=seed, stages=stages,
                   run_dir=run_folder.run_dir(opt, seed), resume=bool(_get(opt, "resume")),
                   bf16=bool(_get(opt, "bf16")),
                   rec_select_metric=str(_get(opt, "rec_select_metric")),
                   ranking_depth=int(_get(opt, "ranking_depth")),
                   placeholder=_get(opt, "movie_placeholder"),
                   interact_top_k=int(_get(opt, "interact_top_k")),
                   allow_untrained=bool(_get(opt, "allow_untrained")),
                   cpu_malloc_mmap_threshold=int(_get(opt, "cpu_malloc_mmap_threshold") or 0) or None,
                   rankings_out=_get(opt, "rankings_out") or None, metrics_out=_get(opt, "metrics_out") or None,
                   demonstrations=DemonstrationSettings.from_opt(opt))


def generation_inputs(opt) -> Dict[str, str]:
    """The keys that shape generation inputs (lengths, demonstrations, model specs), as
    strings: part of the generation journal's key."""
    options = getattr(opt, "opt", opt)  # CRSLab's Config keeps its dict in .opt
    return {k: str(v) for k, v in sorted(options.items())
            if k.endswith("_max_length") or "demonstration" in k or k in ("lm", "text_encoder")}
