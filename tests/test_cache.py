"""The persistent response cache (a real SQLite file) and CachedModel over the real HTTP backend."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from rung.config import ModelConfig, RungConfig
from rung.errors import ConfigError, StoreError
from rung.models.base import Completion, GenerationParams, GenRequest, Model, request_key
from rung.models.cache import CachedModel, ResponseCache
from rung.models.factory import load_model, load_project_model
from rung.models.openai import OpenAIModel

if TYPE_CHECKING:
    from openai_stub import Stub


def _completion(text: str, **kw: object) -> Completion:
    fields: dict = {"tokens_in": 3, "tokens_out": 2, "ttft_s": 0.1, "total_s": 0.2, "model_id": "m"}
    fields.update(kw)
    return Completion(text=text, **fields)


def _ask(text: str, adapter: str | None = None, **params: object) -> GenRequest:
    return GenRequest.chat([{"role": "user", "content": text}],
                        GenerationParams(**params), adapter)  # type: ignore[arg-type]


def _cached(stub: Stub, tmp_path: Path) -> CachedModel:
    inner = OpenAIModel(stub.url, stub.state.model, timeout_s=5, max_retries=0)
    return CachedModel(inner, ResponseCache(tmp_path / "cache.db"))


# ---------------------------------------------------------------- ResponseCache


def test_put_get_and_stats(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "sub" / "cache.db")
    original = _completion("hello", extra={"k": [1, 2]}, adapter="a", finish_reason="length")
    cache.put("k1", original)
    got = cache.get("k1")
    assert got == replace(original, cached=True)
    assert cache.get("k2") is None
    assert cache.get_many(["k2", "k1", "k1"]) == [None, got, got]
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.entries) == (3, 2, 1)
    assert stats.hit_rate == 3 / 5
    created = sqlite3.connect(tmp_path / "sub" / "cache.db").execute(
        "SELECT created_at FROM completions").fetchone()[0]
    assert created.startswith("20") and "T" in created


def test_put_replaces_and_clear_empties(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache.db")
    cache.put_many([("a", _completion("one")), ("b", _completion("two"))])
    cache.put("a", _completion("three"))
    assert [c.text for c in cache.get_many(["a", "b"])] == ["three", "two"]
    assert cache.clear() == 2
    assert cache.get_many(["a", "b"]) == [None, None]
    assert cache.stats().entries == 0


def test_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    with ResponseCache(path) as cache:
        cache.put_many([(f"k{i}", _completion(f"text {i}")) for i in range(700)])
    reopened = ResponseCache(path)
    got = reopened.get_many([f"k{i}" for i in range(700)])
    assert [c.text for c in got] == [f"text {i}" for i in range(700)]
    assert all(c.cached for c in got)


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    path.write_text("this is not sqlite, just some text that is long enough " * 20)
    with pytest.raises(StoreError, match=rf"{path}: cannot open the response cache: file is not a database"):
        ResponseCache(path)


def _write_many(path: str, worker: int, count: int) -> None:
    cache = ResponseCache(path)
    for i in range(0, count, 5):
        cache.put_many([(f"w{worker}-{j}", _completion(f"{worker}:{j}")) for j in range(i, i + 5)])
        cache.get(f"w{worker}-{i}")
    cache.close()


def test_concurrent_writers_do_not_corrupt(tmp_path: Path) -> None:
    path = str(tmp_path / "cache.db")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(path, w, 100)) for w in range(3)]
    for p in procs:
        p.start()
    shared = ResponseCache(path)
    threads = [threading.Thread(target=lambda w=w: [shared.put(f"t{w}-{j}", _completion(f"t{w}:{j}"))
                                                    for j in range(50)]) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    keys = [f"w{w}-{j}" for w in range(3) for j in range(100)] + \
           [f"t{w}-{j}" for w in range(3) for j in range(50)]
    got = ResponseCache(path).get_many(keys)
    assert [c.text if c else None for c in got] == \
           [f"{w}:{j}" for w in range(3) for j in range(100)] + [f"t{w}:{j}" for w in range(3) for j in range(50)]
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# ---------------------------------------------------------------- CachedModel


@pytest.mark.parametrize("params", [{}, {"temperature": 0.8, "seed": 3}])
def test_second_generate_makes_no_server_calls(stub: Stub, tmp_path: Path, params: dict) -> None:
    model = _cached(stub, tmp_path)
    assert isinstance(model, Model)
    requests = [_ask(f"q{i}", **params) for i in range(4)]
    first = model.generate(requests)
    assert stub.state.chat_calls == 4 and not any(c.cached for c in first)
    seen: list[tuple[int, int]] = []
    second = model.generate(requests, progress=lambda d, t: seen.append((d, t)))
    assert stub.state.chat_calls == 4
    assert all(c.cached for c in second)
    assert [c.text for c in second] == [c.text for c in first]
    assert [(c.tokens_in, c.tokens_out) for c in second] == [(c.tokens_in, c.tokens_out) for c in first]
    assert seen[-1] == (4, 4)


@pytest.mark.parametrize("changed", [
    _ask("hello", seed=1),
    _ask("hello", temperature=0.5),
    _ask("hello!"),
    _ask("hello", adapter="lora-a"),
    _ask("hello", max_new_tokens=7),
])
def test_anything_that_changes_the_output_misses(stub: Stub, tmp_path: Path, changed: GenRequest) -> None:
    model = _cached(stub, tmp_path)
    model.generate([_ask("hello")])
    assert model.generate([_ask("hello")])[0].cached
    [c] = model.generate([changed])
    assert not c.cached
    assert stub.state.chat_calls == 2


def test_only_misses_are_sent_in_order(stub: Stub, tmp_path: Path) -> None:
    model = _cached(stub, tmp_path)
    model.generate([_ask("b"), _ask("d")])
    seen: list[tuple[int, int]] = []
    out = model.generate([_ask(x) for x in "abcde"], progress=lambda d, t: seen.append((d, t)))
    assert [c.text.split(" ")[1] for c in out] == list("abcde")
    assert [c.cached for c in out] == [False, True, False, True, False]
    assert sorted(r["messages"][0]["content"] for r in stub.state.requests[2:]) == ["a", "c", "e"]
    assert seen[0] == (2, 5) and seen[-1] == (5, 5)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_identical_requests_in_a_batch_are_sent_once(stub: Stub, tmp_path: Path) -> None:
    model = _cached(stub, tmp_path)
    out = model.generate([_ask("same"), _ask("other"), _ask("same")])
    assert stub.state.chat_calls == 2
    assert out[0].text == out[2].text and out[0] is not out[2]


def test_cache_is_shared_through_the_file(stub: Stub, tmp_path: Path) -> None:
    _cached(stub, tmp_path).generate([_ask("persist")])
    [c] = _cached(stub, tmp_path).generate([_ask("persist")])
    assert c.cached and stub.state.chat_calls == 1


class _Flaky:
    """A minimal Model whose answers to requests containing 'fail' carry an error."""

    model_id = "flaky"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def fingerprint(self, adapter: str | None = None) -> str:
        return f"flaky/{adapter}"

    def adapters(self) -> list[str]:
        return []

    def generate(self, requests: list[GenRequest], progress: object = None) -> list[Completion]:
        self.calls.append(len(requests))
        out = []
        for r in requests:
            text = r.messages[-1]["content"]
            bad = "fail" in text
            out.append(_completion("" if bad else text.upper(), model_id="flaky",
                                   finish_reason="error" if bad else "stop",
                                   error="boom" if bad else None))
        return out


def test_error_completions_are_not_stored(tmp_path: Path) -> None:
    inner = _Flaky()
    model = CachedModel(inner, ResponseCache(tmp_path / "cache.db"))
    first = model.generate([_ask("ok"), _ask("fail")])
    assert [c.error for c in first] == [None, "boom"]
    second = model.generate([_ask("ok"), _ask("fail")])
    assert [c.cached for c in second] == [True, False]
    assert inner.calls == [2, 1]
    key = request_key(inner.fingerprint(None), _ask("fail"))
    assert model.cache.get(key) is None


# ---------------------------------------------------------------- factory


def test_load_model_wraps_the_endpoint_in_the_cache(stub: Stub, tmp_path: Path) -> None:
    cfg = ModelConfig(backend="openai", base_url=stub.url, model=stub.state.model)
    plain = load_model(cfg, root=tmp_path)
    assert isinstance(plain, OpenAIModel)
    cached = load_model(cfg, root=tmp_path, cache_path=tmp_path / "c.db")
    assert isinstance(cached, CachedModel) and isinstance(cached.inner, OpenAIModel)
    assert cached.fingerprint("x") == plain.fingerprint("x")


def test_load_project_model_uses_paths_cache(stub: Stub, tmp_path: Path) -> None:
    config = RungConfig.model_validate({"models": {"api": {
        "backend": "openai", "base_url": stub.url, "model": stub.state.model}}})
    config.root = tmp_path
    model = load_project_model(config, "api")
    assert isinstance(model, CachedModel)
    assert model.cache.path == tmp_path / ".rung" / "cache.db"
    model.generate([_ask("stored")])
    assert ResponseCache(tmp_path / ".rung" / "cache.db").stats().entries == 1
    assert isinstance(load_project_model(config, "api", use_cache=False), OpenAIModel)
    with pytest.raises(ConfigError, match=r"no model named 'apj' \(did you mean 'api'\?\)"):
        load_project_model(config, "apj")
