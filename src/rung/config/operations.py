"""`rollout:`, `monitor:`, `drift:` and `refresh:`: what happens to a release after it ships.

- rollout: how a channel moves to a new release (canary weights or shadow traffic, steps,
  minimum requests and time per step) and the judge's thresholds (rung.ops.rollout);
- monitor: alert rules over sliding windows of the gateway's traces, where notifications go
  (rung.ops.monitor);
- drift: live inputs vs the eval suite (rung.ops.drift);
- refresh: labelled traces -> training examples -> the ladder's gates (rung.ops.refresh).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from rung.config import paths
from rung.config.base import _Strict

# the online quality labels a judge / monitor reads from traces; 1 = the bad thing happened
QUALITY_LABELS = ("refused", "over_refusal", "under_refusal", "hallucination", "citation_failure",
                  "safety_violation", "schema_invalid")


class LabelCheck(_Strict):
    """One online label in the rollout judge. `max_increase`: how much higher the canary's rate
    may be than the stable's before a significant difference fails the step (absolute, e.g.
    0.02 = two points). `two_sided`: a significant change in either direction beyond
    `max_increase` fails (the refusal rate: a release that stops refusing is as wrong as one that
    refuses everything). `max_count`: a hard cap on the canary's count (safety: 0)."""

    max_increase: float = Field(0.02, ge=0, le=1)
    two_sided: bool = False
    max_count: int | None = Field(None, ge=0)
    # required: fewer than judge.min_labelled measured values holds the step (inconclusive);
    # otherwise a label with too few values is reported and does not block
    required: bool = False


def _default_labels() -> dict[str, LabelCheck]:
    return {
        "refused": LabelCheck(max_increase=0.05, two_sided=True, required=True),
        "over_refusal": LabelCheck(max_increase=0.02),
        "under_refusal": LabelCheck(max_increase=0.02),
        "hallucination": LabelCheck(max_increase=0.02, required=True),
        "citation_failure": LabelCheck(max_increase=0.02),
        "safety_violation": LabelCheck(max_increase=0.0, max_count=0, required=True),
        "schema_invalid": LabelCheck(max_increase=0.01),
    }


class JudgeConfig(_Strict):
    """Stable vs canary at each step (rung.ops.rollout.judge). A metric fails when the canary is
    significantly worse (p < alpha, one-sided) by more than its tolerance; a difference beyond
    the tolerance that is not (yet) significant, or too few samples, is inconclusive."""

    alpha: float = Field(0.05, gt=0, lt=1)
    power: float = Field(0.8, gt=0, lt=1)  # for "how many more requests would decide it"
    min_requests: int = Field(50, ge=1)  # per arm (shadow: paired requests)
    min_labelled: int = Field(30, ge=1)  # per arm, requests with the label measured
    max_error_rate_increase: float = Field(0.01, ge=0, le=1)
    max_p50_ratio: float = Field(1.2, ge=1)
    max_p95_ratio: float = Field(1.25, ge=1)
    max_cost_ratio: float = Field(1.1, ge=1)
    labels: dict[str, LabelCheck] = Field(default_factory=_default_labels)

    @field_validator("labels")
    @classmethod
    def _known_labels(cls, v: dict[str, LabelCheck]) -> dict[str, LabelCheck]:
        unknown = sorted(set(v) - set(QUALITY_LABELS))
        if unknown:
            raise ValueError(f"unknown label(s) {unknown}; known: {', '.join(QUALITY_LABELS)}")
        return v


class RolloutConfig(_Strict):
    """`rung rollout start CHANNEL RELEASE`: canary (a share of live requests, sticky per tenant /
    user, answered by the new release) or shadow (the new release answers a copy of live
    requests; users always get the stable answer; paired tests). Steps are traffic percentages
    (canary) or mirrored percentages (shadow); the last step's success promotes the release."""

    mode: Literal["canary", "shadow"] = "canary"
    steps: list[float] = Field(default_factory=lambda: [5.0, 25.0, 50.0, 100.0])
    min_requests: int = Field(100, ge=1)  # per step, answered by the new release
    min_minutes: float = Field(10.0, ge=0)  # per step
    # a step still inconclusive after this long: hold (keep waiting, say what is missing) or
    # roll back (a release that cannot show it is no worse does not stay on traffic)
    max_minutes: float | None = Field(None, gt=0)
    on_timeout: Literal["hold", "rollback"] = "hold"
    sticky_by: list[Literal["tenant", "user"]] = Field(default_factory=lambda: ["tenant", "user"])
    judge: JudgeConfig = Field(default_factory=JudgeConfig)

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("at least one step")
        if any(not 0 < s <= 100 for s in v):
            raise ValueError("each step is a percentage in (0, 100]")
        if any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError("steps must increase")
        return v


AlertKind = Literal["p95_latency", "hallucination_spike", "refusal_drift", "safety", "cost",
                    "error_rate"]


