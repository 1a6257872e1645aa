"""Guardrails for served candidates (rung.yaml `guardrails:`): input checks (prompt-injection
classifier, PII redaction, refusal gate) and output checks (schema, citations, safety, size),
each with an action (block / redact / flag), a reason code and a counter in the gateway."""

from rung.ops.guardrails.engine import GuardEvent, Guardrails, InputResult, OutputResult

__all__ = ["GuardEvent", "Guardrails", "InputResult", "OutputResult"]
