"""CRSLab dataloader for MSCRS / UniCRS: processed CRSLab samples -> prompt-learning batches.

Input: the samples of CRSLab's ReDial / INSPIRED datasets (one per turn after the first):
``context_tokens`` (word-id lists), ``response``, ``context_entities``, ``context_items``,
``items``, ``role`` and, from :mod:`crslab_mscrs.compat.conversation_tags`,
``conv_id`` / ``turn_index`` (derived when absent: ``turn_index = len(context_tokens)``).

Tasks (batch keys, shapes and padding: :mod:`crslab_mscrs.batches.contract`):

- ``pretrain``: EVERY turn; input = context + response (so its recall is inflated by
  design); one row per target = items of the response + entities first mentioned in it
  (read off the next sample of the same conversation; the last turn only has its items).
- ``rec``: recommender turns with items; one row per target item (CRSLab style, duplicate
  mentions kept). ``rec_eval``: one row per such turn with all its labels (test rankings
  are per turn).
- ``conv``: recommender turns; response movie names -> ``<movie>`` (see
  :mod:`~crslab_mscrs.batches.movie_mentions`); labels only on response tokens.
- ``generation``: recommender turns; context ending with the reply prompt, left padded.

Text: the ORIGINAL words of each turn, looked up by ``(conv_id, turn_index)`` in the built
dataset's split file (:mod:`~crslab_mscrs.batches.source_text`), since CRSLab's word ids
come from the train vocabulary and turn every unseen valid/test word into ``__unk__``. A
sample without tags, or when the files are missing, is detokenised from its ids instead (one
warning per loader naming the reason); config key ``dialogue_text: ids`` forces that path.

Tokenizers are the model's (``attach_tokenizers``, done by the system); without them the
loader loads them itself from the ``lm`` / ``text_encoder`` specs.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from math import ceil
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from crslab.data.dataloader.base import BaseDataLoader
from loguru import logger
from tqdm import tqdm

from crslab_mscrs.batches.collate import pad_entities, pad_ids, pad_labels, stack_labels
from crslab_mscrs.batches.contract import (ConvBatch, GenerationBatch, LiveBatch, ModelInputs, PretrainBatch,
                                          RecBatch, RecEvalBatch, TurnMeta)
from crslab_mscrs.batches.encoding import IGNORE_INDEX, DialogueEncoder
from crslab_mscrs.batches.movie_mentions import MaskStats, mask_movie_mentions
from crslab_mscrs.batches.source_text import MergedTurn, SplitText, match_split, turn_ids
from crslab_mscrs.batches.text import Detokenizer, context_roles, detokenize_words, is_recommender, turn_text
from crslab_mscrs.data.item_names import ItemNames, read_item_names
from crslab_mscrs.training.distributed import PADDING_KEY, DataParallel
from crslab_mscrs.training.settings import BatchSettings


@dataclass
class Turn:
    """One CRSLab sample, as text."""

    index: int
    conv_id: Optional[str]
    turn_index: int
    is_system: bool
    context: List[str]             # speaker-prefixed context turns
    response: str                  # response text (movie names kept)
    response_masked: str           # response text with movie names -> placeholder
    context_entities: List[int]
    items: List[int]
    response_entities: List[int] = field(default_factory=list)
    original_text: bool = False    # words from the dataset file (False: detokenised CRSLab ids)

    @property
    def response_turn(self) -> str:
        return turn_text(self.response, self.is_system)


def load_item_names(opt) -> Dict[int, str]:
    """The ``{entity id: movie name}`` table of the config (``item_names_file``, else the built
    dataset's ``item_names.json`` when it exists; see :meth:`BatchSettings.item_names_path`)."""
    path = BatchSettings.from_opt(opt).item_names_path()
    return read_item_names(path) if path is not None else {}


class MSCRSDataLoader(BaseDataLoader):
    """Batches for prompt pre-training, recommendation, conversation and generation."""

    def __init__(self, opt, dataset, vocab, lm_tokenizer=None, text_tokenizer=None):
        super().__init__(opt, dataset)
        self.vocab = vocab
        self.settings = BatchSettings.from_opt(opt)
        self.limits = self.settings.limits
        self.placeholder = self.settings.placeholder
        self.pad_entity = int(vocab.get("pad_entity", 0))
        self.id2entity = {int(k): v for k, v in vocab.get("id2entity", {}).items()}
        self.item_names = ItemNames.load(self.settings.item_names_path(), self.id2entity)
        self.detokenizer = Detokenizer(vocab["ind2tok"])
        self.mask_stats = MaskStats()
        self._encoder: Optional[DialogueEncoder] = None
        self._turns: Optional[List[Turn]] = None
        self._features: Dict[Tuple[str, int], dict] = {}
        self.item_ids: Optional[set] = None
        self._warned_non_items = False
        self.demonstrations: Optional[Dict[int, list]] = None
        self.dialogue_text = self.settings.dialogue_text
        self.source_text: Optional[SplitText] = None
        self.text_fallbacks: Counter = Counter()   # why samples read their ids instead
        self._warned_fallback = False
        self._turn_texts: Dict[MergedTurn, str] = {}
        self._turn_ids: Dict[Tuple[str, ...], List[int]] = {}
        if lm_tokenizer is not None and text_tokenizer is not None:
            self.attach_tokenizers(lm_tokenizer, text_tokenizer)

    # -- tokenizers ----------------------------------------------------------------------
    def attach_tokenizers(self, lm_tokenizer, text_tokenizer) -> None:
        """Use the model's tokenizers (drops cached encodings made with other ones)."""
        self._encoder = DialogueEncoder(lm_tokenizer, text_tokenizer, self.limits)
        self._features.clear()

    def set_item_ids(self, item_ids) -> None:
        """The recommendable items: training rows whose target is not an item are dropped
        (and counted); evaluation keeps every label, so such labels count as misses."""
        self.item_ids = set(int(i) for i in item_ids)

    def set_demonstrations(self, demonstrations: Dict[int, list]) -> None:
        """Retrieved demonstrations per turn index (option ``use_demonstrations``): conv and
        generation batches then carry ``demo_input_ids`` / ``demo_attention_mask`` / ``demo_mask``."""
        self.demonstrations = demonstrations

    def _add_demonstrations(self, batch: dict, indices: Sequence[int]) -> dict:
        if self.demonstrations is not None:
            from crslab_mscrs.training.demonstrations import demonstration_tensors

            batch.update(demonstration_tensors([self.demonstrations.get(i, []) for i in indices],
                                               self.encoder.text_pad_id))
        return batch

    @property
    def encoder(self) -> DialogueEncoder:
        if self._encoder is None:
            from crslab_mscrs.model.loading import load_causal_lm, load_text_encoder

            settings = self.settings
            for key in ("lm", "text_encoder"):
                if not getattr(settings, key):
                    raise KeyError(f"config key '{key}' is required by the MSCRS dataloader")
            logger.info("[MSCRS dataloader: loading tokenizers of {} and {}]", settings.lm, settings.text_encoder)
            _, lm_tok = load_causal_lm(settings.lm, gguf_file=settings.lm_gguf_file)
            _, text_tok = load_text_encoder(settings.text_encoder)
            self.attach_tokenizers(lm_tok, text_tok)
        return self._encoder

    # -- samples as text -----------------------------------------------------------------
    def item_name(self, entity_id: int) -> str:
        """Name used to find the item in responses (:class:`ItemNames`, the one resolver)."""
        return self.item_names.name(entity_id)

    @property
    def turns(self) -> List[Turn]:
        """All samples as :class:`Turn` (built once)."""
        if self._turns is None:
            self.source_text = self._find_source_text()
            self._turns = [self._make_turn(i, s) for i, s in
                           enumerate(tqdm(self.dataset, desc="MSCRS: samples to text", leave=False))]
            self._link_response_entities()
            if self.source_text is not None and self.text_fallbacks:
                self._warn_fallback(f"[MSCRS dataloader: {sum(self.text_fallbacks.values())} of "
                                    f"{len(self._turns)} samples read CRSLab's word ids (train vocabulary: "
                                    f"unseen words read __unk__), not {self.source_text.path}, because "
                                    f"{dict(self.text_fallbacks)}]")
            if self.mask_stats.missing:
                logger.info("[MSCRS: movie mentions masked: {}]", self.mask_stats.as_dict())
        return self._turns

    # -- where the words come from -----------------------------------------------------------
    def _warn_fallback(self, message: str) -> None:
        """One warning per loader, however many samples fall back."""
        if not self._warned_fallback:
            self._warned_fallback = True
            logger.warning(message)

    def _find_source_text(self) -> Optional[SplitText]:
        """The split file of these samples (see :func:`source_text.match_split`), or None."""
        if self.dialogue_text == "ids" or not self.dataset:
            return None
        match = match_split(self.settings.dataset_folder(), self.dataset, agreement=self._agreement)
        if match.text is None:
            self._warn_fallback("[MSCRS dataloader: text detokenised from CRSLab's word ids (train vocabulary: "
                                f"unseen words read __unk__) because {match.reason}]")
        else:
            logger.info("[MSCRS: dialogue text from {}]", match.reason)
        return match.text

    def _agreement(self, text: SplitText, n_samples: int = 200) -> int:
        """How many of the first samples the split file reproduces word id for word id."""
        hits = 0
        for sample in self.dataset[:n_samples]:
            found = self._lookup(text, sample)
            hits += bool(found is not None and self._agrees(sample, *found))
        return hits

    @staticmethod
    def _lookup(text: SplitText, sample: dict):
        conv_id, turn_index = sample.get("conv_id"), sample.get("turn_index")
        if conv_id is None or turn_index is None:
            return None
        return text.lookup(str(conv_id), int(turn_index))

    def _ids_of(self, turn: MergedTurn) -> List[int]:
        ids = self._turn_ids.get(turn.words)
        if ids is None:
            ids = self._turn_ids[turn.words] = turn_ids(turn, self.vocab["tok2ind"], int(self.vocab.get("unk", 3)))
        return ids

    def _agrees(self, sample: dict, context: List[MergedTurn], response: MergedTurn) -> bool:
        """The file's turns are this sample's: same role, turn count and (with ``tok2ind``)
        the same word ids as CRSLab gave it."""
        context_ids = sample.get("context_tokens", [])
        if len(context) != len(context_ids) or response.role != sample.get("role", response.role):
            return False
        if "tok2ind" not in self.vocab:
            return True
        if list(sample.get("response", [])) != self._ids_of(response):
            return False
        return all(list(ids) == self._ids_of(turn) for ids, turn in zip(context_ids, context))

    def _original_words(self, sample: dict):
        """(context turns, response turn) from the split file, or None (reason counted)."""
        if self.source_text is None:
            return None
        if sample.get("conv_id") is None or sample.get("turn_index") is None:
            self.text_fallbacks["no conv_id/turn_index"] += 1
            return None
        found = self._lookup(self.source_text, sample)
        if found is None:
            self.text_fallbacks["conversation or turn not in the file"] += 1
            return None
        if not self._agrees(sample, *found):
            self.text_fallbacks["words differ from the sample's ids"] += 1
            return None
        return found

    def _turn_text(self, turn: MergedTurn) -> str:
        """Speaker-prefixed text of a merged turn (cached: it recurs in every later context)."""
        text = self._turn_texts.get(turn)
        if text is None:
            text = self._turn_texts[turn] = turn_text(detokenize_words(turn.words), is_recommender(turn.role))
        return text

    def _make_turn(self, index: int, sample: dict) -> Turn:
        is_system = is_recommender(sample.get("role", ""))
        context_ids = sample.get("context_tokens", [])
        original = self._original_words(sample)
        if original is not None:
            context = [self._turn_text(turn) for turn in original[0]]
            words = list(original[1].words)
        else:
            roles = context_roles(len(context_ids), is_system)
            context = [turn_text(self.detokenizer.text(ids), role) for ids, role in zip(context_ids, roles)]
            words = self.detokenizer.words(sample.get("response", []))
        items = [int(i) for i in sample.get("items", [])]
        masked = mask_movie_mentions(words, [self.item_name(i) for i in items], self.placeholder,
                                     stats=self.mask_stats) if items else words
        response = detokenize_words(words)
        turn_index = sample.get("turn_index")
        conv_id = sample.get("conv_id")
        return Turn(index=index, conv_id=None if conv_id is None else str(conv_id),
                    turn_index=int(turn_index if turn_index is not None else len(context_ids)),
                    is_system=is_system, context=context, response=response,
                    response_masked=response if masked == words else detokenize_words(masked),
                    context_entities=[int(e) for e in sample.get("context_entities", [])], items=items,
                    original_text=original is not None)

    def _link_response_entities(self) -> None:
        """Entities first mentioned in a response = what the next sample of the same
        conversation adds to ``context_entities`` (CRSLab appends them in order)."""
        for turn, nxt in zip(self._turns, self._turns[1:]):
            same_conv = (turn.conv_id == nxt.conv_id and nxt.turn_index == turn.turn_index + 1)
            prefix = nxt.context_entities[:len(turn.context_entities)] == turn.context_entities
            if same_conv and prefix and len(nxt.context) == len(turn.context) + 1:
                turn.response_entities = nxt.context_entities[len(turn.context_entities):]

    # -- row selections --------------------------------------------------------------------
    def pretrain_rows(self) -> List[Tuple[int, int]]:
        rows = []
        for turn in self.turns:
            for target in dict.fromkeys(turn.items + turn.response_entities):
                if target != self.pad_entity:
                    rows.append((turn.index, target))
        return rows

    def rec_rows(self) -> List[Tuple[int, int]]:
        rows = [(t.index, item) for t in self.turns if t.is_system for item in t.items]
        if self.item_ids is not None:
            kept = [row for row in rows if row[1] in self.item_ids]
            if len(kept) < len(rows) and not self._warned_non_items:
                self._warned_non_items = True
                logger.warning(f"[rec: {len(rows) - len(kept)} of {len(rows)} training targets are not "
                               "in the item set and were dropped]")
            rows = kept
        return rows

    def rec_eval_turns(self) -> List[int]:
        return [t.index for t in self.turns if t.is_system and t.items]

    def conv_turns(self) -> List[int]:
        return [t.index for t in self.turns if t.is_system]

    # -- per-sample features (cached) ------------------------------------------------------
    def _feature(self, task: str, index: int) -> dict:
        key = (task, index)
        cached = self._features.get(key)
        if cached is not None:
            return cached
        turn, enc = self.turns[index], self.encoder
        if task == "pretrain":
            full = turn.context + [turn.response_turn]
            feature = {"lm": enc.lm_context(full, with_reply_prompt=False), "prompt": enc.prompt(full)}
        elif task == "context":
            feature = {"lm": enc.lm_context(turn.context, with_reply_prompt=True),
                       "prompt": enc.prompt(turn.context)}
        elif task == "conv":
            ids, labels = enc.conv_example(turn.context, turn.response_masked)
            feature = {"lm": ids, "labels": labels, "prompt": enc.prompt(turn.context)}
        else:
            raise ValueError(f"unknown task {task!r}")
        feature["entities"] = enc.entities(turn.context_entities)
        self._features[key] = feature
        return feature

    def _common(self, features: Sequence[dict], left: bool) -> ModelInputs:
        enc = self.encoder
        input_ids, attention_mask = pad_ids([f["lm"] for f in features], enc.lm_pad_id, left=left)
        prompt_ids, prompt_mask = pad_ids([f["prompt"] for f in features], enc.text_pad_id, left=False)
        entity_ids, entity_mask = pad_entities([f["entities"] for f in features], self.pad_entity)
        return {"input_ids": input_ids, "attention_mask": attention_mask,
                "prompt_input_ids": prompt_ids, "prompt_attention_mask": prompt_mask,
                "entity_ids": entity_ids, "entity_mask": entity_mask}

    def _meta(self, indices: Sequence[int]) -> TurnMeta:
        turns = [self.turns[i] for i in indices]
        return {"conv_ids": [t.conv_id for t in turns], "turn_indices": [t.turn_index for t in turns],
                "items": [list(t.items) for t in turns], "references": [t.response for t in turns],
                "references_masked": [t.response_masked for t in turns],
                "context_entities": [list(t.context_entities) for t in turns]}

    # -- batch functions -------------------------------------------------------------------
    def pretrain_batchify(self, rows: Sequence[Tuple[int, int]]) -> PretrainBatch:
        batch = self._common([self._feature("pretrain", i) for i, _ in rows], left=True)
        batch["labels"] = stack_labels([target for _, target in rows])
        return batch

    def rec_batchify(self, rows: Sequence[Tuple[int, int]]) -> RecBatch:
        batch = self._common([self._feature("context", i) for i, _ in rows], left=True)
        batch["labels"] = stack_labels([item for _, item in rows])
        return batch

    def rec_eval_batchify(self, indices: Sequence[int]) -> RecEvalBatch:
        batch = self._common([self._feature("context", i) for i in indices], left=True)
        batch["meta"] = self._meta(indices)
        return batch

    def conv_batchify(self, indices: Sequence[int]) -> ConvBatch:
        features = [self._feature("conv", i) for i in indices]
        batch = self._common(features, left=False)
        batch["labels"] = pad_labels([f["labels"] for f in features], batch["input_ids"].shape[1], IGNORE_INDEX)
        return self._add_demonstrations(batch, indices)

    def generation_batchify(self, indices: Sequence[int]) -> GenerationBatch:
        batch = self._common([self._feature("context", i) for i in indices], left=True)
        batch["meta"] = self._meta(indices)
        return self._add_demonstrations(batch, indices)

    def live_batch(self, context: Sequence[str], context_entities: Sequence[int]) -> LiveBatch:
        """Generation/rec batch of one live dialogue (``interact``): speaker-prefixed turns."""
        enc = self.encoder
        feature = {"lm": enc.lm_context(context, with_reply_prompt=True), "prompt": enc.prompt(context),
                   "entities": enc.entities(context_entities)}
        batch = self._common([feature], left=True)
        batch["prompt_ids"] = [feature["prompt"]]  # for demonstration retrieval in interact
        return batch

    # -- CRSLab's process_fn hooks (so BaseDataLoader.get_*_data work too) -----------------
    def rec_process_fn(self):
        return self.rec_rows()

    def conv_process_fn(self, *args, **kwargs):
        return self.conv_turns()

    def policy_batchify(self, *args, **kwargs):
        raise NotImplementedError("MSCRS has no policy task")

    # -- iteration -------------------------------------------------------------------------
    def _batches(self, rows: list, batch_fn: Callable, batch_size: int, shuffle: bool,
                 desc: str, max_batches: Optional[int] = None, start_batch: int = 0) -> Iterator[dict]:
        """Like ``BaseDataLoader.get_data`` (``scale``, Python ``random`` shuffling) with a
        labelled progress bar; ``max_batches`` stops early (a stage's ``max_batches_per_epoch``).

        The order is drawn when this is called, not at the first batch, so a resumed epoch
        can restore the random state of its start, draw the same order, skip the
        ``start_batch`` batches it had done (without building them) and go on."""
        rows = rows[:ceil(len(rows) * self.scale)]
        order = list(range(len(rows)))
        if shuffle:
            random.shuffle(order)
        n_batches = ceil(len(rows) / batch_size)
        if max_batches:
            n_batches = min(n_batches, int(max_batches))

        # under torchrun, training batches are global: each rank builds its rows of each
        # (evaluation shards whole batches instead: DataParallel.map_batches)
        parallel = DataParallel() if shuffle else None

        def batches() -> Iterator[dict]:
            for b in tqdm(range(start_batch, n_batches), desc=desc, leave=False, initial=start_batch,
                          total=n_batches):
                batch_rows = [rows[i] for i in order[b * batch_size:(b + 1) * batch_size]]
                if parallel is None or not parallel.enabled:
                    yield batch_fn(batch_rows)
                    continue
                mine, padding = parallel.shard_rows(batch_rows)
                batch = batch_fn(mine)
                if padding:
                    batch[PADDING_KEY] = True
                yield batch
        return batches()

    def num_batches(self, task: str, batch_size: int) -> int:
        rows = {"pretrain": self.pretrain_rows, "rec": self.rec_rows, "rec_eval": self.rec_eval_turns,
                "conv": self.conv_turns, "generation": self.conv_turns}[task]()
        return ceil(ceil(len(rows) * self.scale) / batch_size)

    def get_pretrain_data(self, batch_size, shuffle=True, max_batches=None, start_batch=0):
        return self._batches(self.pretrain_rows(), self.pretrain_batchify, batch_size, shuffle, "pretrain",
                             max_batches, start_batch)

    def get_rec_data(self, batch_size, shuffle=True, max_batches=None, start_batch=0):
        return self._batches(self.rec_rows(), self.rec_batchify, batch_size, shuffle, "rec", max_batches,
                             start_batch)

    def get_rec_eval_data(self, batch_size):
        return self._batches(self.rec_eval_turns(), self.rec_eval_batchify, batch_size, False, "rec eval")

    def get_conv_data(self, batch_size, shuffle=True, max_batches=None, start_batch=0):
        return self._batches(self.conv_turns(), self.conv_batchify, batch_size, shuffle, "conv", max_batches,
                             start_batch)

    def generation_rows(self) -> list:
        """The rows ``get_generation_data`` batches, in its order (after ``scale``)."""
        rows = self.conv_turns()
        return rows[:ceil(len(rows) * self.scale)]

    def generation_meta(self, rows: Sequence[int]) -> TurnMeta:
        """Conversation ids, turn indices and references of generation ``rows``."""
        return self._meta(rows)

    def get_generation_data(self, batch_size):
        return self._batches(self.conv_turns(), self.generation_batchify, batch_size, False, "generate")

    def get_pretrain_eval_data(self, batch_size):
        """Pre-training rows in order, for the (inflated) validation recall of stage 1."""
        return self._batches(self.pretrain_rows(), self.pretrain_batchify, batch_size, False, "pretrain eval")
