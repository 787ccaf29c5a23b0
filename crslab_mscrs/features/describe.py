"""Item descriptions: one interface, three backends.

MSCRS (section 3.2 of the paper; docs/data.md) asks GPT-4o for a rich description
of every item covering its summary, themes, emotions and cultural impact, then encodes it
into x_t. ``Describer.describe(items) -> {item_id: text}`` hides where the text comes from:

- ``template`` (:class:`TemplateDescriber`): deterministic text from the catalogue metadata
  (title, year, genres, director, stars, plot). No model, no network.
- ``openai`` (:class:`crslab_mscrs.features.describe_openai.OpenAIDescriber`): any
  OpenAI-compatible chat-completions endpoint.
- ``hf`` (:class:`crslab_mscrs.features.describe_hf.HFDescriber`): a local causal LM.

The two LLM backends share :class:`DescriptionCache`: one JSON line per described item,
appended and fsynced as soon as the item is done, keyed by sha256(item id, prompt, model),
so a killed run resumes where it stopped and a rerun with the same prompt and model costs
nothing. A torn last line (killed mid-write) is ignored on load.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Optional, Sequence

from loguru import logger

from crslab_mscrs.data.jsonl import iter_jsonl
from crslab_mscrs.features.catalogue import Item

#: Paper prompt (MSCRS section 3.2): summary, themes, emotions, cultural impact.
SYSTEM_PROMPT = "You are a film expert who writes concise, factual movie descriptions for a recommender system."
USER_PROMPT = (
    "Describe the movie \"{title}\"{year_part}.{facts}\n"
    "In one paragraph of at most {max_words} words, cover: (1) a short plot summary, "
    "(2) its main themes, (3) the emotions it evokes in viewers, and (4) its cultural impact "
    "or reception. Do not use lists or headings."
)


class DescriptionError(RuntimeError):
    """A description backend failed for good (after its retries)."""


def item_facts(item: Item) -> str:
    """Known metadata as one sentence-ish string, used by prompts and the template."""
    parts = []
    if item.genres:
        parts.append("Genres: " + ", ".join(item.genres) + ".")
    if item.director:
        parts.append("Directed by " + ", ".join(item.director) + ".")
    if item.stars:
        parts.append("Starring " + ", ".join(item.stars) + ".")
    if item.plot:
        parts.append("Plot: " + item.plot.rstrip(".") + ".")
    return " ".join(parts)


def build_messages(item: Item, max_words: int = 150) -> list:
    """Chat messages asking for the paper's four-part description of ``item``."""
    facts = item_facts(item)
    user = USER_PROMPT.format(title=item.title, year_part=f" ({item.year})" if item.year else "",
                              facts=(" Known facts: " + facts) if facts else "", max_words=max_words)
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


class Describer(ABC):
    """``describe(items) -> {item_id: description}``; ``name`` labels manifests."""

    name = "describer"

    @abstractmethod
    def describe(self, items: Sequence[Item]) -> dict:
        """Return one non-empty description per item id."""

    def config(self) -> dict:
        """Parameters that identify the backend in a manifest (never secrets)."""
        return {"backend": self.name}


class TemplateDescriber(Describer):
    """Deterministic description from metadata: ``"<title> (<year>). Genres: ... Plot: ..."``."""

    name = "template"

    def describe(self, items: Sequence[Item]) -> dict:
        out = {}
        for item in items:
            head = f"{item.title} ({item.year})." if item.year else f"{item.title}."
            facts = item_facts(item)
            out[item.item_id] = f"{head} {facts}".strip() if facts else f"{head} A movie."
        return out


