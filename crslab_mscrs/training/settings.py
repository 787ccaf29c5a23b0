"""Every config key the MSCRS / UniCRS system and its dataloader read, with its default.

The ONE place that reads the option dict (CRSLab's ``Config`` or a plain dict) for
:mod:`crslab_mscrs.training` and :mod:`crslab_mscrs.batches`: the other modules get frozen
dataclasses, so a default exists once, here. Keys and their meaning: ``docs/model.md``
("Training stages", "Config keys") and the YAML files under ``config/``.

- :class:`RunSettings`: run-wide keys (seed, stages, run folder, selection metric, outputs);
- :class:`StageSettings`: one stage section (``pretrain:`` / ``rec:`` / ``conv:``), built
  when the stage starts, so a bad value fails the run that needs it, naming ``stage.key``;
- :class:`GenerationSettings`: decoding keys (read when a generation pass starts);
- :class:`DemonstrationSettings`: retrieved demonstrations (option ``use_demonstrations``);
- :class:`BatchSettings`: what the dataloader reads (lengths, placeholder, text source).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

from crslab_mscrs.batches.movie_mentions import DEFAULT_PLACEHOLDER
from crslab_mscrs.config import DEPRECATED_STAGE_KEYS  # old stage key -> its new name

STAGES = ("pretrain", "rec", "conv")
DIALOGUE_TEXT_MODES = ("dataset", "ids")
"""Config key ``dialogue_text``: ``dataset`` (original words from the split files, with
fallback to ids) or ``ids`` (CRSLab's word ids, detokenised: the old behaviour)."""


SYSTEM_KEYS = frozenset({
    "stages", "run_name", "resume", "bf16", "rec_select_metric", "ranking_depth", "interact_top_k",  # RunSettings
    "max_new_tokens", "num_beams", "do_sample", "top_p", "no_repeat_ngram_size",                    # GenerationSettings
    "n_demonstrations", "demonstration_max_length", "demonstration_context_turns",                  # DemonstrationSettings
})
"""Top-level keys read here for the system (besides CRSLab's common ones: seed, save_dir, ...)."""
DATALOADER_KEYS = frozenset({
    "entity_max_length", "context_max_length", "prompt_max_length", "response_max_length",  # EncodingLimits
    "movie_placeholder", "item_names_file", "dialogue_text",                                 # BatchSettings
})
"""Top-level keys read here for the dataloader (``lm``, ``text_encoder``: model keys)."""


def _get(opt, key: str, default=None):
    """``opt.get`` for CRSLab's ``Config`` (``[]`` gives None for a missing key) and dicts."""
    value = opt.get(key, default) if hasattr(opt, "get") else default
    return default if value is None else value


def _positive_minutes(section: Mapping, stage: str, key: str) -> Optional[float]:
    value = section.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
        raise ValueError(f"config key '{stage}.{key}' must be a positive number of minutes or null, got {value!r}")
    return value


@dataclass(frozen=True)
class OptimizerSettings:
    """``<stage>.optimizer``: ``{name: AdamW, lr, weight_decay, ...}`` (other keys go to AdamW)."""

    name: str = "AdamW"
    lr: float = 1e-4
    weight_decay: float = 0.0
    extra: Tuple[Tuple[str, Any], ...] = ()

    @classmethod
    def from_section(cls, value: Optional[Mapping]) -> "OptimizerSettings":
        options = dict(value or {})
        name = options.pop("name", cls.name)
        lr = float(options.pop("lr", cls.lr))
        weight_decay = float(options.pop("weight_decay", cls.weight_decay))
        extra = tuple(sorted((k, float(v) if isinstance(v, str) else v) for k, v in options.items()))
        return cls(name, lr, weight_decay, extra)


@dataclass(frozen=True)
class StageSettings:
    """One stage section (``pretrain:`` / ``rec:`` / ``conv:``)."""

    name: str
    epochs: int
    batch_size: int
    eval_batch_size: int
    gradient_accumulation_steps: int = 1
    gradient_clip: float = -1.0            # <= 0: no clipping
    max_batches_per_epoch: Optional[int] = None   # at most this many training batches per epoch
    time_limit_min: Optional[float] = None        # the stage ends after the batch that passes it
    checkpoint_every_min: Optional[float] = None  # mid-epoch last.pth interval
    validate: bool = True                  # false: no valid pass, the last epoch is chosen
    warmup_steps: int = 0
    optimizer: OptimizerSettings = field(default_factory=OptimizerSettings)

    @classmethod
    def from_opt(cls, opt, stage: str) -> "StageSettings":
        section = _get(opt, stage)
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
        validate = section.get("validate", True)
        if not isinstance(validate, bool):
            raise ValueError(f"config key '{stage}.validate' must be true or false, got {validate!r}")
        batch_size = int(section["batch_size"])
        return cls(name=stage, epochs=int(section["epoch"]), batch_size=batch_size,
                   eval_batch_size=int(section.get("eval_batch_size") or batch_size),
                   gradient_accumulation_steps=max(1, int(section.get("gradient_accumulation_steps") or 1)),
                   gradient_clip=float(section.get("gradient_clip") or -1),
                   max_batches_per_epoch=int(max_batches) if max_batches else None,
                   time_limit_min=_positive_minutes(section, stage, "time_limit_min"),
                   checkpoint_every_min=_positive_minutes(section, stage, "checkpoint_every_min"),
                   validate=validate, warmup_steps=int(section.get("warmup_steps") or 0),
                   optimizer=OptimizerSettings.from_section(section.get("optimizer")))


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding keys of test generation and ``interact``."""

    max_new_tokens: int = 50
    num_beams: int = 1
    do_sample: bool = False
    top_p: Optional[float] = None
    no_repeat_ngram_size: int = 3

    @classmethod
    def from_opt(cls, opt) -> "GenerationSettings":
        return cls(int(_get(opt, "max_new_tokens", cls.max_new_tokens)), int(_get(opt, "num_beams", cls.num_beams)),
                   bool(_get(opt, "do_sample", cls.do_sample)), _get(opt, "top_p"),
                   int(_get(opt, "no_repeat_ngram_size", cls.no_repeat_ngram_size)))

    def as_kwargs(self) -> Dict[str, Any]:
        """Keyword arguments of ``PromptCRS.generate``."""
        return {"max_new_tokens": self.max_new_tokens, "num_beams": self.num_beams, "do_sample": self.do_sample,
                "top_p": self.top_p, "no_repeat_ngram_size": self.no_repeat_ngram_size}


@dataclass(frozen=True)
class DemonstrationSettings:
    """Retrieved demonstrations (MSCRS section 3.6; ``use_demonstrations``)."""

    enabled: bool = False
    k: int = 3
    max_length: int = 128
    context_turns: int = 2

    @classmethod
    def from_opt(cls, opt) -> "DemonstrationSettings":
        return cls(bool(_get(opt, "use_demonstrations", False)), int(_get(opt, "n_demonstrations", cls.k)),
                   int(_get(opt, "demonstration_max_length", cls.max_length)),
                   int(_get(opt, "demonstration_context_turns", cls.context_turns)))


@dataclass(frozen=True)
class EncodingLimits:
    """Lengths in tokens (config keys of the same names)."""

    context_max_length: int = 200   # LM tokens of the dialogue context (incl. the reply prompt)
    prompt_max_length: int = 200    # text-encoder tokens of the context (incl. [CLS]/[SEP])
    response_max_length: int = 183  # LM tokens of a response (incl. the final eos)
    entity_max_length: int = 32     # most recent context entities

    @classmethod
    def from_opt(cls, opt) -> "EncodingLimits":
        return cls(*(int(_get(opt, name, default)) for name, default in
                     (("context_max_length", cls.context_max_length), ("prompt_max_length", cls.prompt_max_length),
                      ("response_max_length", cls.response_max_length),
                      ("entity_max_length", cls.entity_max_length))))


@dataclass(frozen=True)
class BatchSettings:
    """What :class:`~crslab_mscrs.batches.dataloader.MSCRSDataLoader` reads."""

    limits: EncodingLimits = field(default_factory=EncodingLimits)
    placeholder: str = DEFAULT_PLACEHOLDER
    dialogue_text: str = "dataset"
    item_names_file: Optional[str] = None   # explicit ``item_names.json`` (must exist)
    dataset: Optional[str] = None
    tokenize: str = "nltk"
    lm: Optional[str] = None
    lm_gguf_file: Optional[str] = None
    text_encoder: Optional[str] = None

    @classmethod
    def from_opt(cls, opt) -> "BatchSettings":
        dialogue_text = str(_get(opt, "dialogue_text", cls.dialogue_text))
        if dialogue_text not in DIALOGUE_TEXT_MODES:
            raise ValueError(f"config key 'dialogue_text' must be one of {DIALOGUE_TEXT_MODES}, "
                             f"got {dialogue_text!r}")
        tokenize = _get(opt, "tokenize")
        dataset = _get(opt, "dataset")
        return cls(limits=EncodingLimits.from_opt(opt), placeholder=_get(opt, "movie_placeholder", DEFAULT_PLACEHOLDER),
                   dialogue_text=dialogue_text, item_names_file=_get(opt, "item_names_file") or None,
                   dataset=str(dataset) if dataset else None,
                   tokenize=tokenize if isinstance(tokenize, str) and tokenize else "nltk",
                   lm=_get(opt, "lm"), lm_gguf_file=_get(opt, "lm_gguf_file"), text_encoder=_get(opt, "text_encoder"))

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
    seed: int = 0
    stages: Tuple[str, ...] = STAGES
    run_dir: Path = Path("save")
    resume: bool = False
    bf16: bool = True
    rec_select_metric: str = "recall@50"   # per-turn (ours); recall@50_mention per mention; hit@50 CRSLab's
    ranking_depth: int = 100
    placeholder: str = DEFAULT_PLACEHOLDER
    interact_top_k: int = 3
    rankings_out: Optional[str] = None
    metrics_out: Optional[str] = None
    demonstrations: DemonstrationSettings = field(default_factory=DemonstrationSettings)

    @classmethod
    def from_opt(cls, opt) -> "RunSettings":
        from crslab_mscrs.training import run_folder

        seed = int(_get(opt, "seed", 0))
        stages = tuple(_get(opt, "stages", STAGES))
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise ValueError(f"config key 'stages': unknown stage(s) {unknown}; use a list of {list(STAGES)}")
        return cls(model_name=_get(opt, "model_name"), dataset=_get(opt, "dataset"), seed=seed, stages=stages,
                   run_dir=run_folder.run_dir(opt, seed), resume=bool(_get(opt, "resume", False)),
                   bf16=bool(_get(opt, "bf16", True)),
                   rec_select_metric=str(_get(opt, "rec_select_metric", cls.rec_select_metric)),
                   ranking_depth=int(_get(opt, "ranking_depth", cls.ranking_depth)),
                   placeholder=_get(opt, "movie_placeholder", DEFAULT_PLACEHOLDER),
                   interact_top_k=int(_get(opt, "interact_top_k", cls.interact_top_k)),
                   rankings_out=_get(opt, "rankings_out") or None, metrics_out=_get(opt, "metrics_out") or None,
                   demonstrations=DemonstrationSettings.from_opt(opt))


def generation_inputs(opt) -> Dict[str, str]:
    """The keys that shape generation inputs (lengths, demonstrations, model specs), as
    strings: part of the generation journal's key."""
    options = getattr(opt, "opt", opt)  # CRSLab's Config keeps its dict in .opt
    return {k: str(v) for k, v in sorted(options.items())
            if k.endswith("_max_length") or "demonstration" in k or k in ("lm", "text_encoder")}
