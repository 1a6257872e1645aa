"""What a user asks, and a case: a request plus what its answer is expected to be.

A `Request` is what live traffic has: the conversation (question form `input` or chat form
`messages`), metadata such as jurisdiction or product, the output schema it asks for, and the
tenant. A `Case` is a Request with expectations (reference answer, should_refuse, required
sources, tags) and where it was loaded from; the pipeline answers Requests, so the harness
passes its cases as they are.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

Message = dict[str, str]
"""One chat message: {"role": "system"|"user"|"assistant", "content": "..."}."""


@dataclass
class Request:
    """What a user asks. Either `input` (question form) or `messages` (chat form) is set."""

    id: str
    input: str | None = None
    messages: list[Message] | None = None
    schema: str | None = None  # the output schema the request asks for (a rung.yaml `schemas` name)
    metadata: dict[str, Any] = field(default_factory=dict)
    tenant: str | None = None

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
        d = asdict(self)
        if d.get("tenant") is None:  # keep suite hashes and stored cases as before tenants existed
            d.pop("tenant", None)
        return d


@dataclass
class Case(Request):
    """One eval case: a Request plus expectations."""

    reference: str | None = None
    should_refuse: bool | None = None
    sources: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    file: str = ""  # where it was loaded from, for error messages
    line: int = 0


def cases_hash(cases: Iterable[Case]) -> str:
    """sha256 of the canonical JSON of the cases' content (sorted by id, no file/line)."""
    payload = []
    for c in sorted(cases, key=lambda c: c.id):
        d = c.to_dict()
        d.pop("file", None)
        d.pop("line", None)
        payload.append(d)
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()