class LLMDescriber(Describer):
    """Shared loop of the LLM backends: cache lookup, bounded thread pool, progress, errors.

    Subclasses implement :meth:`generate` (one chat request -> text) and set ``model_id``.
    Items that fail after the backend's own retries are collected; the run then raises a
    :class:`DescriptionError` naming them (already finished items stay cached).
    """

    name = "llm"
    model_id = ""

    def __init__(self, cache_path=None, concurrency: int = 1, max_words: int = 150):
        self.cache = DescriptionCache(cache_path)
        self.concurrency = max(1, int(concurrency))
        self.max_words = int(max_words)
        self.cache_hits = 0

    @abstractmethod
    def generate(self, messages: list) -> str:
        """Return the assistant's reply to ``messages``."""

    def _describe_one(self, item: Item) -> tuple:
        messages = build_messages(item, self.max_words)
        key = DescriptionCache.key(item.item_id, messages, self.model_id)
        cached = self.cache.get(key)
        if cached is not None:
            return item.item_id, cached, True
        text = self.generate(messages).strip()
        if not text:
            raise DescriptionError(f"empty description for item {item.item_id} ({item.title!r})")
        self.cache.put(key, item.item_id, self.model_id, text)
        return item.item_id, text, False

    def describe(self, items: Sequence[Item]) -> dict:
        from concurrent.futures import ThreadPoolExecutor, as_completed

        from tqdm.auto import tqdm

        out, failures = {}, {}
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = {pool.submit(self._describe_one, item): item for item in items}
            for future in tqdm(as_completed(futures), total=len(futures), desc=f"describe[{self.name}]"):
                item = futures[future]
                try:
                    item_id, text, hit = future.result()
                except Exception as err:  # noqa: BLE001 - collected and re-raised below
                    failures[item.item_id] = f"{type(err).__name__}: {err}"
                    continue
                out[item_id] = text
                self.cache_hits += hit
        if failures:
            sample = "; ".join(f"{k}: {v}" for k, v in list(failures.items())[:3])
            raise DescriptionError(f"{len(failures)} of {len(items)} items failed ({sample}); "
                                   f"{len(out)} succeeded and are cached")
        return out

    def config(self) -> dict:
        return {"backend": self.name, "model": self.model_id, "max_words": self.max_words}


class DescriptionCache:
    """Append-only JSONL cache ``{"key", "item_id", "model", "text"}``; thread-safe."""

    def __init__(self, path):
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._entries: dict = {}
        self.torn_lines = 0
        if self.path and self.path.is_file():
            malformed: list = []
            for _, record in iter_jsonl(self.path, malformed=malformed):
                try:
                    self._entries[record["key"]] = record["text"]
                except (KeyError, TypeError):
                    self.torn_lines += 1
            self.torn_lines += len(malformed)
            if self.torn_lines:
                logger.warning(f"description cache {self.path}: ignored {self.torn_lines} unreadable line(s)")

    @staticmethod
    def key(item_id: int, messages: list, model: str) -> str:
        payload = json.dumps([int(item_id), messages, model], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def get(self, key: str) -> Optional[str]:
        return self._entries.get(key)

    def put(self, key: str, item_id: int, model: str, text: str) -> None:
        with self._lock:
            self._entries[key] = text
            if self.path is None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            line = json.dumps({"key": key, "item_id": int(item_id), "model": model, "text": text},
                              ensure_ascii=False)
            # one write() of a whole line, newline first if the file ends in a torn line
            with open(self.path, "a+", encoding="utf-8") as handle:
                handle.seek(0, os.SEEK_END)
                prefix = ""
                if handle.tell() > 0:
                    handle.seek(handle.tell() - 1)
                    if handle.read(1) != "\n":
                        prefix = "\n"
                handle.write(prefix + line + "\n")
                handle.flush()
                os.fsync(handle.fileno())

    def __len__(self) -> int:
        return len(self._entries)


def get_describer(backend: str, **options) -> Describer:
    """Factory: ``template`` | ``openai`` | ``hf`` with backend-specific options."""
    backend = backend.lower()
    if backend == "template":
        return TemplateDescriber()
    if backend == "openai":
        from crslab_mscrs.features.describe_openai import OpenAIDescriber

        return OpenAIDescriber(**options)
    if backend in ("hf", "huggingface"):
        from crslab_mscrs.features.describe_hf import HFDescriber

        return HFDescriber(**options)
    raise ValueError(f"unknown description backend {backend!r}; choose template, openai or hf")


def save_descriptions(descriptions: dict, catalogue_items: Sequence[Item], path, describer: Describer) -> None:
    """Write ``{"item_id", "title", "description", "backend"}`` JSONL in item order (atomic rename)."""
    from crslab_mscrs.atomic_files import replacing

    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for item in catalogue_items:
            if item.item_id in descriptions:
                handle.write(json.dumps({"item_id": item.item_id, "title": item.title,
                                         "description": descriptions[item.item_id],
                                         "backend": describer.name}, ensure_ascii=False) + "\n")


def load_descriptions(path) -> dict:
    """``{item_id: description}`` from a file written by :func:`save_descriptions`."""
    out = {}
    for line_no, record in iter_jsonl(path):
        try:
            out[int(record["item_id"])] = record["description"]
        except (KeyError, ValueError, TypeError) as err:
            raise ValueError(f"{path}:{line_no}: bad description record ({err})") from err
    return out
