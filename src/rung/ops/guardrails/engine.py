"""The guardrails of one served candidate: input checks before the pipeline, output checks on
its answer. Each check emits a `GuardEvent` (guardrail, action, reason code, detail) that the
gateway counts, stores in the trace and returns in the response; a blocking event turns the
answer into the configured refusal.

Input:  injection (classifier) -> pii (redact / block / flag) -> refusal gate (the candidate's)
Output: schema -> citations (exist, retrieved, support; required) -> safety -> size
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rung.config.serving import GuardrailsConfig
from rung.core import Answer, Case, Message

# reason codes, as they appear in responses, traces and metrics
PROMPT_INJECTION = "prompt_injection"
PII_IN_REQUEST = "pii"
REFUSAL_GATE = "refusal_gate"
SCHEMA_INVALID = "schema_invalid"
CITATION_INVALID = "citation_invalid"
UNCITED_ANSWER = "uncited_answer"
UNSAFE_OUTPUT = "unsafe_output"
OUTPUT_TOO_LONG = "output_too_long"


@dataclass
class GuardEvent:
    guardrail: str  # injection | pii | refusal_gate | schema | citations | safety | output_size
    action: str  # block | redact | flag
    reason: str  # one of the reason codes above
    stage: str  # input | output
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def blocks(self) -> bool:
        return self.action == "block"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class InputResult:
    messages: list[Message]  # what the pipeline gets (redacted when pii action is redact)
    stored_messages: list[Message]  # what the trace stores (always redacted when pii is on)
    events: list[GuardEvent] = field(default_factory=list)

    @property
    def blocked(self) -> GuardEvent | None:
        return next((e for e in self.events if e.blocks), None)


@dataclass
class OutputResult:
    text: str
    citations: list[str]
    events: list[GuardEvent] = field(default_factory=list)

    @property
    def blocked(self) -> GuardEvent | None:
        return next((e for e in self.events if e.blocks), None)


class Guardrails:
    """The configured checks of one candidate. `refusal_gate` is the candidate's RefusalGate
    (moved here from its pipeline when `refusal_gate` is a guardrail); `injection` a factory of
    the shared InjectionClassifier."""

    def __init__(self, config: GuardrailsConfig | None, *, refusal_gate: Any = None,
                 injection: Callable[[], Any] | None = None, require_citations: bool = False,
                 pipeline_requires_citations: bool = False) -> None:
        self.config = config or GuardrailsConfig()
        self.refusal_gate = refusal_gate
        self._injection_factory = injection
        self._injection: Any = None
        self.require_citations = require_citations or bool(
            self.config.citations and self.config.citations.require)
        self.pipeline_requires_citations = pipeline_requires_citations

    @property
    def refusal_message(self) -> str:
        return self.config.refusal_message

    @property
    def enabled(self) -> list[str]:
        c = self.config
        names = ["injection", "pii", "refusal_gate", "citations", "safety", "output_schema", "output_size"]
        return [n for n in names if getattr(c, n) is not None]

    def warm(self) -> None:
        """Load what the checks need now (classifier, gate), not on the first request."""
        if self.config.injection is not None:
            self._classifier()
        if self.refusal_gate is not None and self.config.refusal_gate is not None:
            self.refusal_gate.fit()

    def _classifier(self) -> Any:
        if self._injection is None and self._injection_factory is not None:
            self._injection = self._injection_factory()
            self._injection.load()
        return self._injection

    # ------------------------------------------------------------ input

    def check_input(self, messages: Sequence[Message]) -> InputResult:
        msgs = [dict(m) for m in messages]
        result = InputResult(msgs, msgs)
        c = self.config
        if c.pii is not None:
            from rung.ops.guardrails.pii import redact_messages

            redacted, kinds = redact_messages(msgs, c.pii.kinds)
            result.stored_messages = redacted
            if kinds:
                counts = {k: kinds.count(k) for k in dict.fromkeys(kinds)}
                result.events.append(GuardEvent("pii", c.pii.action, PII_IN_REQUEST, "input",
                                                {"kinds": counts}))
                if c.pii.action == "redact":
                    result.messages = redacted
        if c.injection is not None:
            users = [m.get("content", "") for m in result.messages if m.get("role") == "user"]
            texts = users[-1:] if c.injection.scope == "last" else users
            texts = [t for t in texts if t.strip()]
            clf = self._classifier()
            if texts and clf is not None:
                probs = clf.probabilities(texts)
                top = max(probs)
                if top >= c.injection.threshold:
                    result.events.append(GuardEvent("injection", c.injection.action, PROMPT_INJECTION,
                                                    "input", {"p_injection": round(top, 4),
                                                              "threshold": c.injection.threshold}))
        if c.refusal_gate is not None and self.refusal_gate is not None and result.blocked is None:
            question = _last_user(result.messages)
            if question.strip():
                p = float(self.refusal_gate.probabilities([question])[0])
                threshold = self.refusal_gate.config.threshold
                if p >= threshold:
                    result.events.append(GuardEvent("refusal_gate", c.refusal_gate.action, REFUSAL_GATE,
                                                    "input", {"p_refuse": round(p, 4), "threshold": threshold}))
        return result

    # ------------------------------------------------------------ output

    def check_output(self, case: Case, answer: Answer, schema_expected: bool) -> OutputResult:
        c = self.config
        result = OutputResult(answer.text, list(answer.citations))
        if schema_expected and c.output_schema is not None and (answer.error or answer.parsed is None):
            result.events.append(GuardEvent("schema", c.output_schema.action, SCHEMA_INVALID, "output",
                                            {"error": (answer.error or "no valid JSON")[:300]}))
        self._citations(case, answer, result)
        if c.safety is not None:
            self._safety(case, answer, result)
        if c.output_size is not None and len(result.text) > c.output_size.max_chars:
            g = c.output_size
            result.events.append(GuardEvent("output_size", g.action, OUTPUT_TOO_LONG, "output",
                                            {"chars": len(result.text), "max_chars": g.max_chars}))
            if g.action == "redact":
                result.text = _cut(result.text, g.max_chars)
        return result

    def _citations(self, case: Case, answer: Answer, result: OutputResult) -> None:
        g = self.config.citations
        refused_by_pipeline = any(e.get("type") == "citations" and e.get("event") == "refused"
                                  for e in answer.trace.events)
        if refused_by_pipeline:  # the candidate's require_citations already replaced the answer
            why = next(e.get("reason", "") for e in answer.trace.events
                       if e.get("type") == "citations" and e.get("event") == "refused")
            result.events.append(GuardEvent("citations", "block", UNCITED_ANSWER, "output", {"why": why}))
            return
        if g is None:
            return
        from rung.text.refusal import detect_refusal

        if detect_refusal(answer.text).refused and not answer.citations:
            return  # a refusal or an abstention needs no source
        if answer.citations:
            from rung.evals.scorers.base import ScoreContext
            from rung.evals.scorers.citation import CitationScorer

            score = CitationScorer(use_embedder=False).score(case, answer, ScoreContext())[0]
            if score.value == 0.0:
                bad = [x for x in score.details.get("citations", [])
                       if not (x["exists"] and x["supported"] is not False)]
                result.events.append(GuardEvent("citations", g.action, CITATION_INVALID, "output",
                                                {"why": score.reason, "bad": [x["id"] for x in bad]}))
                return
        if self.require_citations:
            from rung.pipeline.citations import check_citations

            if not answer.citations or not check_citations(answer.citations, answer.trace.retrieved).valid:
                result.events.append(GuardEvent(
                    "citations", "block" if g.action == "block" else "flag", UNCITED_ANSWER, "output",
                    {"why": "the answer cites no retrieved source"}))

    def _safety(self, case: Case, answer: Answer, result: OutputResult) -> None:
        from rung.evals.scorers.safety import find_violations

        g = self.config.safety
        context = [m.get("content", "") for m in case.chat()] + [ch.text for ch in answer.trace.retrieved]
        findings = find_violations(result.text, context, g.categories, g.allow)
        if not findings:
            return
        cats = list(dict.fromkeys(f.category for f in findings))
        action = g.action
        if action == "redact":
            if cats == ["privacy"]:
                from rung.ops.guardrails.pii import redact

                result.text = redact(result.text).text
            else:
                action = "block"  # only personal data can be masked; harmful text is refused
        result.events.append(GuardEvent("safety", action, UNSAFE_OUTPUT, "output",
                                        {"categories": cats, "evidence": findings[0].evidence[:160]}))


def _last_user(messages: Sequence[Message]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return m.get("content", "")
    return ""


_SENTENCE_END = re.compile(r"[.!?\u3002](?=\s|$)")


def _cut(text: str, max_chars: int) -> str:
    """`text` cut to at most max_chars, at the last sentence end when there is one."""
    head = text[:max_chars]
    ends = [m.end() for m in _SENTENCE_END.finditer(head)]
    return head[:ends[-1]] if ends and ends[-1] > max_chars // 2 else head.rstrip() + "..."
