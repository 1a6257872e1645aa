"""What rollouts, monitoring, drift and refresh read from live traffic: one `TraceRecord` per
answered request (and per shadow answer), independent of how the gateway stores its traces.

The gateway's trace rows are mapped to these records in one place (`rung.ops.tracesource`), so
the judge, the alert rules, the drift report and the refresh loop are pure functions over lists
of records and are tested without a server.

Labels: every quality label is a rate of a bad thing (1 = it happened, 0 = it did not, None =
not measured). Human feedback overrides the online (reference-free scorer) label of the same
name. Derived labels need feedback: `over_refusal` (refused a request a human says should be
answered) and `under_refusal` (answered one that should be refused).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

STABLE, CANARY, SHADOW = "stable", "canary", "shadow"

# online label names as the scorers write them -> (our name, invert?)
_SCORER_NAMES: dict[str, tuple[str, bool]] = {
    "refused": ("refused", False),
    "refusal": ("refused", False),
    "hallucination": ("hallucination", False),
    "citation_correct": ("citation_failure", True),
    "citation_failure": ("citation_failure", False),
    "safety_violation": ("safety_violation", False),
    "schema_valid": ("schema_invalid", True),
    "schema_invalid": ("schema_invalid", False),
    "should_refuse": ("should_refuse", False),
    "over_refusal": ("over_refusal", False),
    "under_refusal": ("under_refusal", False),
}


def normalise_labels(raw: dict[str, Any] | None) -> dict[str, float | None]:
    """Scorer / feedback label names and values -> our names, 0/1 floats (None kept).

    `citation_correct` 0.75 becomes `citation_failure` 1 (any failed citation counts), `true` /
    `false` become 1 / 0; unknown names are kept as they are (numbers only)."""
    out: dict[str, float | None] = {}
    for name, value in (raw or {}).items():
        ours, invert = _SCORER_NAMES.get(name, (name, False))
        v = _as_float(value)
        if v is None:
            out.setdefault(ours, None)
            continue
        if invert:
            v = 0.0 if v >= 1.0 else 1.0
        out[ours] = v
    return out


def _as_float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "yes", "1"):
            return 1.0
        if low in ("false", "no", "0"):
            return 0.0
    return None


@dataclass
class TraceRecord:
    """One answered request as the ops layer sees it."""

    id: str  # the trace id
    request_id: str  # the same for a live answer and its shadow copy: pairs them
    ts: float  # when the request arrived (unix seconds)
    release: str = ""
    channel: str = ""
    arm: str = STABLE  # stable | canary | shadow
    tenant: str | None = None
    user: str | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float | None = None  # currency units for this request
    error: bool = False
    labels: dict[str, float | None] = field(default_factory=dict)  # online (scorers)
    feedback: dict[str, float | None] = field(default_factory=dict)  # human
    guardrails: list[dict[str, Any]] = field(default_factory=list)  # {"kind", "action", ...}
    retrieved: list[str] = field(default_factory=list)  # document ids
    citations: list[str] = field(default_factory=list)  # chunk or document ids the answer cites
    documents: dict[str, str] = field(default_factory=dict)  # doc id -> version it had
    input: str = ""  # the (redacted) question
    messages: list[dict[str, str]] = field(default_factory=list)  # the (redacted) conversation
    output: str = ""  # the (redacted) answer
    metadata: dict[str, Any] = field(default_factory=dict)  # jurisdiction, product, language, tags

    def label(self, name: str) -> float | None:
        """The value of a quality label: feedback first, then the online label; derived ones
        (over_refusal, under_refusal) from `refused` and the feedback's `should_refuse`."""
        fb = normalise_labels(self.feedback)
        if name in fb and fb[name] is not None:
            return fb[name]
        if name in ("over_refusal", "under_refusal"):
            refused = self.label("refused")
            should = fb.get("should_refuse")
            if refused is None or should is None:
                return None
            if name == "over_refusal":
                return 1.0 if (refused >= 0.5 and should < 0.5) else 0.0
            return 1.0 if (refused < 0.5 and should >= 0.5) else 0.0
        return normalise_labels(self.labels).get(name)

    @property
    def blocked(self) -> bool:
        """A guardrail blocked the request or its answer."""
        return any(e.get("action") == "block" for e in self.guardrails)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> TraceRecord:
        known = set(TraceRecord.__dataclass_fields__)
        return TraceRecord(**{k: v for k, v in d.items() if k in known})


def rate(records: Iterable[TraceRecord], name: str) -> tuple[int, int]:
    """(how many have the bad thing, how many measured) of a label, or of "error"."""
    bad = n = 0
    for r in records:
        v = (1.0 if r.error else 0.0) if name == "error" else r.label(name)
        if v is None:
            continue
        n += 1
        bad += v >= 0.5
    return bad, n


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (linear interpolation, like numpy), None for no values."""
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    k = (len(vals) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    if lo == hi:
        return float(vals[int(k)])
    return float(vals[lo] + (vals[hi] - vals[lo]) * (k - lo))


def latencies(records: Iterable[TraceRecord]) -> list[float]:
    """Latencies of the answered (not errored) requests."""
    return [r.latency_ms for r in records if r.latency_ms is not None and not r.error]


def costs(records: Iterable[TraceRecord]) -> list[float]:
    return [r.cost for r in records if r.cost is not None]
