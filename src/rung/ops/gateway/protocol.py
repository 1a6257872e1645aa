"""OpenAI request and response shapes (chat completions), as the gateway reads and writes them.

Requests are validated with pydantic (unknown fields are accepted and ignored, as OpenAI
clients send many); what rung cannot honour is a 400 with a clear message (n > 1, client-side
tools, images). Responses are plain dicts in OpenAI's shapes with one extra field, `rung`
(release, trace id, citations, guardrail events), which clients ignore.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rung.errors import RungError


class GatewayError(RungError):
    """An error answered to the client in OpenAI's error shape."""

    def __init__(self, status: int, message: str, code: str, type_: str = "invalid_request_error",
                 param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.type = type_
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for p in self.content:
            if p.get("type") != "text" or not isinstance(p.get("text"), str):
                raise GatewayError(400, f"message content part of type {p.get('type')!r} is not supported "
                                   "(text only)", "unsupported_content", param="messages")
            parts.append(p["text"])
        return "\n".join(parts)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = ""
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int | None = None
    tools: list[Any] | None = None
    user: str | None = None

    @field_validator("metadata")
    @classmethod
    def _flat_metadata(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return v
        if len(v) > 32:
            raise ValueError("at most 32 metadata keys")
        for k, val in v.items():
            if not isinstance(val, (str, int, float, bool)) or len(str(val)) > 512 or len(k) > 64:
                raise ValueError(f"metadata[{k!r}]: a string, number or boolean of at most 512 characters")
        return v

    def chat(self) -> list[dict[str, str]]:
        """The conversation as rung messages ("developer" is OpenAI's new name for "system")."""
        out = []
        for m in self.messages:
            role = "system" if m.role == "developer" else m.role
            if role == "tool":
                raise GatewayError(400, "tool messages are not supported: the served release runs its own "
                                   "tools", "unsupported_parameter", param="messages")
            out.append({"role": role, "content": m.text()})
        return out

    def schema(self) -> tuple[str | None, dict[str, Any] | None]:
        """(name, JSON Schema) the answer must follow, from response_format; (None, None) for text."""
        rf = self.response_format
        if not rf or rf.get("type") in (None, "text"):
            return None, None
        if rf.get("type") == "json_object":
            return None, {"type": "object"}
        if rf.get("type") == "json_schema":
            js = rf.get("json_schema") or {}
            schema = js.get("schema")
            if not isinstance(schema, dict):
                raise GatewayError(400, "response_format.json_schema.schema must be a JSON Schema object",
                                   "invalid_response_format", param="response_format")
            return js.get("name"), schema
        raise GatewayError(400, f"response_format type {rf.get('type')!r} is not supported "
                           "(text, json_object, json_schema)", "invalid_response_format", param="response_format")


def parse_chat(raw: bytes, max_messages: int, max_input_chars: int) -> ChatRequest:
    """The request body as a ChatRequest; GatewayError 400 with the first problem."""
    try:
        data = json.loads(raw or b"")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise GatewayError(400, "the request body is not valid JSON", "invalid_json") from None
    if not isinstance(data, dict):
        raise GatewayError(400, "the request body must be a JSON object", "invalid_json")
    try:
        req = ChatRequest.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        raise GatewayError(400, f"{where}: {err.get('msg', 'invalid')}", "invalid_request",
                           param=where or None) from None
    if req.n not in (None, 1):
        raise GatewayError(400, "n > 1 is not supported", "unsupported_parameter", param="n")
    if req.tools:
        raise GatewayError(400, "client-side tools are not supported: the served release runs its own tools",
                           "unsupported_parameter", param="tools")
    if len(req.messages) > max_messages:
        raise GatewayError(400, f"at most {max_messages} messages per request", "too_many_messages",
                           param="messages")
    total = sum(len(m["content"]) for m in req.chat())
    if total > max_input_chars:
        raise GatewayError(413, f"the messages have {total} characters; the limit is {max_input_chars}",
                           "input_too_long", param="messages")
    if not any(m.role == "user" for m in req.messages):
        raise GatewayError(400, "the messages need at least one user message", "invalid_request",
                           param="messages")
    return req


# ---------------------------------------------------------------- responses

def completion_body(outcome: Any) -> dict[str, Any]:
    return {
        "id": outcome.completion_id,
        "object": "chat.completion",
        "created": outcome.created,
        "model": outcome.target.name,
        "system_fingerprint": outcome.target.label_release,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": outcome.text, "refusal": None},
                     "logprobs": None, "finish_reason": outcome.finish_reason}],
        "usage": outcome.usage(),
        "rung": outcome.rung_extra(),
    }


def stream_events(outcome: Any, include_usage: bool, piece_chars: int = 24) -> list[str]:
    """The answer as server-sent events: a role chunk, content chunks (word groups), the finish
    chunk (with the `rung` field), the usage chunk when asked, [DONE]."""
    base = {"id": outcome.completion_id, "object": "chat.completion.chunk", "created": outcome.created,
            "model": outcome.target.name, "system_fingerprint": outcome.target.label_release}

    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        return "data: " + json.dumps({**base, "choices": choices, **extra}, ensure_ascii=False) + "\n\n"

    out = [event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
    for piece in _pieces(outcome.text, piece_chars):
        out.append(event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}]))
    out.append(event([{"index": 0, "delta": {}, "finish_reason": outcome.finish_reason}], rung=outcome.rung_extra()))
    if include_usage:
        out.append(event([], usage=outcome.usage()))
    out.append("data: [DONE]\n\n")
    return out


def _pieces(text: str, size: int) -> list[str]:
    """Consecutive pieces of about `size` characters, cut after whitespace; they join to `text`."""
    pieces, cur = [], ""
    for token in re.findall(r"\S+\s*|\s+", text):
        cur += token
        if len(cur) >= size:
            pieces.append(cur)
            cur = ""
    if cur:
        pieces.append(cur)
    return pieces


def now_s() -> int:
    return int(time.time())
