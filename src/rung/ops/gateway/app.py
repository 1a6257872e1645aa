"""The HTTP face of the gateway (FastAPI): OpenAI-compatible routes plus health, readiness,
metrics, feedback and trace lookup.

    POST /v1/chat/completions   OpenAI chat completions (stream: SSE; response_format json_schema)
    GET  /v1/models             the models this key's tenant may use
    POST /v1/feedback           {trace_id, labels, comment?}: human labels on a trace
    GET  /v1/traces/{id}        the stored trace (PII redacted), only for its own tenant
    GET  /healthz               the process is up
    GET  /readyz                models loaded and the store reachable (503 otherwise)
    GET  /metrics               Prometheus text format

Every error is OpenAI-shaped ({"error": {message, type, code, param}}); an unexpected exception
becomes a 500 naming a reference id, never a stack trace (that goes to the server's log).
"""

from __future__ import annotations

import logging
import os
import secrets
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rung.ops.gateway.protocol import (
    GatewayError,
    completion_body,
    parse_chat,
    stream_events,
)
from rung.ops.gateway.service import Gateway

log = logging.getLogger("rung.gateway")

CONFIG_ENV = "RUNG_SERVE_CONFIG"


def _error(e: GatewayError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status, headers=e.headers)


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None:
        try:
            if int(length) > limit:
                raise GatewayError(413, f"the request body is larger than {limit} bytes", "request_too_large")
        except ValueError:
            raise GatewayError(400, "invalid Content-Length", "invalid_request") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise GatewayError(413, f"the request body is larger than {limit} bytes", "request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(gateway: Gateway, *, start: bool = True) -> FastAPI:
    """The app over a Gateway; `start` loads the targets in the background when the app starts."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if start:
            gateway.start(background=True)
        try:
            yield
        finally:
            gateway.close()

    app = FastAPI(title="rung gateway", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.gateway = gateway
    limits = gateway.serving.limits

    @app.exception_handler(GatewayError)
    async def _gateway_error(_request: Request, exc: GatewayError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(GatewayError(exc.status_code, str(exc.detail), code))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, _exc: RequestValidationError) -> JSONResponse:
        return _error(GatewayError(400, "invalid request", "invalid_request"))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        ref = secrets.token_hex(6)
        log.error("internal error %s", ref, exc_info=exc)
        return _error(GatewayError(500, f"internal error (reference {ref})", "internal_error", "server_error"))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Response:
        if gateway.load_error:
            return JSONResponse({"status": "failed", "error": gateway.load_error}, status_code=503)
        if not gateway.ready:
            return JSONResponse({"status": "loading"}, status_code=503)
        try:
            gateway.traces.count()
        except Exception:  # noqa: BLE001 - the store is what we cannot reach
            return JSONResponse({"status": "store unavailable"}, status_code=503)
        return JSONResponse({"status": "ready", "models": [t.name for t in gateway.resolver.targets()]})

    @app.get("/metrics")
    async def metrics() -> Response:
        from rung.ops.gateway.metrics import CONTENT_TYPE_LATEST

        return Response(gateway.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        key = gateway.authenticate(request.headers.get("authorization"))
        import asyncio

        listed = await asyncio.get_running_loop().run_in_executor(gateway.executor, gateway.resolver.models,
                                                                   key.tenant)
        return {"object": "list", "data": [{"object": "model", "created": 0, **m} for m in listed]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        key = gateway.authenticate(request.headers.get("authorization"))
        gateway.check_rate(key)
        raw = await _read_body(request, limits.max_body_bytes)
        req = parse_chat(raw, limits.max_messages, limits.max_input_chars)
        outcome = await gateway.chat(key, req)
        headers = {"x-rung-trace-id": outcome.trace_id, "x-rung-release": outcome.target.label_release}
        if req.stream:
            include_usage = bool((req.stream_options or {}).get("include_usage"))
            events = stream_events(outcome, include_usage)

            async def gen():
                for e in events:
                    yield e

            return StreamingResponse(gen(), media_type="text/event-stream",
                                     headers={**headers, "Cache-Control": "no-cache"})
        return JSONResponse(completion_body(outcome), headers=headers)

    @app.post("/v1/feedback")
    async def feedback(request: Request) -> dict[str, Any]:
        import json

        key = gateway.authenticate(request.headers.get("authorization"))
        gateway.check_rate(key)
        raw = await _read_body(request, 64_000)
        try:
            body = json.loads(raw or b"")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise GatewayError(400, "the request body is not valid JSON", "invalid_json") from None
        if not isinstance(body, dict):
            raise GatewayError(400, "the request body must be a JSON object", "invalid_json")
        import asyncio

        return await asyncio.get_running_loop().run_in_executor(gateway.executor, gateway.feedback, key, body)

    @app.get("/v1/traces/{trace_id}")
    async def trace(trace_id: str, request: Request) -> Response:
        key = gateway.authenticate(request.headers.get("authorization"))
        row = gateway.get_trace(key, trace_id)
        from rung.evals.store import dumps

        return Response(dumps(row), media_type="application/json")

    return app


def create_app_from_env() -> FastAPI:
    """For `uvicorn --factory` and `rung serve --workers N`: the project file from $RUNG_SERVE_CONFIG."""
    from rung.config import load_config

    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise RuntimeError(f"{CONFIG_ENV} is not set (the rung.yaml to serve)")
    return create_app(Gateway(load_config(path)))
