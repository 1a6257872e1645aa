"""The `openai` backend: any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama,
LoRAX, OpenAI itself), reached with httpx.

- A batch is answered by a small thread pool: at most `concurrency` requests are in flight.
- An adapter is selected the way vLLM and LoRAX do it: the request's `model` field carries the
  adapter name; without an adapter it carries the configured model name. Any name is forwarded,
  so `adapters()` is empty: the endpoint decides what exists.
- 429, 5xx, timeouts and dropped connections are retried with exponential backoff and jitter
  (a `Retry-After` header wins, capped at `MAX_BACKOFF_S`). A refused connection is retried only
  once the endpoint has answered at least once: before that it almost always means the server
  is not running, and saying so at once beats waiting.
- Any other 4xx, or a malformed answer, raises EndpointError at once; the first failure in a
  batch stops the rest of the batch.
- Timing: without streaming the server's time to first token cannot be seen, so
  `ttft_s == total_s` and `extra["ttft_measured"]` is False. With `stream=True` the answer is read
  as server-sent events and `ttft_s` is the time to the first content token.
- Usage comes from the answer's `usage` field; when a server leaves it out, tokens are estimated
  (about 4 characters a token) and `extra["usage_estimated"]` is True.
- `fingerprint()` hashes the base URL and the model/adapter name only: an endpoint's weights are
  opaque to rung, so a redeployed model behind the same name and URL hits the same cache entries
  (clear the cache, or change the name, when you swap the weights).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import math
import os
import random
import threading
import time
import weakref
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import httpx

from rung.config import ModelConfig
from rung.errors import EndpointError
from rung.models.base import Completion, GenRequest, ProgressCallback

MAX_BACKOFF_S = 30.0
"""Upper bound of one wait between attempts (also caps a server's Retry-After)."""

_CHARS_PER_TOKEN = 4


class _Retryable(Exception):
    """One attempt failed in a way worth retrying."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass
class _Reply:
    text: str
    finish_reason: str | None
    usage: dict[str, Any] | None
    ttft_s: float | None


class OpenAIModel:
    """A Model over an OpenAI-compatible `/chat/completions` endpoint."""

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None,
                 concurrency: int = 4, timeout_s: float = 60.0, max_retries: int = 3,
                 backoff_s: float = 0.5, stream: bool = False) -> None:
        if concurrency < 1:
            raise EndpointError(f"concurrency must be at least 1, got {concurrency}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.stream = stream
        self.url = f"{self.base_url}/chat/completions"
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        weakref.finalize(self, self._client.close)  # also closed when the model is dropped
        self._reached = False  # set once the endpoint has answered anything
        self._rng = random.Random()

    @classmethod
    def from_config(cls, cfg: ModelConfig, *, backoff_s: float = 0.5,
                    stream: bool = False) -> OpenAIModel:
        """Build from a `backend: openai` model of rung.yaml. The API key is read from the
        environment variable that `api_key_env` names."""
        if not cfg.base_url or not cfg.model:
            raise EndpointError("backend 'openai' needs base_url and model")
        api_key = None
        if cfg.api_key_env:
            api_key = os.environ.get(cfg.api_key_env)
            if not api_key:
                raise EndpointError(
                    f"api_key_env names {cfg.api_key_env!r} but that environment variable is "
                    f"not set (export {cfg.api_key_env}=... for {cfg.base_url})")
        return cls(cfg.base_url, cfg.model, api_key=api_key, concurrency=cfg.concurrency,
                   timeout_s=cfg.timeout_s, max_retries=cfg.max_retries, backoff_s=backoff_s,
                   stream=stream)

    # ------------------------------------------------------------------ Model protocol

    @property
    def model_id(self) -> str:
        return self.model

    def fingerprint(self, adapter: str | None = None) -> str:
        """sha256 of base URL + model name + adapter name (the endpoint's weights are opaque)."""
        blob = "\n".join(["openai", self.base_url, self.model, adapter or ""]).encode()
        return hashlib.sha256(blob).hexdigest()

    def adapters(self) -> list[str]:
        return []

    def generate(self, requests: list[GenRequest],
                 progress: ProgressCallback | None = None) -> list[Completion]:
        """Answer every request, in order, with at most `concurrency` in flight."""
        total = len(requests)
        if total == 0:
            return []
        if total == 1:  # one request (the gateway's case): on this thread, no pool to start
            completion = self._complete(requests[0], threading.Event())
            if progress is not None:
                progress(1, 1)
            return [completion]
        abort = threading.Event()
        results: list[Completion | None] = [None] * total
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, total),
                                  thread_name_prefix="rung-openai")
        try:
            futures: dict[Future[Completion], int] = {
                pool.submit(self._complete, req, abort): i for i, req in enumerate(requests)}
            pending = set(futures)
            done_count = 0
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for fut in done:
                    err = fut.exception()
                    if err is not None:
                        abort.set()
                        raise err
                    results[futures[fut]] = fut.result()
                    done_count += 1
                if progress is not None:
                    progress(done_count, total)
        finally:
            abort.set()
            pool.shutdown(wait=False, cancel_futures=True)
        return [c for c in results if c is not None]

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpenAIModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ one request

    def _body(self, request: GenRequest) -> dict[str, Any]:
        p = request.params
        body: dict[str, Any] = {
            "model": request.adapter or self.model,
            "messages": [dict(m) for m in request.messages],
            "max_tokens": p.max_new_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "seed": p.seed,
        }
        if p.stop:
            body["stop"] = list(p.stop)
        if p.json_schema is not None:  # structured outputs (OpenAI, vLLM guided decoding)
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "answer", "schema": json.loads(p.json_schema), "strict": True}}
        if p.repetition_penalty != 1.0:  # vLLM, llama.cpp and LoRAX accept it as an extra field
            body["repetition_penalty"] = p.repetition_penalty
        if self.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def _complete(self, request: GenRequest, abort: threading.Event) -> Completion:
        body = self._body(request)
        attempts = self.max_retries + 1
        last = ""
        for attempt in range(attempts):
            if abort.is_set():
                raise EndpointError(f"{self.url}: batch stopped after another request failed")
            start = time.perf_counter()
            try:
                reply = self._post_stream(body, start) if self.stream else self._post(body)
            except _Retryable as r:
                last = r.reason
                if attempt + 1 < attempts:
                    abort.wait(self._delay(attempt, r.retry_after))
                continue
            total_s = time.perf_counter() - start
            return self._completion(request, reply, total_s, attempt + 1)
        raise EndpointError(f"{self.url}: gave up after {attempts} attempt"
                            f"{'s' if attempts > 1 else ''}; last error: {last}")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), MAX_BACKOFF_S)
        ceiling = min(MAX_BACKOFF_S, self.backoff_s * (2 ** attempt))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def _post(self, body: dict[str, Any]) -> _Reply:
        try:
            resp = self._client.post(self.url, json=body)
        except httpx.HTTPError as e:
            raise self._transport_error(e) from None
        self._reached = True
        self._check_status(resp)
        payload = self._json(resp.text)
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise EndpointError(f"{self.url}: answer has no choices: {_one_line(resp.text)}")
        message = choices[0].get("message") or {}
        return _Reply(text=message.get("content") or "", finish_reason=choices[0].get("finish_reason"),
                      usage=payload.get("usage"), ttft_s=None)

    def _post_stream(self, body: dict[str, Any], start: float) -> _Reply:
        parts: list[str] = []
        ttft: float | None = None
        finish: str | None = None
        usage: dict[str, Any] | None = None
        try:
            with self._client.stream("POST", self.url, json=body) as resp:
                self._reached = True
                if resp.status_code >= 400:
                    resp.read()
                    self._check_status(resp)
                for line in resp.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[len("data:"):].strip()
                    if data == "[DONE]":
                        break
                    chunk = self._json(data)
                    if chunk.get("usage"):
                        usage = chunk["usage"]
                    for choice in chunk.get("choices") or []:
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            if ttft is None:
                                ttft = time.perf_counter() - start
                            parts.append(piece)
                        finish = choice.get("finish_reason") or finish
        except httpx.HTTPError as e:
            raise self._transport_error(e) from None
        return _Reply(text="".join(parts), finish_reason=finish, usage=usage, ttft_s=ttft)

    def _transport_error(self, e: httpx.HTTPError) -> Exception:
        if isinstance(e, httpx.TimeoutException):
            return _Retryable(f"no answer within {self.timeout_s:g} s (timeout_s): "
                              f"{type(e).__name__}")
        if isinstance(e, httpx.ConnectError):
            refused = "refused" in str(e).lower()
            what = "connection refused" if refused else _one_line(str(e)) or type(e).__name__
            if not self._reached:
                hint = " (is the server running?)" if refused else " (check base_url)"
                return EndpointError(f"cannot reach {self.url}: {what}{hint}")
            return _Retryable(f"cannot reach {self.url}: {what}")
        return _Retryable(f"{type(e).__name__}: {_one_line(str(e))}")

    def _check_status(self, resp: httpx.Response) -> None:
        status = resp.status_code
        if status < 400:
            return
        message = _server_message(resp)
        if status == 429 or status >= 500:
            raise _Retryable(f"{status} {resp.reason_phrase}: {message}",
                             _retry_after(resp.headers.get("retry-after")))
        hint = " (check base_url: it usually ends in /v1)" if status == 404 else ""
        raise EndpointError(f"{self.url} answered {status} {resp.reason_phrase}: {message}{hint}")

    def _json(self, text: str) -> dict[str, Any]:
        try:
            payload = json.loads(text)
        except json.JSONDecodeError:
            raise EndpointError(f"{self.url}: answer is not JSON: {_one_line(text)}") from None
        if not isinstance(payload, dict):
            raise EndpointError(f"{self.url}: answer is not a JSON object: {_one_line(text)}")
        return payload

    def _completion(self, request: GenRequest, reply: _Reply, total_s: float,
                    attempts: int) -> Completion:
        extra: dict[str, Any] = {"ttft_measured": reply.ttft_s is not None}
        usage = reply.usage if isinstance(reply.usage, dict) else {}
        tokens_in = usage.get("prompt_tokens")
        tokens_out = usage.get("completion_tokens")
        if not isinstance(tokens_in, int) or not isinstance(tokens_out, int):
            tokens_in = _estimate_tokens(" ".join(m.get("content", "") for m in request.messages))
            tokens_out = _estimate_tokens(reply.text)
            extra["usage_estimated"] = True
        finish = "length" if reply.finish_reason == "length" else "stop"
        if reply.finish_reason not in (None, "stop", "length"):
            extra["finish_reason_raw"] = reply.finish_reason
        if attempts > 1:
            extra["attempts"] = attempts
        return Completion(
            text=reply.text, tokens_in=tokens_in, tokens_out=tokens_out,
            ttft_s=reply.ttft_s if reply.ttft_s is not None else total_s, total_s=total_s,
            model_id=self.model_id, adapter=request.adapter, finish_reason=finish, extra=extra)


def _estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / _CHARS_PER_TOKEN)


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


def _server_message(resp: httpx.Response) -> str:
    """The error message from an OpenAI-style ({"error": {"message"}}) or FastAPI-style
    ({"detail"}) body, else the body's text."""
    try:
        payload = resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _one_line(resp.text) or "(empty body)"
    if isinstance(payload, dict):
        err = payload.get("error")
        if isinstance(err, dict) and err.get("message"):
            return _one_line(str(err["message"]))
        if isinstance(err, str):
            return _one_line(err)
        if payload.get("detail"):
            return _one_line(str(payload["detail"]))
        if payload.get("message"):
            return _one_line(str(payload["message"]))
    return _one_line(resp.text) or "(empty body)"


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
