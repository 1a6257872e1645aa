"""What a pipeline returns for one input: the answer, its citations and a full trace."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rung.core.request import Message


@dataclass
class RetrievedChunk:
    """A chunk of a source document that retrieval put in the prompt."""

    id: str  # stable chunk id, e.g. "refunds-eu#3"
    doc_id: str  # the document it comes from (what a case's `sources` names)
    text: str
    score: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]
    result: str
    error: str | None = None
    duration_ms: float = 0.0


@dataclass
class Trace:
    """Everything that led to an answer: the exact prompt, what was retrieved, tools called."""

    prompt: list[Message] = field(default_factory=list)
    retrieved: list[RetrievedChunk] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # free-form steps (retries, ...)


@dataclass
class Answer:
    """A candidate's answer to one input."""

    text: str
    citations: list[str] = field(default_factory=list)  # chunk or doc ids the answer cites
    parsed: Any = None  # the validated structured output, when the candidate has a schema
    trace: Trace = field(default_factory=Trace)
    tokens_in: int = 0
    tokens_out: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)  # retrieve/generate/validate/tools/total
    model_id: str = ""
    adapter: str | None = None
    cached: bool = False
    error: str | None = None  # the pipeline failed for this input (the answer text may be empty)

    @property
    def latency_ms(self) -> float:
        return self.timings_ms.get("total", sum(self.timings_ms.values()))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Answer:
        t = d.get("trace") or {}
        trace = Trace(
            prompt=list(t.get("prompt", [])),
            retrieved=[RetrievedChunk(**c) for c in t.get("retrieved", [])],
            tool_calls=[ToolCall(**c) for c in t.get("tool_calls", [])],
            events=list(t.get("events", [])),
        )
        return Answer(**{**d, "trace": trace})
