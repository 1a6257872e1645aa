"""The `openai` backend against a real OpenAI-compatible server on 127.0.0.1 (tests/openai_stub.py)."""

from __future__ import annotations

import socket
import time

import pytest
from openai_stub import Stub, answer_text

from rung.config import ModelConfig
from rung.errors import EndpointError
from rung.models.base import GenerationParams, GenRequest, Model
from rung.models.openai import OpenAIModel


def _model(stub: Stub, **overrides: object) -> OpenAIModel:
    fields = {"backend": "openai", "base_url": stub.url, "model": stub.state.model,
              "timeout_s": 5.0, "max_retries": 2}
    fields.update(overrides)
    return OpenAIModel.from_config(ModelConfig(**fields), backoff_s=0.01)


def _ask(text: str, **params: object) -> GenRequest:
    return GenRequest.chat([{"role": "system", "content": "be brief"}, {"role": "user", "content": text}],
                        GenerationParams(**params))  # type: ignore[arg-type]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_basic_chat_over_http(stub: Stub) -> None:
    model = _model(stub)
    assert isinstance(model, Model)
    [c] = model.generate([_ask("where is my parcel")])
    assert c.text == "echo: where is my parcel [model=stub-model]"
    assert (c.tokens_in, c.tokens_out) == (2 + 4, len(c.text.split()))
    assert c.finish_reason == "stop" and c.error is None and not c.cached
    assert c.model_id == "stub-model" and c.adapter is None
    assert 0 < c.ttft_s == c.total_s < 5
    assert c.extra == {"ttft_measured": False}
    assert stub.state.chat_calls == 1


def test_parameters_reach_the_server(stub: Stub) -> None:
    model = _model(stub)
    [c] = model.generate([_ask("a b c d e f", max_new_tokens=3, temperature=0.7, top_p=0.9,
                               seed=11, stop=("zzz",))])
    body = stub.state.requests[0]
    assert body["max_tokens"] == 3 and body["temperature"] == 0.7 and body["top_p"] == 0.9
    assert body["seed"] == 11 and body["stop"] == ["zzz"]
    assert body["messages"][1] == {"role": "user", "content": "a b c d e f"}
    assert c.text == "echo: a b" and c.finish_reason == "length"
    model.generate([_ask("x")])
    assert "stop" not in stub.state.requests[-1]


def test_adapter_name_goes_in_the_model_field(stub: Stub) -> None:
    model = _model(stub)
    base, tuned = model.generate([_ask("hi"), GenRequest.chat([{"role": "user", "content": "hi"}],
                                                           adapter="support-lora")])
    assert [r["model"] for r in stub.state.requests] in (["stub-model", "support-lora"],
                                                         ["support-lora", "stub-model"])
    assert base.text.endswith("[model=stub-model]") and base.adapter is None
    assert tuned.text.endswith("[model=support-lora]") and tuned.adapter == "support-lora"
    assert model.adapters() == []


@pytest.mark.parametrize("status, retry_after", [(429, "0"), (503, None), (500, None)])
def test_retries_then_succeeds(stub: Stub, status: int, retry_after: str | None) -> None:
    stub.state.fail_first, stub.state.fail_status, stub.state.retry_after = 2, status, retry_after
    [c] = _model(stub, max_retries=2).generate([_ask("again")])
    assert c.text.startswith("echo: again")
    assert stub.state.chat_calls == 3
    assert c.extra["attempts"] == 3


def test_retry_after_header_is_honoured(stub: Stub) -> None:
    stub.state.fail_first, stub.state.fail_status, stub.state.retry_after = 1, 429, "0.4"
    start = time.perf_counter()
    _model(stub).generate([_ask("slowly")])
    assert time.perf_counter() - start >= 0.4
    assert stub.state.chat_calls == 2


def test_retries_exhausted(stub: Stub) -> None:
    stub.state.fail_first, stub.state.fail_status = 100, 503
    with pytest.raises(EndpointError, match=r"gave up after 3 attempts; last error: 503 .*stub failure 3"):
        _model(stub, max_retries=2).generate([_ask("never")])
    assert stub.state.chat_calls == 3


def test_client_error_is_not_retried(stub: Stub) -> None:
    with pytest.raises(EndpointError, match=r"answered 400 Bad Request: messages must not be empty"):
        _model(stub).generate([GenRequest.chat([])])
    assert stub.state.chat_calls == 1


def test_wrong_base_url_says_404_and_hints(stub: Stub) -> None:
    model = _model(stub, base_url=stub.url.removesuffix("/v1"))
    with pytest.raises(EndpointError, match=r"answered 404 Not Found: .*check base_url"):
        model.generate([_ask("hi")])


