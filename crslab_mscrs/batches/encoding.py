"""Re-tokenisation of dialogue text for the frozen LM and the frozen text encoder.

Every distinct turn is tokenised once per tokenizer and cached (a turn of a conversation
reappears in the context of every later sample of that conversation). Truncation follows
UniCRS: the dialogue context is cut from the LEFT (the most recent words are kept), the
response from the right, the context entities keep the last ``entity_max_length``.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from crslab_mscrs.batches.text import REPLY_PROMPT
from crslab_mscrs.training.settings import EncodingLimits  # noqa: F401  (the limits' owner)

IGNORE_INDEX = -100
"""Label of positions that carry no loss (context, prompt and padding tokens)."""


class DialogueEncoder:
    """Turns lists of (already speaker-prefixed) turn texts into token-id lists."""

    def __init__(self, lm_tokenizer, text_tokenizer, limits: EncodingLimits):
        self.lm_tokenizer = lm_tokenizer
        self.text_tokenizer = text_tokenizer
        self.limits = limits
        self.lm_eos_id = _required_id(lm_tokenizer, "eos_token_id", "LM")
        self.lm_pad_id = _required_id(lm_tokenizer, "pad_token_id", "LM")
        self.text_pad_id = _required_id(text_tokenizer, "pad_token_id", "text encoder")
        sep = text_tokenizer.sep_token_id
        self.text_sep_id = sep if sep is not None else text_tokenizer.eos_token_id
        self._lm_cache: Dict[str, List[int]] = {}
        self._text_cache: Dict[str, List[int]] = {}
        self._text_head, self._text_tail = _special_token_frame(text_tokenizer)

    # -- single strings ------------------------------------------------------------------
    def lm_ids(self, text: str) -> List[int]:
        ids = self._lm_cache.get(text)
        if ids is None:
            ids = self._lm_cache[text] = list(
                self.lm_tokenizer(text, add_special_tokens=False)["input_ids"])
        return ids

    def text_ids(self, text: str) -> List[int]:
        ids = self._text_cache.get(text)
        if ids is None:
            ids = self._text_cache[text] = list(
                self.text_tokenizer(text, add_special_tokens=False)["input_ids"])
        return ids

    # -- dialogue pieces -----------------------------------------------------------------
    def lm_context(self, turns: Sequence[str], with_reply_prompt: bool) -> List[int]:
        """Turns joined by eos (+ eos + ``System:``), left-truncated to ``context_max_length``."""
        ids: List[int] = []
        pieces = list(turns) + ([REPLY_PROMPT] if with_reply_prompt else [])
        for i, text in enumerate(pieces):
            if i:
                ids.append(self.lm_eos_id)
            ids.extend(self.lm_ids(text))
        return ids[-self.limits.context_max_length:]

    def lm_response(self, response: str) -> List[int]:
        """`` <response>`` + eos, right-truncated to ``response_max_length`` tokens."""
        ids = self.lm_ids(" " + response)[: max(self.limits.response_max_length - 1, 0)]
        return ids + [self.lm_eos_id]

    def prompt(self, turns: Sequence[str]) -> List[int]:
        """Text-encoder ids: turns joined by the encoder's sep token, left-truncated, with
        the encoder's own special tokens ([CLS] ... [SEP] / <s> ... </s>) around them."""
        ids: List[int] = []
        for i, text in enumerate(turns):
            if i and self.text_sep_id is not None:
                ids.append(self.text_sep_id)
            ids.extend(self.text_ids(text))
        budget = max(self.limits.prompt_max_length - len(self._text_head) - len(self._text_tail), 1)
        return self._text_head + ids[-budget:] + self._text_tail

    def entities(self, context_entities: Sequence[int]) -> List[int]:
        if self.limits.entity_max_length <= 0:
            return []
        return [int(e) for e in context_entities][-self.limits.entity_max_length:]

    def conv_example(self, turns: Sequence[str], response: str) -> Tuple[List[int], List[int]]:
        """(input ids, labels) for teacher-forced training: labels only on response tokens."""
        context = self.lm_context(turns, with_reply_prompt=True)
        target = self.lm_response(response)
        return context + target, [IGNORE_INDEX] * len(context) + target


def _required_id(tokenizer, attribute: str, what: str) -> int:
    value: Optional[int] = getattr(tokenizer, attribute, None)
    if value is None:
        raise ValueError(f"the {what} tokenizer {getattr(tokenizer, 'name_or_path', tokenizer)!r} "
                         f"has no {attribute}; load it with crslab_mscrs.model.loading")
    return int(value)


def _special_token_frame(tokenizer) -> Tuple[List[int], List[int]]:
    """The special ids a tokenizer puts before / after a text ([CLS] / [SEP], <s> / </s>).

    Found by tokenising a probe word with and without special tokens (transformers 5 no
    longer exposes ``build_inputs_with_special_tokens`` on every tokenizer).
    """
    plain = list(tokenizer("movie", add_special_tokens=False)["input_ids"])
    framed = list(tokenizer("movie", add_special_tokens=True)["input_ids"])
    for start in range(len(framed) - len(plain) + 1):
        if framed[start:start + len(plain)] == plain:
            return framed[:start], framed[start + len(plain):]
    return [], []
