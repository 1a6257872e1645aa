"""The Model protocol: chat messages in, text out, with usage and timing.

Every backend (local transformers, OpenAI-compatible endpoint) implements `Model`. Requests
are always handled in batches: a backend decides how to batch (padded batches locally,
bounded concurrency over HTTP).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable

from rung.core import Message

ProgressCallback = Callable[[int, int], None]
"""Called as progress(done, total) while a batch is being generated."""


@dataclass(frozen=True)
class GenerationParams:
    """Decoding parameters. temperature == 0 means greedy decoding."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    repetition_penalty: float = 1.0  # > 1 discourages repeating tokens (small models loop)
    json_schema: str | None = None  # constrained decoding: the output must follow this JSON Schema (JSON text)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stop"] = list(self.stop)
        for key, default in (("repetition_penalty", 1.0), ("json_schema", None)):
            if d[key] == default:  # keep the cache keys of requests that do not use them
                del d[key]
        return d


@dataclass(frozen=True)
class GenRequest:
    """One model call: messages, decoding parameters and `adapter`, an adapter resident on the
    model (None = base). Not to be confused with rung.core.Request, what a user asks."""

    messages: tuple[Message, ...]
    params: GenerationParams = GenerationParams()
    adapter: str | None = None

    @staticmethod
    def chat(messages: list[Message], params: GenerationParams | None = None,
             adapter: str | None = None) -> GenRequest:
        return GenRequest(tuple(dict(m) for m in messages), params or GenerationParams(), adapter)


@dataclass
class Completion:
    """The model's answer to one request, with usage and timing (seconds)."""

    text: str
    tokens_in: int
    tokens_out: int
    ttft_s: float
    total_s: float
    model_id: str
    adapter: str | None = None
    cached: bool = False
    finish_reason: str = "stop"  # "stop" | "length" | "error"
    error: str | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@runtime_checkable
class Model(Protocol):
    """What every backend provides."""

    @property
    def model_id(self) -> str:
        """A human-readable id (path, hub id or endpoint model name)."""
        ...

    def fingerprint(self, adapter: str | None = None) -> str:
        """A hash of everything about the model that changes outputs: weights (or endpoint +
        model name) and, when given, the adapter's weights. Used as the cache key's model part."""
        ...

    def adapters(self) -> list[str]:
        """Names of adapters that requests may select."""
        ...

    def generate(self, requests: list[GenRequest],
                 progress: ProgressCallback | None = None) -> list[Completion]:
        """Answer every request, in order."""
        ...


def request_key(fingerprint: str, request: GenRequest) -> str:
    """The cache key of a request: everything that changes the output, hashed."""
    payload = {
        "model": fingerprint,
        "messages": list(request.messages),
        "params": request.params.to_dict(),
        "adapter": request.adapter,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()
