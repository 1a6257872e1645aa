"""What the harness records: a case answered and scored, and the run it belongs to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rung.core import Case, Score


@dataclass
class CaseResult:
    """One case answered and scored (once per epoch)."""

    case: Case
    answer: Any  # rung.core.Answer
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
