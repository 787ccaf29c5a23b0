"""PromptCRS: a frozen causal LM steered by knowledge/multimodal prompts (UniCRS, MSCRS).

One module for all stages (MSCRS, SIGIR 2025, sections 3.5-3.7; UniCRS, KDD 2022):

- :meth:`PromptCRS.entity_table`: fused multimodal entity table [n_entity, H] (compute ONCE per
  step and pass it to the task methods; they compute it themselves when not given).
- :meth:`recommend`: prefix (rec task prefix + entity-oriented prompt) + LEFT-padded context;
  score = hidden state at the last token . fused item table^T; CE loss over items.
- :meth:`pretrain`: same inputs, no task prefix (as UniCRS), CE over ALL entities.
- :meth:`converse`: token-oriented prompt + conv task prefix; LM loss on response tokens only
  (``labels`` -100 elsewhere; padding is ignored as well, bug 8).
- :meth:`generate`: greedy / beam / top-p decoding with no-repeat n-grams; the prefix is rebuilt
  for every call.
- optional (``use_demonstrations``): retrieved demonstrations as extra conversation prompt
  vectors (:mod:`crslab_mscrs.model.demonstrations`).

The LM and the text encoder are frozen (``requires_grad=False``) and kept in eval mode even
when the module trains (no dropout noise in frozen parts). Batch keys, shapes and padding:
:mod:`crslab_mscrs.batches.contract` (one ``TypedDict`` per task).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Dict, Mapping, Optional, Union

import torch
import torch.nn.functional as F
from loguru import logger
from torch import nn

from crslab_mscrs.model.activation_checkpointing import (enable_activation_checkpointing,
                                                         resolve_activation_checkpointing)
from crslab_mscrs.model.decoding import decode
from crslab_mscrs.model.demonstrations import DemonstrationEncoder
from crslab_mscrs.model.entity_encoder import MultimodalEntityEncoder
from crslab_mscrs.model.entity_rows import EntityRows, gather_rows, rows_read
from crslab_mscrs.model.graph_files import (GRAPH_FILES, check_entity_space, dataset_dir_of, read_graph_file,
                                           to_item_space)
from crslab_mscrs.model.loading import load_causal_lm, load_text_encoder
from crslab_mscrs.model.prefix_cache import LMGeometry, PrefixKeyValues, prefixed_lm_inputs
from crslab_mscrs.model.prompt_encoder import PromptEncoder
from crslab_mscrs.model.rgcn_kg_encoder import RGCNKGEncoder, kg_edges_to_tensors
from crslab_mscrs.model.row_index import position_index
from crslab_mscrs.model.semantic_graph_propagation import LightGCNPropagation

Batch = Mapping[str, torch.Tensor]


MODEL_BASE = "mscrs/base"  # crslab_mscrs/configs/mscrs/base.yaml: every model key, its default, its meaning


def option(opt: Mapping, key: str):
    """``opt[key]``; unset (absent or null) -> the default in ``mscrs/base.yaml`` (the ONE place
    of defaults: composed configs always hold the key, partial dicts in tests may not)."""
    value = opt.get(key) if hasattr(opt, "get") else None
    if value is None:
        from crslab_mscrs.config import base_defaults

        value = base_defaults(MODEL_BASE)[key]
    return value


@dataclass
class PromptCRSConfig:
    """Model hyper-parameters (flat keys of CRSLab's ``opt``; documented, with their defaults, in
    ``crslab_mscrs/configs/mscrs/base.yaml``)."""
    entity_dim: Optional[int]               # None: LM hidden // 2
    num_bases: int
    use_cooccurrence_graph: bool
    use_text_graph: bool
    use_image_graph: bool
    lambda_text: float
    lambda_image: float
    fusion: str                             # "sum" (paper) | "mean" | "authors": see MultimodalEntityEncoder
    lightgcn_layers: int
    cooccurrence_input: str                 # fusion authors: "e0" (INSPIRED code) | "embedding" (ReDial code)
    cooccurrence_layers: int                # fusion authors: K co-occurrence layers (authors: 3)
    graph_edge_weights: Optional[str]       # "weighted" | "unweighted"; None: unweighted for authors

    def edge_weights_used(self) -> bool:
        """Whether graph edge weights enter A (``graph_edge_weights``; unset: not under
        ``fusion: authors``, whose ``CustomGCNConv`` ignores them, and yes otherwise)."""
        choice = self.graph_edge_weights or ("unweighted" if self.fusion == "authors" else "weighted")
        return choice == "weighted"
    n_prefix_rec: int
    n_prefix_conv: int
    contrastive_weight: float
    contrastive_temperature: float
    use_demonstrations: bool                # retrieved demonstrations as extra conv prompt vectors
    lm_activation_checkpointing: Union[bool, str] = False  # recompute the frozen LM's layers in backward; "auto":
    # where the step would not fit otherwise (.activation_checkpointing.resolve_activation_checkpointing)

    @classmethod
    def from_opt(cls, opt: Mapping) -> "PromptCRSConfig":
        return cls(**{f.name: option(opt, f.name) for f in fields(cls)})

    def graphs_off(self) -> "PromptCRSConfig":
        """Copy with all semantic graphs switched off (= UniCRS)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(use_cooccurrence_graph=False, use_text_graph=False, use_image_graph=False)
        return PromptCRSConfig(**values)


