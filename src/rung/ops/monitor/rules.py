"""Alert rules over one window of trace records of one release on one channel: pure functions.

Each rule kind gives a `Condition`: the measured value, the threshold it was held against, and
whether it is breached, with the numbers (and the test's p-value where there is one). Baselines
come from the release's eval runs (`Baseline`): its P95 latency, hallucination-flag rate and
refusal rate on the suite; a rule's own `baseline:` overrides the rate.

- p95_latency: P95 > budget_ms (default: constraints.p95_latency_ms), or > factor x eval P95;
- hallucination_spike: one-sided exact binomial test of the window's flag count against the
  baseline rate (p < alpha) and an increase of at least `min_increase`; a zero baseline is
  floored at half a case of the eval run (a release that never hallucinated on 200 cases is
  not paged on its first flag in 20 requests);
- refusal_drift: two-sided (or one-sided by `direction`) exact binomial test of the refused
  count against the baseline refusal rate, and a change of at least `min_increase`;
- safety: more than max_count safety violations;
- cost: cost per 1k requests (mean cost x 1000) > budget (default: constraints.cost_per_1k_requests);
- error_rate: errored share > max_rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rung.config.operations import AlertRule
from rung.ops.records import TraceRecord, costs, latencies, percentile, rate


@dataclass
class Baseline:
    """What a release did on its eval suite (None: not known)."""

    p95_ms: float | None = None
    hallucination: float | None = None
    refused: float | None = None
    n: int = 0  # eval answers behind the rates
    source: str = ""  # e.g. "run 20260301-abc on eval"


@dataclass
class Condition:
    rule: str
    kind: str
    breached: bool
    value: float | None
    threshold: float | None
    n: int  # requests in the window the value is measured on
    detail: str
    p_value: float | None = None
    evaluated: bool = True  # False: too few requests, or nothing to compare with

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("value", "threshold", "p_value"):
            if isinstance(d[k], float):
                d[k] = round(d[k], 6)
        return d


def evaluate_rule(name: str, rule: AlertRule, window: Sequence[TraceRecord], baseline: Baseline,
                  *, p95_budget_ms: float | None = None, cost_budget_per_1k: float | None = None
                  ) -> Condition:
    """The rule's condition over `window` (one release on one channel)."""
    n = len(window)
    if n < rule.min_requests:
        return Condition(name, rule.kind, False, None, None, n,
                         f"{n} requests in the window, {rule.min_requests} needed", evaluated=False)
    fn = _KINDS[rule.kind]
    return fn(name, rule, window, baseline, p95_budget_ms, cost_budget_per_1k)


def _p95(name: str, rule: AlertRule, window: Sequence[TraceRecord], baseline: Baseline,
         p95_budget_ms: float | None, _cost: float | None) -> Condition:
    lat = latencies(window)
    p95 = percentile(lat, 95)
    limits = []
    budget = rule.budget_ms or p95_budget_ms
    if budget:
        limits.append((budget, f"budget {budget:.0f} ms"))
    if rule.factor and baseline.p95_ms:
        limits.append((rule.factor * baseline.p95_ms,
                       f"{rule.factor:g} x eval P95 {baseline.p95_ms:.0f} ms"))
    if p95 is None or not limits:
        why = "no latencies" if p95 is None else "no budget_ms, constraints.p95_latency_ms or eval P95"
        return Condition(name, rule.kind, False, p95, None, len(lat), why, evaluated=False)
    threshold, what = min(limits, key=lambda t: t[0])
    breached = p95 > threshold
    return Condition(name, rule.kind, breached, p95, threshold, len(lat),
                     f"P95 {p95:.0f} ms {'>' if breached else '<='} {what}")


def _floor(baseline: Baseline, p0: float) -> float:
    if p0 > 0:
        return p0
    return 0.5 / baseline.n if baseline.n else 0.005