def test_unreachable_endpoint_fails_fast() -> None:
    port = _free_port()
    model = OpenAIModel(f"http://127.0.0.1:{port}/v1", "m", max_retries=3, timeout_s=10)
    start = time.perf_counter()
    with pytest.raises(EndpointError) as info:
        model.generate([_ask("anyone?")] * 4)
    assert time.perf_counter() - start < 2
    assert str(info.value) == (f"cannot reach http://127.0.0.1:{port}/v1/chat/completions: "
                               "connection refused (is the server running?)")


def test_timeout(stub: Stub) -> None:
    stub.state.delay_s = 0.6
    start = time.perf_counter()
    with pytest.raises(EndpointError, match=r"gave up after 1 attempt; last error: no answer within 0.2 s"):
        _model(stub, timeout_s=0.2, max_retries=0).generate([_ask("slow")])
    assert time.perf_counter() - start < 0.6


def test_api_key_from_env(stub: Stub, monkeypatch: pytest.MonkeyPatch) -> None:
    stub.state.api_key = "sk-test-123"
    monkeypatch.delenv("RUNG_TEST_KEY", raising=False)
    with pytest.raises(EndpointError, match=r"'RUNG_TEST_KEY' but that environment variable is not set"):
        _model(stub, api_key_env="RUNG_TEST_KEY")
    monkeypatch.setenv("RUNG_TEST_KEY", "sk-test-123")
    [c] = _model(stub, api_key_env="RUNG_TEST_KEY").generate([_ask("secret")])
    assert c.text.startswith("echo: secret")
    monkeypatch.setenv("RUNG_TEST_KEY", "sk-wrong")
    with pytest.raises(EndpointError, match=r"answered 401 Unauthorized: invalid api key"):
        _model(stub, api_key_env="RUNG_TEST_KEY").generate([_ask("secret")])


def test_concurrency_is_bounded_and_order_kept(stub: Stub) -> None:
    stub.state.delay_s = 0.2
    seen: list[tuple[int, int]] = []
    requests = [_ask(f"question {i}") for i in range(9)]
    start = time.perf_counter()
    out = _model(stub, concurrency=3).generate(requests, progress=lambda d, t: seen.append((d, t)))
    elapsed = time.perf_counter() - start
    assert stub.state.max_in_flight == 3
    assert elapsed < 9 * 0.2  # the requests overlapped
    assert [c.text for c in out] == [f"echo: question {i} [model=stub-model]" for i in range(9)]
    assert seen[-1] == (9, 9) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_missing_usage_is_estimated(stub: Stub) -> None:
    stub.state.omit_usage = True
    [c] = _model(stub).generate([_ask("count me please")])
    assert c.extra["usage_estimated"] is True
    assert c.tokens_out == -(-len(c.text) // 4)
    assert c.tokens_in == -(-len("be brief count me please") // 4)


def test_streaming_measures_time_to_first_token(stub: Stub) -> None:
    model = OpenAIModel(stub.url, "stub-model", stream=True, timeout_s=5)
    [c] = model.generate([_ask("one two three four five six")])
    assert stub.state.requests[0]["stream"] is True
    expected, _ = answer_text(stub.state.requests[0])
    assert c.text == expected
    assert c.extra == {"ttft_measured": True}
    assert 0 < c.ttft_s < c.total_s
    assert c.tokens_out == len(expected.split())


def test_fingerprint_names_endpoint_model_and_adapter() -> None:
    a = OpenAIModel("http://127.0.0.1:1/v1/", "m")
    assert a.fingerprint() == OpenAIModel("http://127.0.0.1:1/v1", "m").fingerprint()
    prints = {a.fingerprint(), a.fingerprint("lora-a"), a.fingerprint("lora-b"),
              OpenAIModel("http://127.0.0.1:2/v1", "m").fingerprint(),
              OpenAIModel("http://127.0.0.1:1/v1", "n").fingerprint()}
    assert len(prints) == 5


def test_refused_connection_is_retried_once_the_server_has_answered() -> None:
    from openai_stub import StubState, serve

    with serve(StubState()) as url:
        model = OpenAIModel(url, "stub-model", max_retries=2, backoff_s=0.01, timeout_s=5)
        model.generate([_ask("up")])
    with pytest.raises(EndpointError, match=r"gave up after 3 attempts; last error: cannot reach .* "
                                            r"connection refused"):
        model.generate([_ask("down")])
