"""The monitor's rules as a Prometheus alerting-rules file, over the gateway's /metrics
(rung.ops.gateway.metrics), for teams on Prometheus / Alertmanager.

What maps exactly: P95 latency (histogram_quantile over
gen_ai_server_request_duration_seconds), error rate, cost per 1k requests, safety violations.
What is approximated: the hallucination spike and the refusal drift are exact binomial tests in
`rung monitor`; PromQL has no binomial distribution, so they become the normal approximation
(z = (rate - p0) / sqrt(p0 (1 - p0) / n) over the window, z above the one- or two-sided quantile
of alpha). The baseline p0 is the eval baseline of the release live on the channel when the file
is written: write it again after a promotion. The gateway counts online labels without release
labels, so the hallucination rule is per gateway, not per release.
"""

from __future__ import annotations

from typing import Any

from rung.config.operations import AlertRule, MonitorConfig
from rung.ops.monitor.rules import Baseline

BY = "release, channel"


def _dur(minutes: float) -> str:
    return f"{int(minutes)}m" if float(minutes).is_integer() else f"{int(minutes * 60)}s"


def _z(alpha: float, two_sided: bool) -> float:
    from scipy.stats import norm

    return float(norm.isf(alpha / 2 if two_sided else alpha))


def rule_expr(rule: AlertRule, baseline: Baseline, *, p95_budget_ms: float | None,
              cost_budget_per_1k: float | None) -> tuple[str | None, str]:
    """(PromQL expression or None when it cannot be written, a description)."""
    w = _dur(rule.window_minutes)
    req = f"sum by ({BY}) (increase(rung_requests_total[{w}]))"
    enough = f" and {req} >= {rule.min_requests}"
    if rule.kind == "p95_latency":
        limits = []
        if rule.budget_ms or p95_budget_ms:
            limits.append((rule.budget_ms or p95_budget_ms) / 1000.0)
        if rule.factor and baseline.p95_ms:
            limits.append(rule.factor * baseline.p95_ms / 1000.0)
        if not limits:
            return None, "no budget_ms, constraints.p95_latency_ms or eval P95"
        q = (f"histogram_quantile(0.95, sum by (le, {BY}) "
             f"(rate(gen_ai_server_request_duration_seconds_bucket[{w}])))")
        return f"{q} > {min(limits):g}{enough}", f"P95 latency above {min(limits) * 1000:.0f} ms"
    if rule.kind == "error_rate":
        err = f"sum by ({BY}) (increase(rung_requests_total{{status=\"error\"}}[{w}]))"
        return f"({err} / {req}) > {rule.max_rate:g}{enough}", f"error rate above {rule.max_rate:g}"
    if rule.kind == "cost":
        budget = rule.budget if rule.budget is not None else cost_budget_per_1k
        if budget is None:
            return None, "no budget (budget: or constraints.cost_per_1k_requests)"
        cost = f"sum by ({BY}) (increase(rung_cost_total[{w}]))"
        return f"(1000 * {cost} / {req}) > {budget:g}{enough}", f"cost per 1k requests above {budget:g}"
    if rule.kind == "safety":
        flags = f"sum(increase(rung_online_labels_total{{label=\"safety_violation\",value=\"flag\"}}[{w}]))"
        return f"{flags} > {rule.max_count}", f"more than {rule.max_count} safety violation(s)"
    if rule.kind == "hallucination_spike":
        p0 = rule.baseline if rule.baseline is not None else baseline.hallucination
        if p0 is None:
            return None, "no eval baseline (set baseline:)"
        p0 = max(p0, 0.5 / baseline.n if baseline.n else 0.005)
        flag = f"sum(increase(rung_online_labels_total{{label=\"hallucination\",value=\"flag\"}}[{w}]))"
        n = f"sum(increase(rung_online_labels_total{{label=\"hallucination\",value=~\"flag|ok\"}}[{w}]))"
        z = _z(rule.alpha, False)
        expr = (f"(({flag} / {n}) - {p0:.6g}) / sqrt({p0 * (1 - p0):.6g} / {n}) > {z:.4g}"
                f" and ({flag} / {n}) - {p0:.6g} >= {rule.min_increase:g} and {n} >= {rule.min_requests}")
        return expr, f"hallucination-flag rate above the eval baseline {p0:.3f} (z-test, alpha {rule.alpha:g})"
    if rule.kind == "refusal_drift":
        p0 = rule.baseline if rule.baseline is not None else baseline.refused
        if p0 is None:
            return None, "no eval baseline (set baseline:)"
        p0 = min(max(p0, 0.005), 0.995)
        ref = f"sum by ({BY}) (increase(rung_refusals_total[{w}]))"
        z = _z(rule.alpha, rule.direction == "both")
        diff = f"(({ref} / {req}) - {p0:.6g})"
        se = f"sqrt({p0 * (1 - p0):.6g} / {req})"
        if rule.direction == "both":
            cond = f"abs({diff}) / {se} > {z:.4g} and abs({diff}) >= {rule.min_increase:g}"
        elif rule.direction == "up":
            cond = f"{diff} / {se} > {z:.4g} and {diff} >= {rule.min_increase:g}"
        else:
            cond = f"-{diff} / {se} > {z:.4g} and -{diff} >= {rule.min_increase:g}"
        return cond + enough, f"refusal rate drifted from the eval baseline {p0:.3f} ({rule.direction})"
    return None, f"unknown kind {rule.kind}"


def prometheus_rules(config: MonitorConfig, baseline: Baseline, *, project: str = "rung",
                     p95_budget_ms: float | None = None, cost_budget_per_1k: float | None = None
                     ) -> tuple[dict[str, Any], list[str]]:
    """(the rules file as a dict, notes on rules that could not be written)."""
    rules, notes = [], []
    for name, rule in config.rules.items():
        expr, what = rule_expr(rule, baseline, p95_budget_ms=p95_budget_ms,
                               cost_budget_per_1k=cost_budget_per_1k)
        if expr is None:
            notes.append(f"{name}: left out ({what})")
            continue
        if rule.channels:
            notes.append(f"{name}: channels {rule.channels} not applied (filter in Alertmanager routes)")
        alert = "Rung" + "".join(p.capitalize() for p in name.replace("_", "-").split("-"))
        rules.append({"alert": alert, "expr": expr, "for": _dur(rule.for_minutes),
                      "labels": {"severity": rule.severity, "rung_rule": name, "project": project},
                      "annotations": {"summary": f"{name}: {what}",
                                      "description": f"rung monitor rule {name} ({rule.kind}) over "
                                                     f"{_dur(rule.window_minutes)} windows"}})
    return {"groups": [{"name": f"rung-{project}", "rules": rules}]}, notes


def write_rules(path: Any, data: dict[str, Any]) -> None:
    from pathlib import Path

    import yaml

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("# written by `rung monitor --export-prometheus-rules`\n"
                 + yaml.safe_dump(data, sort_keys=False, width=200), encoding="utf-8")