def _hallucination(name: str, rule: AlertRule, window: Sequence[TraceRecord], baseline: Baseline,
                   _p95b: float | None, _cost: float | None) -> Condition:
    from scipy import stats

    k, n = rate(window, "hallucination")
    p0 = rule.baseline if rule.baseline is not None else baseline.hallucination
    if p0 is None or n == 0:
        why = "no labelled requests" if n == 0 else "no eval baseline (set baseline:)"
        return Condition(name, rule.kind, False, k / n if n else None, None, n, why, evaluated=False)
    if n < rule.min_requests:
        return Condition(name, rule.kind, False, k / n, p0, n,
                         f"{n} labelled requests, {rule.min_requests} needed", evaluated=False)
    if p0 > rule.max_baseline:
        return Condition(name, rule.kind, False, k / n, p0, n,
                         f"the eval baseline flags {p0:.0%} of answers (> max_baseline {rule.max_baseline:g}): "
                         "the reference-free label cannot show a spike here; use a judge model", evaluated=False)
    p_test = _floor(baseline, p0)
    p = float(stats.binomtest(k, n, min(p_test, 1.0), alternative="greater").pvalue)
    r = k / n
    breached = p < rule.alpha and r - p0 >= rule.min_increase
    return Condition(name, rule.kind, breached, r, p0, n,
                     f"hallucination flags {k}/{n} = {r:.3f} vs eval {p0:.3f} "
                     f"(binomial one-sided p={p:.3g}, alpha {rule.alpha:g}, min increase {rule.min_increase:g})",
                     p_value=p)


def _refusal(name: str, rule: AlertRule, window: Sequence[TraceRecord], baseline: Baseline,
             _p95b: float | None, _cost: float | None) -> Condition:
    from scipy import stats

    k, n = rate(window, "refused")
    p0 = rule.baseline if rule.baseline is not None else baseline.refused
    if p0 is None or n == 0:
        why = "no labelled requests" if n == 0 else "no eval baseline (set baseline:)"
        return Condition(name, rule.kind, False, k / n if n else None, None, n, why, evaluated=False)
    if n < rule.min_requests:
        return Condition(name, rule.kind, False, k / n, p0, n,
                         f"{n} labelled requests, {rule.min_requests} needed", evaluated=False)
    alt = {"up": "greater", "down": "less", "both": "two-sided"}[rule.direction]
    p_test = min(max(p0, _floor(baseline, p0)), 1 - _floor(baseline, 0.0))
    p = float(stats.binomtest(k, n, p_test, alternative=alt).pvalue)
    r = k / n
    change = r - p0
    big = (abs(change) if rule.direction == "both" else (change if rule.direction == "up" else -change))
    breached = p < rule.alpha and big >= rule.min_increase
    way = "up" if change > 0 else "down"
    return Condition(name, rule.kind, breached, r, p0, n,
                     f"refusal rate {k}/{n} = {r:.3f} vs eval {p0:.3f} ({way} {abs(change):.3f}; "
                     f"binomial {alt} p={p:.3g})", p_value=p)


def _safety(name: str, rule: AlertRule, window: Sequence[TraceRecord], _b: Baseline,
            _p95b: float | None, _cost: float | None) -> Condition:
    k, n = rate(window, "safety_violation")
    breached = k > rule.max_count
    return Condition(name, rule.kind, breached, float(k), float(rule.max_count), n,
                     f"{k} safety violation(s) in {n} labelled requests (at most {rule.max_count})")


def _cost(name: str, rule: AlertRule, window: Sequence[TraceRecord], _b: Baseline,
          _p95b: float | None, cost_budget_per_1k: float | None) -> Condition:
    c = costs(window)
    budget = rule.budget if rule.budget is not None else cost_budget_per_1k
    if not c or budget is None:
        why = "no costs" if not c else "no budget (budget: or constraints.cost_per_1k_requests)"
        return Condition(name, rule.kind, False, None, budget, len(c), why, evaluated=False)
    per_1k = sum(c) / len(c) * 1000.0
    breached = per_1k > budget
    return Condition(name, rule.kind, breached, per_1k, budget, len(c),
                     f"cost per 1k requests {per_1k:.4f} {'>' if breached else '<='} budget {budget:g}")


def _errors(name: str, rule: AlertRule, window: Sequence[TraceRecord], _b: Baseline,
            _p95b: float | None, _cost: float | None) -> Condition:
    k, n = rate(window, "error")
    r = k / n if n else 0.0
    breached = r > rule.max_rate
    return Condition(name, rule.kind, breached, r, rule.max_rate, n,
                     f"error rate {k}/{n} = {r:.3f} {'>' if breached else '<='} {rule.max_rate:g}")


_KINDS = {"p95_latency": _p95, "hallucination_spike": _hallucination, "refusal_drift": _refusal,
          "safety": _safety, "cost": _cost, "error_rate": _errors}