@dataclass
class RecOutput:
    loss: Optional[torch.Tensor]
    item_scores: torch.Tensor                 # [B, n_items], column j = entity item_ids[j]
    entity_scores: Optional[torch.Tensor]     # [B, n_entity] (pretrain); None for rec (items only)
    contrastive_loss: Optional[torch.Tensor] = None


@dataclass
class ConvOutput:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor                      # [B, L, vocab] without labels; [N, vocab] (logit_mask) with labels
    contrastive_loss: Optional[torch.Tensor] = None
    logit_mask: Optional[torch.Tensor] = None  # [B, L] bool: positions whose logits are in `logits`


def training_step_shapes(opt: Mapping) -> list:
    """``(rows, LM positions)`` of the training steps of the stages ``opt`` runs (all three when it
    lists none): batch size x (context + prefix), plus the response for conversation."""
    context = int(option(opt, "context_max_length"))
    runs = (opt.get("stages") if hasattr(opt, "get") else None) or ("pretrain", "rec", "conv")
    shapes = []
    for stage, positions in (("pretrain", context + int(option(opt, "n_prefix_rec"))),
                             ("rec", context + int(option(opt, "n_prefix_rec"))),
                             ("conv", context + int(option(opt, "response_max_length")) + int(option(opt, "n_prefix_conv")))):
        section = opt.get(stage) if hasattr(opt, "get") else None
        if stage in runs and isinstance(section, Mapping) and section.get("batch_size"):
            shapes.append((int(section["batch_size"]), positions))
    return shapes


def build_entity_encoder(n_entity: int, entity_kg: Mapping, item_ids: torch.Tensor, lm_hidden: int,
                         config: PromptCRSConfig, graphs: Dict[str, Optional[dict]]) -> MultimodalEntityEncoder:
    """R-GCN over the KG + the switched-on semantic graphs (``graphs`` keyed like GRAPH_FILES)."""
    edge_index, edge_type, num_relations = kg_edges_to_tensors(entity_kg["edge"], n_entity)
    dim = config.entity_dim or lm_hidden // 2
    kg_encoder = RGCNKGEncoder(n_entity, dim, edge_index, edge_type, num_relations, config.num_bases)

    weighted = config.edge_weights_used()

    def propagation(key: str, item_space: bool) -> Optional[LightGCNPropagation]:
        graph = graphs.get(key)
        if not getattr(config, key) or graph is None:
            return None
        graph = check_entity_space(graph, n_entity)
        if item_space:
            graph = to_item_space(graph, item_ids)
            num_nodes = int(item_ids.numel())
        else:
            num_nodes = n_entity
        layers = config.cooccurrence_layers if config.fusion == "authors" and not item_space else config.lightgcn_layers
        return LightGCNPropagation(graph["edge_index"], num_nodes, graph["edge_weight"] if weighted else None, layers)

    return MultimodalEntityEncoder(
        kg_encoder, item_ids, lm_hidden,
        cooccurrence=propagation("use_cooccurrence_graph", item_space=False),
        text=propagation("use_text_graph", item_space=True),
        image=propagation("use_image_graph", item_space=True),
        lambda_text=config.lambda_text, lambda_image=config.lambda_image, fusion=config.fusion,
        cooccurrence_input=config.cooccurrence_input)


