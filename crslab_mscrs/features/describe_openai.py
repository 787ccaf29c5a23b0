"""Descriptions from any OpenAI-compatible chat-completions endpoint (paper: GPT-4o).

``POST {base_url}/chat/completions`` with ``{"model", "messages", "temperature",
"max_tokens"}``; the reply text is ``choices[0].message.content``. Uses only the stdlib
(``urllib``). The API key is read from the environment variable named by ``api_key_env``
and is never logged or stored (not in manifests, not in the cache key).

Retries: HTTP 429 and 5xx, timeouts, connection errors and malformed bodies are retried
up to ``max_retries`` times with exponential backoff ``backoff * 2**attempt`` seconds
(capped by ``max_backoff``; a ``Retry-After`` header wins when it is larger, also capped).
Other HTTP errors (400, 401, 404...) fail at once. After the last retry a
:class:`~crslab_mscrs.features.describe.DescriptionError` says what went wrong. Text from
the server that enters an error message is redacted first: a server may echo the request's
``Authorization`` header (the API key) in its error body. A missing key is one error,
raised before any request, not one per item.
"""
from __future__ import annotations

import json
import os
import re
import socket
import time
import urllib.error
import urllib.request
from typing import Optional

from loguru import logger

from crslab_mscrs.features.describe import DescriptionCache, DescriptionError, LLMDescriber, build_messages

RETRYABLE_STATUS = {429, 500, 502, 503, 504}
_BEARER = re.compile(r"(Bearer\s+)[^\s\"',;}]+", re.IGNORECASE)


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: Optional[float] = None):
        super().__init__(message)
        self.retry_after = retry_after


class OpenAIDescriber(LLMDescriber):
    """Chat-completions client with bounded concurrency, retries and an on-disk cache."""

    name = "openai"

    def __init__(self, model: str = "gpt-4o", base_url: str = "https://api.openai.com/v1",
                 api_key_env: Optional[str] = "OPENAI_API_KEY", cache_path=None, concurrency: int = 4,
                 max_retries: int = 5, backoff: float = 1.0, max_backoff: float = 60.0,
                 timeout: float = 60.0, temperature: float = 0.0, max_tokens: int = 300,
                 max_words: int = 150):
        super().__init__(cache_path=cache_path, concurrency=concurrency, max_words=max_words)
        self.model_id = model
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.timeout = float(timeout)
        self.temperature = float(temperature)
        self.max_tokens = int(max_tokens)
        self.sleep = time.sleep  # replaceable in tests
        self._checked_headers: Optional[dict] = None

    def describe(self, items):
        """Check the API key once, before any request (only when some item is not cached)."""
        if any(self.cache.get(DescriptionCache.key(item.item_id, build_messages(item, self.max_words),
                                                   self.model_id)) is None for item in items):
            self._checked_headers = self._headers()
        return super().describe(items)

    def _redact(self, text: str) -> str:
        """``text`` from the server with the API key (and any bearer token) replaced."""
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key and len(key) >= 4:
            text = text.replace(key, "<redacted>")
        return _BEARER.sub(r"\1<redacted>", text)

    def _excerpt(self, raw: bytes) -> str:
        return repr(self._redact(raw.decode("utf-8", "replace"))[:120])

    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise DescriptionError(f"environment variable {self.api_key_env} (API key) is not set; "
                                       "set it, or set api_key_env: null for an endpoint without auth")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _request_once(self, body: bytes, headers: dict) -> str:
        request = urllib.request.Request(f"{self.base_url}/chat/completions", data=body, headers=headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            if err.code in RETRYABLE_STATUS:
                retry_after = err.headers.get("Retry-After") if err.headers else None
                try:
                    retry_after = float(retry_after) if retry_after else None
                except ValueError:
                    retry_after = None
                raise _Retryable(f"HTTP {err.code}", retry_after) from err
            detail = self._redact(err.read().decode("utf-8", "replace"))[:300]  # redact, then cut
            raise DescriptionError(f"HTTP {err.code} from {self.base_url}: {detail}") from err
        except (socket.timeout, TimeoutError) as err:
            raise _Retryable(f"timeout after {self.timeout}s") from err
        except urllib.error.URLError as err:
            raise _Retryable(f"connection error: {err.reason}") from err
        except ConnectionError as err:
            raise _Retryable(f"connection error: {err}") from err
        try:
            payload = json.loads(raw)
            content = payload["choices"][0]["message"]["content"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError) as err:
            raise _Retryable(f"malformed response body ({type(err).__name__}): {self._excerpt(raw)}") from err
        if not isinstance(content, str) or not content.strip():
            raise _Retryable(f"malformed response body (empty content): {self._excerpt(raw)}")
        return content

    def generate(self, messages: list) -> str:
        headers = self._checked_headers or self._headers()
        body = json.dumps({"model": self.model_id, "messages": messages, "temperature": self.temperature,
                           "max_tokens": self.max_tokens}).encode("utf-8")
        last = None
        for attempt in range(self.max_retries + 1):
            try:
                return self._request_once(body, headers)
            except _Retryable as err:
                last = err
                if attempt == self.max_retries:
                    break
                delay = min(self.max_backoff, self.backoff * (2 ** attempt))
                if err.retry_after is not None:
                    delay = min(self.max_backoff, max(delay, err.retry_after))
                logger.debug(f"openai describer: {err}; retry {attempt + 1}/{self.max_retries} in {delay:.2f}s")
                self.sleep(delay)
        raise DescriptionError(f"{self.base_url}: giving up after {self.max_retries + 1} attempts; last error: {last}")

    def config(self) -> dict:
        return {**super().config(), "base_url": self.base_url, "temperature": self.temperature,
                "max_tokens": self.max_tokens}
