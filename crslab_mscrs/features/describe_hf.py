"""Descriptions from a local Hugging Face causal LM (e.g. SmolLM2-135M-Instruct as GGUF).

The model is loaded from a folder (or a hub name, where the hub is reachable) with
``AutoModelForCausalLM.from_pretrained(path, gguf_file=...)``; the prompt is the paper's
four-part request (:func:`~crslab_mscrs.features.describe.build_messages`) rendered with
the tokenizer's chat template; decoding is greedy with ``max_new_tokens``. Items are
generated one at a time (``concurrency`` is 1: a local model is compute-bound).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from crslab_mscrs.features.describe import DescriptionError, LLMDescriber


class HFDescriber(LLMDescriber):
    """Greedy generation with a local causal LM; results cached like the API backend."""

    name = "hf"

    def __init__(self, model_path: str, gguf_file: Optional[str] = None, cache_path=None,
                 max_new_tokens: int = 200, device: Optional[str] = None, max_words: int = 150,
                 dtype: str = "float32"):
        super().__init__(cache_path=cache_path, concurrency=1, max_words=max_words)
        from crslab_mscrs.features.text_encoder import resolve_model_spec

        self.model_path = resolve_model_spec(str(model_path))
        self.gguf_file = gguf_file
        self.max_new_tokens = int(max_new_tokens)
        self.device = device
        self.dtype = dtype
        self.model_id = f"{Path(self.model_path).name}/{gguf_file or ''}:greedy:{self.max_new_tokens}"
        self._model = None
        self._tokenizer = None

    def _load(self):
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kwargs = {"gguf_file": self.gguf_file} if self.gguf_file else {}
        self._tokenizer = AutoTokenizer.from_pretrained(self.model_path, **kwargs)
        if not getattr(self._tokenizer, "chat_template", None):
            raise DescriptionError(f"tokenizer of {self.model_path} has no chat template; use an instruct model")
        self._model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=getattr(torch, self.dtype),
                                                           **kwargs)
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._model.to(device).eval()

    def generate(self, messages: list) -> str:
        import torch

        self._load()
        tok = self._tokenizer
        encoded = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                          return_dict=True)
        encoded = {k: v.to(self._model.device) for k, v in encoded.items()}
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        with torch.no_grad():
            output = self._model.generate(**encoded, do_sample=False, max_new_tokens=self.max_new_tokens,
                                          pad_token_id=pad_id)
        new_tokens = output[0, encoded["input_ids"].shape[1]:]
        return tok.decode(new_tokens, skip_special_tokens=True).strip()

    def config(self) -> dict:
        return {**super().config(), "model_path": self.model_path, "gguf_file": self.gguf_file,
                "max_new_tokens": self.max_new_tokens, "decoding": "greedy"}