def load_semantic_graphs(config: PromptCRSConfig, features_dir: Path, dataset_dir=None,
                         item_ids=None) -> Dict[str, Optional[dict]]:
    """Read the graph files whose ``use_*_graph`` flag is on (a missing file is an error; a graph
    built from another dataset than ``dataset_dir`` too)."""
    return {key: read_graph_file(Path(features_dir) / name, key, dataset_dir, item_ids) if getattr(config, key)
            else None for key, name in GRAPH_FILES.items()}


class PromptCRS(nn.Module):
    """Frozen LM + frozen text encoder + trainable entity encoder and prompt encoder.

    Args:
        lm, lm_tokenizer: decoder-only causal LM (any HF model using the ``Cache`` API).
        text_encoder, text_tokenizer: bidirectional encoder of the context tokens.
        entity_encoder: gives the fused entity table [n_entity, lm hidden].
        item_ids: ``[n_items]`` entity ids of recommendable items.
        config: :class:`PromptCRSConfig`.
    """

    def __init__(self, lm: nn.Module, lm_tokenizer, text_encoder: nn.Module, text_tokenizer,
                 entity_encoder: MultimodalEntityEncoder, item_ids: torch.Tensor, config: PromptCRSConfig):
        super().__init__()
        self.config = config
        self.lm, self.lm_tokenizer = lm, lm_tokenizer
        self.text_encoder, self.text_tokenizer = text_encoder, text_tokenizer
        for frozen in (lm, text_encoder):
            frozen.requires_grad_(False)
            frozen.eval()
        if config.lm_activation_checkpointing not in (True, False):
            raise ValueError("PromptCRS needs lm_activation_checkpointing true or false; from_opt resolves 'auto'")
        if config.lm_activation_checkpointing:
            enable_activation_checkpointing(lm)
        self.geometry = LMGeometry.from_config(lm.config)
        self.entity_encoder = entity_encoder
        self.prompt_encoder = PromptEncoder(text_encoder.config.hidden_size, self.geometry,
                                            config.n_prefix_rec, config.n_prefix_conv,
                                            config.contrastive_temperature)
        self.demonstration_encoder = None
        if config.use_demonstrations:
            self.demonstration_encoder = DemonstrationEncoder(text_encoder.config.hidden_size,
                                                              self.geometry.hidden_size)
        n_entity = entity_encoder.kg_encoder.n_entity
        item_ids = torch.as_tensor(item_ids, dtype=torch.long)
        if item_ids.numel() == 0 or int(item_ids.max()) >= n_entity or int(item_ids.min()) < 0:
            raise ValueError(f"item_entity_ids must be non-empty entity ids in [0, {n_entity}).")
        self.register_buffer("item_ids", item_ids, persistent=False)
        self.register_buffer("item_position", position_index(item_ids, n_entity), persistent=False)
        self._table_cache = None  # (parameter versions, table) of the last no-grad entity_table()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_opt(cls, opt: Mapping, vocab: Mapping, side_data: Mapping, device=None,
                 force_graphs_off: bool = False) -> "PromptCRS":
        """Build from CRSLab's ``opt`` (keys ``lm``, ``text_encoder``, model keys), vocab and side data."""
        for key in ("lm", "text_encoder"):
            if not opt.get(key):
                raise KeyError(f"config key `{key}` is required (see config/*.yaml).")
        config = PromptCRSConfig.from_opt(opt)
        if force_graphs_off:
            config = config.graphs_off()
        lm, lm_tokenizer = load_causal_lm(opt["lm"], option(opt, "lm_gguf_file"), option(opt, "lm_dtype"))
        on, reason = resolve_activation_checkpointing(
            config.lm_activation_checkpointing, lm.config, training_step_shapes(opt), device,
            next(lm.parameters()).element_size())
        if config.lm_activation_checkpointing == "auto":
            logger.info(f"lm_activation_checkpointing {'on' if on else 'off'} ({reason})")
        config = replace(config, lm_activation_checkpointing=on)
        text_encoder, text_tokenizer = load_text_encoder(opt["text_encoder"])
        n_entity = int(vocab["n_entity"])
        item_ids = torch.as_tensor(list(side_data["item_entity_ids"]), dtype=torch.long)
        graphs: Dict[str, Optional[dict]] = {key: None for key in GRAPH_FILES}
        if any(getattr(config, key) for key in GRAPH_FILES):
            graphs = load_semantic_graphs(config, _features_dir(opt), dataset_dir_of(opt), item_ids.tolist())
        entity_encoder = build_entity_encoder(n_entity, side_data["entity_kg"], item_ids,
                                              LMGeometry.from_config(lm.config).hidden_size, config, graphs)
        model = cls(lm, lm_tokenizer, text_encoder, text_tokenizer, entity_encoder, item_ids, config)
        return model.to(device) if device is not None else model

    def train(self, mode: bool = True) -> "PromptCRS":
        super().train(mode)
        self.lm.eval()
        self.text_encoder.eval()
        return self

    def trainable_state_dict(self) -> Dict[str, torch.Tensor]:
        """state_dict without the frozen LM / text encoder weights (small checkpoints)."""
        return {name: value for name, value in self.state_dict().items()
                if not name.startswith(("lm.", "text_encoder."))}

    # ------------------------------------------------------------------ shared pieces
    def entity_table(self, rows: Optional[torch.Tensor] = None) -> Union[torch.Tensor, EntityRows]:
        """Fused multimodal entity table [n_entity, lm hidden] (compute once per step, pass it on).

        Args:
            rows: with autograd, the entity ids the step will read (:meth:`step_rows`): only
                those rows are computed (same values as the full table) and returned as
                :class:`EntityRows` (a lookup of another entity is an error). ``None``: the
                full table.

        Without autograd (evaluation, generation) the full table is cached until a parameter
        of the entity encoder changes (in-place update, load_state_dict, device move), so
        evaluating many batches costs one graph pass instead of one per batch; ``rows`` is
        then not needed and the full table is returned.
        """
        if torch.is_grad_enabled():
            self._table_cache = None
            if rows is None:
                return self.entity_encoder()
            return self.entity_encoder.rows_table(rows)
        key = tuple((p.data_ptr(), p._version) for p in self.entity_encoder.parameters())
        if self._table_cache is not None and self._table_cache[0] == key:
            return self._table_cache[1]
        table = self.entity_encoder()
        self._table_cache = (key, table)
        return table

    def step_rows(self, batch: Batch, task: str) -> Optional[torch.Tensor]:
        """Entity ids a ``task`` step reads from the table (:func:`rows_read`); ``None``: all rows."""
        return rows_read(task, batch["entity_ids"], self.item_ids)

    def _prompt(self, batch: Batch, entity_table: Union[torch.Tensor, EntityRows], task: str):
        with torch.no_grad():
            token_states = self.text_encoder(input_ids=batch["prompt_input_ids"],
                                             attention_mask=batch["prompt_attention_mask"]).last_hidden_state
        entity_ids = batch["entity_ids"]
        entity_embeds = gather_rows(entity_table, entity_ids)
        entity_mask = batch["entity_mask"].bool() if "entity_mask" in batch else entity_ids != 0
        with_contrastive = self.training and self.config.contrastive_weight > 0
        extra, extra_mask = self._demonstrations(batch) if task == "conv" else (None, None)
        prompt = self.prompt_encoder(token_states, batch["prompt_attention_mask"], entity_embeds, entity_mask,
                                     task, with_contrastive, extra, extra_mask)
        lm_dtype = self.lm.dtype  # e.g. a bfloat16 LM (lm_dtype): the cached keys must match its own
        prefix = prompt.prefix
        prompt.prefix = PrefixKeyValues(prefix.keys.to(lm_dtype), prefix.values.to(lm_dtype), prefix.mask)
        return prompt

    def _demonstrations(self, batch: Batch):
        """Extra conv prompt vectors from retrieved demonstrations (``use_demonstrations``)."""
        if self.demonstration_encoder is None:
            return None, None
        if "demo_input_ids" not in batch:
            raise KeyError("`use_demonstrations: true` but the batch has no demo_input_ids / demo_attention_mask "
                           "(the data loader must add retrieved demonstrations).")
        demo_mask = batch["demo_attention_mask"]
        extra = self.demonstration_encoder(self.text_encoder, batch["demo_input_ids"], demo_mask)
        return extra, batch.get("demo_mask", demo_mask.bool().any(-1))

    def _last_hidden(self, batch: Batch, prefix: PrefixKeyValues) -> torch.Tensor:
        mask = batch["attention_mask"]
        if not bool(mask[:, -1].all()):
            raise ValueError("rec/pretrain batches must be LEFT padded: attention_mask[:, -1] must be 1.")
        output = self.lm(**prefixed_lm_inputs(batch["input_ids"], mask, prefix), output_hidden_states=True,
                         logits_to_keep=1)  # the LM head is not needed for scoring
        return output.hidden_states[-1][:, -1].float()

    def _add_contrastive(self, loss: Optional[torch.Tensor], contrastive: Optional[torch.Tensor]):
        if loss is None or contrastive is None:
            return loss
        return loss + self.config.contrastive_weight * contrastive

    # ------------------------------------------------------------------ tasks
    def recommend(self, batch: Batch, entity_table: Union[torch.Tensor, EntityRows, None] = None) -> RecOutput:
        """Item scores and (if ``labels`` present) CE loss over the items.

        ``batch``: a :class:`~crslab_mscrs.batches.contract.RecBatch` (``labels`` optional) or
        ``RecEvalBatch``; raises ValueError when it is not LEFT padded or a label is not an item
        entity id. ``loss`` includes ``contrastive_weight * contrastive_loss`` (train mode only).
        """
        return self._score(batch, entity_table, task="rec")

    def pretrain(self, batch: Batch, entity_table: Union[torch.Tensor, EntityRows, None] = None) -> RecOutput:
        """Prompt pre-training: CE over all entities (recall here is inflated by design).

        ``batch``: a :class:`~crslab_mscrs.batches.contract.PretrainBatch`; labels may be any entity.
        """
        return self._score(batch, entity_table, task="pretrain")

    def _score(self, batch: Batch, entity_table: Union[torch.Tensor, EntityRows, None], task: str) -> RecOutput:
        table = self.entity_table() if entity_table is None else entity_table
        prompt = self._prompt(batch, table, task)
        hidden = self._last_hidden(batch, prompt.prefix).to(table.dtype)
        entity_scores = None
        if task == "rec":  # items only: no [B, n_entity] product
            item_scores = hidden @ gather_rows(table, self.item_ids).t()
        else:
            if isinstance(table, EntityRows):
                raise ValueError("pre-training scores every entity: pass the full table (entity_table() without rows).")
            entity_scores = hidden @ table.t()
            item_scores = entity_scores.index_select(1, self.item_ids)
        loss = None
        labels = batch.get("labels")
        if labels is not None:
            if task == "rec":
                targets = self.item_position[labels]
                if bool((targets < 0).any()):
                    raise ValueError(f"rec labels must be item entity ids; got non-items "
                                     f"{labels[targets < 0][:5].tolist()}.")
                loss = F.cross_entropy(item_scores, targets)
            else:
                loss = F.cross_entropy(entity_scores, labels)
        return RecOutput(self._add_contrastive(loss, prompt.contrastive_loss), item_scores, entity_scores,
                         prompt.contrastive_loss)

    def converse(self, batch: Batch, entity_table: Union[torch.Tensor, EntityRows, None] = None) -> ConvOutput:
        """Conversation prefix + LM; loss on response tokens only (labels != -100, padding ignored).

        With ``labels``, logits are computed only where they are needed (``logits_to_keep`` mask),
        i.e. ``ConvOutput.logits`` is ``[N, V]`` for the N positions with ``logit_mask`` True
        (position p predicts token p + 1). Without labels: all positions, ``[B, L, V]``.
        ``batch``: a :class:`~crslab_mscrs.batches.contract.ConvBatch`.
        """
        table = self.entity_table() if entity_table is None else entity_table
        prompt = self._prompt(batch, table, "conv")
        mask = batch["attention_mask"]
        kwargs = prefixed_lm_inputs(batch["input_ids"], mask, prompt.prefix)
        labels = batch.get("labels")
        if labels is None:
            return ConvOutput(None, self.lm(**kwargs).logits, prompt.contrastive_loss)
        targets = labels[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        logit_mask = F.pad(targets != -100, (0, 1), value=False)  # [B, L]
        logits = self.lm(**kwargs, logits_to_keep=logit_mask).logits
        logits = logits.reshape(-1, logits.size(-1))
        loss = F.cross_entropy(logits.float(), targets[targets != -100])
        return ConvOutput(self._add_contrastive(loss, prompt.contrastive_loss), logits, prompt.contrastive_loss,
                          logit_mask)

    @torch.no_grad()
    def generate(self, batch: Batch, max_new_tokens: int = 50, num_beams: int = 1, do_sample: bool = False,
                 top_p: Optional[float] = None, no_repeat_ngram_size: int = 3,
                 entity_table: Union[torch.Tensor, EntityRows, None] = None, generator=None) -> torch.Tensor:
        """New tokens only [B, T] after the LEFT-padded context (ends with eos, then padding).

        ``batch``: a :class:`~crslab_mscrs.batches.contract.GenerationBatch` or ``LiveBatch``.
        Own decoding loop over the prefix cache (:mod:`crslab_mscrs.model.decoding`: HF
        ``generate()`` assumes cached keys belong to input tokens); no-repeat n-grams are
        checked over the real context tokens and the generated ones (padding excluded).
        """
        table = self.entity_table() if entity_table is None else entity_table
        prefix = self._prompt(batch, table, "conv").prefix
        return decode(self.lm, batch["input_ids"], batch["attention_mask"], prefix,
                      eos_token_id=self.lm_tokenizer.eos_token_id, pad_token_id=self.lm_tokenizer.pad_token_id,
                      max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=do_sample, top_p=top_p,
                      no_repeat_ngram_size=no_repeat_ngram_size, generator=generator)


def _features_dir(opt: Mapping) -> Path:
    if option(opt, "features_dir"):
        return Path(opt["features_dir"])
    if not opt.get("dataset"):
        raise KeyError("set `features_dir` (or `dataset`, to use <data_root>/features/<dataset>).")
    from crslab_mscrs.paths import features_dir

    return features_dir(opt["dataset"])
