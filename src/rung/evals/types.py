"""Cases and scores: what a suite contains and what a scorer returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rung.models.base import Message


@dataclass
class Case:
    """One eval case. Either `input` (question form) or `messages` (chat form) is set."""

    id: str
    input: str | None = None
    messages: list[Message] | None = None
    reference: str | None = None
    should_refuse: bool | None = None
    sources: list[str] = field(default_factory=list)
    schema: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    file: str = ""  # where it was loaded from, for error messages
    line: int = 0

    @property
    def question(self) -> str:
        """The user's (last) question, whatever the form."""
        if self.input is not None:
            return self.input
        for m in reversed(self.messages or []):
            if m.get("role") == "user":
                return m.get("content", "")
        return ""

    def chat(self) -> list[Message]:
        """The conversation to send (without any system prompt of the candidate)."""
        if self.messages is not None:
            return [dict(m) for m in self.messages]
        return [{"role": "user", "content": self.input or ""}]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Score:
    """One measurement of one answer.

    value is None means "not measured" (no judge configured, the judge did not answer, the case
    has nothing to compare with): it is never counted as a pass or a fail, and never as NaN.
    For rates, value is 1.0 / 0.0; `higher_is_better` says which way is good.
    """

    name: str
    value: float | None
    higher_is_better: bool = True
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def measured(self) -> bool:
        return self.value is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def not_measured(name: str, reason: str, higher_is_better: bool = True) -> Score:
        return Score(name=name, value=None, higher_is_better=higher_is_better, reason=reason)


@dataclass
class CaseResult:
    """One case answered and scored (once per epoch)."""

    case: Case
    answer: Any  # rung.pipeline.answer.Answer
    scores: list[Score] = field(default_factory=list)
    epoch: int = 0

    def score(self, name: str) -> Score | None:
        for s in self.scores:
            if s.name == name:
                return s
        return None


@dataclass
class RunInfo:
    """What identifies a run: which candidate (hash + full config) on which suite (hash)."""

    id: str
    candidate: str
    candidate_hash: str
    candidate_config: dict[str, Any]
    suite: str
    suite_hash: str
    level: int = 0
    model_id: str = ""
    created_at: str = ""  # ISO 8601, UTC
    finished_at: str | None = None
    status: str = "running"  # running | finished | failed
    epochs: int = 1
    git_commit: str | None = None
    project: str = ""
    price_in_per_1k: float = 0.0
    price_out_per_1k: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    info: RunInfo
    results: list[CaseResult] = field(default_factory=list)
