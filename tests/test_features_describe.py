"""Description backends: template, OpenAI-compatible client (retries, cache) and local HF LM."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from crslab_mscrs.features.catalogue import Item
from crslab_mscrs.features.describe import (DescriptionCache, DescriptionError, TemplateDescriber,
                                            build_messages, get_describer, load_descriptions, save_descriptions)

ITEMS = [Item(5, "u5", "Toy Story", 1995, ["animation"], ["John Lasseter"], ["Tom Hanks"], "Toys come alive."),
         Item(9, "u9", "Unknown Film")]


def test_template_is_deterministic_and_uses_metadata():
    first = TemplateDescriber().describe(ITEMS)
    assert first == TemplateDescriber().describe(ITEMS)
    assert first[5] == ("Toy Story (1995). Genres: animation. Directed by John Lasseter. Starring Tom Hanks. "
                        "Plot: Toys come alive.")
    assert first[9] == "Unknown Film. A movie."


def test_prompt_asks_for_the_papers_four_aspects():
    user = build_messages(ITEMS[0])[1]["content"]
    for aspect in ("summary", "themes", "emotions", "cultural impact"):
        assert aspect in user
    assert "Toy Story" in user and "1995" in user


def test_cache_ignores_torn_line_and_resumes(tmp_path):
    path = tmp_path / "cache.jsonl"
    cache = DescriptionCache(path)
    cache.put("k1", 1, "m", "text one")
    with open(path, "a") as handle:  # a killed writer left half a line
        handle.write('{"key": "k2", "item_id": 2, "te')
    cache2 = DescriptionCache(path)
    assert cache2.get("k1") == "text one" and cache2.get("k2") is None and cache2.torn_lines == 1
    cache2.put("k3", 3, "m", "text three")
    assert DescriptionCache(path).get("k3") == "text three"


def test_descriptions_roundtrip(tmp_path):
    texts = TemplateDescriber().describe(ITEMS)
    save_descriptions(texts, ITEMS, tmp_path / "d.jsonl", TemplateDescriber())
    assert load_descriptions(tmp_path / "d.jsonl") == texts


# ----------------------------------------------------------------- OpenAI-compatible server

class ScriptedServer:
    """127.0.0.1 chat-completions server replaying a script of responses, then succeeding."""

    def __init__(self, script):
        self.script = list(script)
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                action = outer.script.pop(0) if outer.script else "ok"
                if action in (429, 500, 503):
                    self.send_response(action)
                    self.end_headers()
                    return
                if action in ("echo-401", "echo-malformed"):  # a server that echoes the request headers
                    self.send_response(401 if action == "echo-401" else 200)
                    self.end_headers()
                    echoed = json.dumps({"error": "invalid key", "authorization": self.headers.get("Authorization"),
                                         "headers": dict(self.headers)})
                    self.wfile.write((echoed if action == "echo-401" else "{truncated " + echoed).encode())
                    return
                if action == "slow":
                    time.sleep(0.6)
                payload = b"{not json" if action == "malformed" else json.dumps(
                    {"choices": [{"message": {"role": "assistant",
                                              "content": f"Description of {body['messages'][1]['content'][:30]}"}}]}
                ).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _client(url, tmp_path, **kw):
    options = dict(model="test-model", base_url=url, api_key_env="MSCRS_TEST_KEY", cache_path=tmp_path / "c.jsonl",
                   concurrency=1, max_retries=5, backoff=0.01, timeout=0.3)
    options.update(kw)
    return get_describer("openai", **options)


def test_openai_retries_429_500_timeout_malformed_then_succeeds(tmp_path, monkeypatch):
    monkeypatch.setenv("MSCRS_TEST_KEY", "sk-secret-value")
    with ScriptedServer([429, 500, "slow", "malformed"]) as server:
        client = _client(server.url, tmp_path)
        delays = []
        client.sleep = delays.append
        out = client.describe(ITEMS[:1])
        assert out[5].startswith("Description of")
        assert len(server.requests) == 5
        assert delays == [0.01, 0.02, 0.04, 0.08]  # exponential backoff
        assert server.requests[0]["path"] == "/v1/chat/completions"
        assert server.requests[0]["auth"] == "Bearer sk-secret-value"
        assert server.requests[0]["body"]["model"] == "test-model"
        # rerun: everything from the cache, no request
        again = _client(server.url, tmp_path).describe(ITEMS[:1])
        assert again == out and len(server.requests) == 5
    assert "sk-secret-value" not in (tmp_path / "c.jsonl").read_text()


def test_openai_malformed_forever_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MSCRS_TEST_KEY", "k")
    with ScriptedServer(["malformed"] * 10) as server:
        client = _client(server.url, tmp_path, max_retries=2)
        client.sleep = lambda s: None
        with pytest.raises(DescriptionError, match="malformed response body"):
            client.describe(ITEMS[:1])
        assert len(server.requests) == 3


def test_openai_missing_key_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("MSCRS_TEST_KEY", raising=False)
    with pytest.raises(DescriptionError, match="MSCRS_TEST_KEY"):
        _client("http://127.0.0.1:9/v1", tmp_path).describe(ITEMS[:1])


def test_openai_missing_key_is_reported_once_not_per_item(tmp_path, monkeypatch):
    monkeypatch.delenv("MSCRS_TEST_KEY", raising=False)
    with pytest.raises(DescriptionError) as err:
        _client("http://127.0.0.1:9/v1", tmp_path, concurrency=2).describe(ITEMS)
    assert str(err.value).count("MSCRS_TEST_KEY") == 1 and "items failed" not in str(err.value)


@pytest.mark.parametrize("action", ["echo-401", "echo-malformed"])
def test_openai_errors_never_show_the_api_key_a_server_echoes(tmp_path, monkeypatch, action):
    monkeypatch.setenv("MSCRS_TEST_KEY", "sk-live-0123456789abcdef")
    with ScriptedServer([action] * 3) as server:
        client = _client(server.url, tmp_path, max_retries=1)
        client.sleep = lambda s: None
        with pytest.raises(DescriptionError) as err:
            client.describe(ITEMS[:1])
        assert server.requests[0]["auth"] == "Bearer sk-live-0123456789abcdef"  # the key was sent...
    message = str(err.value)
    assert "invalid key" in message or "malformed response body" in message
    assert "0123456789abcdef" not in message and "Bearer <redacted>" in message  # ...but never printed


def test_openai_concurrent_items_resume_after_partial_run(tmp_path, monkeypatch):
    monkeypatch.setenv("MSCRS_TEST_KEY", "k")
    with ScriptedServer([]) as server:
        _client(server.url, tmp_path, concurrency=2).describe(ITEMS[:1])
        assert len(server.requests) == 1
        out = _client(server.url, tmp_path, concurrency=2).describe(ITEMS)  # only the new item is requested
        assert set(out) == {5, 9} and len(server.requests) == 2


# ----------------------------------------------------------------- local HF causal LM

def _tiny_chat_lm(folder):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<pad>", "<s>", "</s>", "<unk>", "system", "user", "assistant", "movie", "the", "a"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")
    fast.chat_template = "{% for m in messages %}{{ m['role'] }} {{ m['content'] }} {% endfor %}assistant"
    fast.save_pretrained(folder)
    import torch

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(words), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0)
    LlamaForCausalLM(config).save_pretrained(folder)


def test_hf_backend_greedy_and_cached(tmp_path):
    _tiny_chat_lm(tmp_path / "lm")
    describer = get_describer("hf", model_path=str(tmp_path / "lm"), cache_path=tmp_path / "c.jsonl",
                              max_new_tokens=5, device="cpu")
    first = describer.describe(ITEMS[:1])
    assert set(first) == {5} and first[5]
    second = get_describer("hf", model_path=str(tmp_path / "lm"), cache_path=tmp_path / "c.jsonl",
                           max_new_tokens=5, device="cpu")
    assert second.describe(ITEMS[:1]) == first and second._model is None  # served from cache, model never loaded
