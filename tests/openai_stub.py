"""TEST FIXTURE: a tiny, deterministic OpenAI-compatible server (not a model, not for users).

It answers POST /v1/chat/completions with "echo: <last user message> [model=<model>]", truncated
to max_tokens words and cut at the first stop string, with usage counted in words. GET /v1/models
lists the one model it was started with. Knobs (on `StubState`, changeable between tests) make it
fail the first N requests with a status, wait before answering, require an API key or leave usage
out. It records every request body and the most requests it saw in flight at once.

`serve(state)` runs it with uvicorn on 127.0.0.1 (a free port) in a background thread.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse


@dataclass
class StubState:
    model: str = "stub-model"
    fail_first: int = 0  # the first N chat requests fail ...
    fail_status: int = 503  # ... with this status
    retry_after: str | None = None  # Retry-After header on those failures
    delay_s: float = 0.0  # wait before every chat answer
    api_key: str | None = None  # when set, "Authorization: Bearer <api_key>" is required
    omit_usage: bool = False
    replies: dict[str, str] = field(default_factory=dict)  # model (or adapter) name -> fixed answer
    # observed
    requests: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def reset(self, idle_timeout_s: float = 5.0) -> None:
        """Back to the defaults, once requests still being answered (say, after a client
        timeout) are done, so they do not count in the next test's records."""
        deadline = time.monotonic() + idle_timeout_s
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
        fresh = StubState()
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))

    @property
    def chat_calls(self) -> int:
        return len(self.requests)


def answer_text(body: dict[str, Any], replies: dict[str, str] | None = None) -> tuple[str, str]:
    """The stub's deterministic answer to a chat body (the fixed reply for its model name when
    one is set, else an echo of the last user message), and its finish reason."""
    users = [m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"]
    text = f"echo: {users[-1] if users else ''} [model={body.get('model')}]"
    if replies and body.get("model") in replies:
        text = replies[body["model"]]
    finish = "stop"
    for stop in body.get("stop") or []:
        if stop and stop in text:
            text = text[:text.index(stop)]
    words = text.split(" ")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int) and len(words) > max_tokens:
        text, finish = " ".join(words[:max_tokens]), "length"
    return text, finish


def _count(text: str) -> int:
    return len(text.split())


def make_app(state: StubState) -> FastAPI:
    app = FastAPI(title="rung test stub (OpenAI-compatible)")

    def unauthorized(request: Request) -> JSONResponse | None:
        if state.api_key and request.headers.get("authorization") != f"Bearer {state.api_key}":
            return JSONResponse({"error": {"message": "invalid api key", "type": "auth"}},
                                status_code=401)
        return None

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        return unauthorized(request) or JSONResponse(
            {"object": "list", "data": [{"id": state.model, "object": "model"}]})

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        denied = unauthorized(request)
        if denied:
            return denied
        body = await request.json()
        state.requests.append(body)
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            if state.delay_s:
                await asyncio.sleep(state.delay_s)
            if len(state.requests) <= state.fail_first:
                headers = {"Retry-After": state.retry_after} if state.retry_after is not None else {}
                return JSONResponse({"error": {"message": f"stub failure {len(state.requests)}"}},
                                    status_code=state.fail_status, headers=headers)
            if not body.get("messages"):
                return JSONResponse({"error": {"message": "messages must not be empty"}},
                                    status_code=400)
        finally:
            state.in_flight -= 1
        text, finish = answer_text(body, state.replies)
        prompt_tokens = sum(_count(m.get("content", "")) for m in body["messages"])
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": _count(text),
                 "total_tokens": prompt_tokens + _count(text)}
        if body.get("stream"):
            return StreamingResponse(_events(body, text, finish, usage),
                                     media_type="text/event-stream")
        payload: dict[str, Any] = {
            "id": f"chatcmpl-{len(state.requests)}", "object": "chat.completion",
            "created": int(time.time()), "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": finish}],
        }
        if not state.omit_usage:
            payload["usage"] = usage
        return JSONResponse(payload)

    async def _events(body: dict[str, Any], text: str, finish: str,
                      usage: dict[str, int]) -> Any:
        words = text.split(" ")
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            chunk = {"object": "chat.completion.chunk", "model": body.get("model"),
                     "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            yield f"data: {json.dumps(chunk)}\n\n"
            await asyncio.sleep(0.01)
        last = {"object": "chat.completion.chunk", "choices": [
            {"index": 0, "delta": {}, "finish_reason": finish}]}
        yield f"data: {json.dumps(last)}\n\n"
        if (body.get("stream_options") or {}).get("include_usage") and not state.omit_usage:
            yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
        yield "data: [DONE]\n\n"

    return app


@dataclass
class Stub:
    """A running stub: its base URL (ending in /v1) and its state (knobs and records)."""

    url: str
    state: StubState


@contextmanager
def serve(state: StubState, *, start_timeout_s: float = 10.0) -> Iterator[str]:
    """Run the stub on 127.0.0.1 (free port) in a thread; yields its base URL (".../v1")."""
    # proto must be IPPROTO_TCP (not 0): asyncio only turns Nagle off (TCP_NODELAY) on sockets
    # that say so, and with Nagle on every answer waits ~40 ms for a delayed ACK
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(make_app(state), log_level="warning", access_log=False,
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="openai-stub")
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"test stub did not start on port {port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()