class AlertRule(_Strict):
    """One alert over a sliding window of traces, per release and channel.

    kinds and their parameters:
    - p95_latency: P95 latency (ms) above `budget_ms` (default: constraints.p95_latency_ms), or
      above `factor` x the release's eval P95 (a blow-up);
    - hallucination_spike: the hallucination-flag rate above the eval baseline, by a one-sided
      binomial test at `alpha`, and at least `min_increase` above it;
    - refusal_drift: the refusal rate differs from the eval baseline (two-sided binomial test at
      `alpha`, by at least `min_increase`; `direction` up / down / both);
    - safety: more than `max_count` safety violations (default 0) in the window;
    - cost: cost per 1k requests above `budget` (default: constraints.cost_per_1k_requests);
    - error_rate: the share of errored requests above `max_rate`.
    """

    kind: AlertKind
    severity: Literal["info", "warning", "critical"] = "warning"
    window_minutes: float = Field(15.0, gt=0)
    for_minutes: float = Field(0.0, ge=0)  # the condition must hold this long before firing
    min_requests: int = Field(20, ge=1)  # fewer in the window: the rule is not evaluated
    repeat_minutes: float = Field(60.0, gt=0)  # a firing alert is notified again after this
    budget_ms: float | None = Field(None, gt=0)
    factor: float | None = Field(None, gt=1)
    alpha: float = Field(0.01, gt=0, lt=1)
    min_increase: float = Field(0.0, ge=0, le=1)
    baseline: float | None = Field(None, ge=0, le=1)  # instead of the release's eval run
    # hallucination_spike: a release whose eval answers are flagged more often than this leaves
    # the label no room to show a spike (paraphrasing answers: docs/operations.md); the rule then
    # says so instead of testing
    max_baseline: float = Field(0.5, gt=0, le=1)
    direction: Literal["up", "down", "both"] = "both"
    max_count: int = Field(0, ge=0)
    budget: float | None = Field(None, ge=0)
    max_rate: float = Field(0.05, ge=0, le=1)
    channels: list[str] | None = None  # None: every channel


def _default_rules() -> dict[str, AlertRule]:
    return {
        "p95-latency": AlertRule(kind="p95_latency", severity="critical", factor=3.0),
        # alpha 0.001 held 5 minutes: no page in 6 simulated days of a healthy release at eval
        # rates 0.025 and 0.3 (benchmarks/groundedness_alert.py, docs/operations.md)
        "hallucination-spike": AlertRule(kind="hallucination_spike", severity="critical", alpha=0.001,
                                         for_minutes=5, min_requests=50, min_increase=0.05),
        "refusal-drift": AlertRule(kind="refusal_drift", min_requests=50, min_increase=0.1),
        "safety": AlertRule(kind="safety", severity="critical", min_requests=1),
        "cost": AlertRule(kind="cost"),
        "error-rate": AlertRule(kind="error_rate", severity="critical"),
    }


class WebhookConfig(_Strict):
    """A JSON POST per alert event (firing and resolved)."""

    url: str
    timeout_s: float = Field(5.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    min_severity: Literal["info", "warning", "critical"] = "info"


class MonitorConfig(_Strict):
    """`rung monitor` (and the monitor inside `rung serve`): rules, where alerts go, how often."""

    rules: dict[str, AlertRule] = Field(default_factory=_default_rules)
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    log: str | None = paths.ALERTS  # alert events, one JSON line each (None: off)
    interval_s: float = Field(30.0, gt=0)  # --watch: evaluate every this many seconds
    bucket_minutes: float = Field(5.0, gt=0)  # the report's time resolution


class DriftConfig(_Strict):
    """`rung drift`: live requests vs the eval suite's cases."""

    suite: str | None = None  # a name in `suites` (default: the only / first one)
    far_threshold: float = Field(0.55, gt=0, le=2)  # cosine distance to the nearest case
    max_far_share: float = Field(0.2, ge=0, le=1)  # above this, the suite under-covers live traffic
    clusters: int = Field(5, ge=1, le=50)  # at most this many topic clusters of far requests
    examples_per_cluster: int = Field(5, ge=1)
    min_cluster_size: int = Field(3, ge=1)
    output: str = paths.DRIFT_CASES


class RefreshConfig(_Strict):
    """`rung refresh`: labelled traces -> training examples -> dataset -> tune -> eval ->
    release -> rollout (shadow first)."""

    since: str = "30d"  # traces newer than this (e.g. 7d, 12h)
    channels: list[str] | None = None  # None: every channel
    # human feedback always counts; online labels only when allowed and confident (a request
    # with every online label measured and agreeing)
    use_online_labels: bool = False
    policy_types: list[str] = Field(default_factory=lambda: ["policy"])  # document `type`s that are policies
    retarget: bool = True  # an example citing a replaced policy is kept when the new version supports it
    candidate: str | None = None  # the candidate the tuned adapter is evaluated under
    rollout_mode: Literal["canary", "shadow"] = "shadow"
    channel: str = "production"

    @model_validator(mode="after")
    def _since(self) -> RefreshConfig:
        parse_duration(self.since)  # fail at load time, naming the key
        return self


def parse_duration(text: str) -> float:
    """'7d', '12h', '30m', '45s', '2w' -> seconds. ValueError otherwise."""
    t = str(text).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    if len(t) >= 2 and t[-1] in units:
        try:
            n = float(t[:-1])
        except ValueError:
            n = -1
        if n > 0:
            return n * units[t[-1]]
    raise ValueError(f"{text!r} is not a duration such as 30m, 12h, 7d or 2w")
