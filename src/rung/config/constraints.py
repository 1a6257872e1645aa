"""`constraints:`: what `rung decide` weighs (targets, budgets, the four questions, prices)."""

from __future__ import annotations

from pydantic import Field

from rung.config.base import _Strict


class LatencyProbeConfig(_Strict):
    """Latency as served (rung.evals.latency): after a run, `cases` of its cases (spread over
    request length) are answered again with the uncached model, `concurrency` at a time; the
    P95 budget is judged on these latencies, not on the batched evaluation's."""

    cases: int = Field(8, ge=0, le=10_000)  # 0: no probe (the budget falls back to batched P95)
    concurrency: int = Field(1, ge=1, le=1024)  # requests that arrive together; 1: one at a time


class Constraints(_Strict):
    """The framework's four questions (latency and cost, data sensitivity, change velocity,
    evaluation readiness), the targets, and the cost model's prices (`rung decide`,
    docs/decide.md). Money is in the currency of the models' `price`."""

    p95_latency_ms: float | None = Field(None, gt=0)  # judged on latency as served (below)
    latency_probe: LatencyProbeConfig = Field(default_factory=LatencyProbeConfig)
    cost_per_1k_requests: float | None = Field(None, ge=0)
    requests_per_month: int | None = Field(None, ge=0)
    data_may_leave_network: bool = True
    policy_changes_per_month: float = Field(0.0, ge=0)
    task_success_target: float = Field(0.8, ge=0, le=1)
    hallucination_bound: float = Field(0.03, ge=0, le=0.05)
    min_cases_per_tag: int = Field(10, ge=1)
    # tags (glob patterns, e.g. "topic:*") that need not reach min_cases_per_tag
    readiness_exempt_tags: list[str] = Field(default_factory=list)
    # style / format: schema_valid and refusal_correct must reach this where they are measured
    format_target: float = Field(0.9, ge=0, le=1)
    max_safety_violations: int = Field(0, ge=0)  # cases with safety_violation = 1
    # which rungs of the ladder the team may climb
    allow_level1: bool = True
    allow_level2: bool = True
    min_train_examples_level2: int = Field(1000, ge=0)  # a full fine-tune needs this much data
    # cost model: self-hosted serving = compute_price_per_hour x mean latency / serving_concurrency
    compute_price_per_hour: float = Field(2.0, ge=0)  # one serving instance (GPU or CPU box)
    serving_concurrency: float = Field(8.0, gt=0)  # requests one instance answers at once
    # training: hours x price, amortised over `amortisation_months`, repeated per policy change
    training_price_per_hour: float = Field(4.0, ge=0)
    training_hours_level1: float = Field(1.0, ge=0)  # estimate when no artifact measured it
    training_hours_level2: float = Field(8.0, ge=0)
    amortisation_months: float = Field(12.0, gt=0)
