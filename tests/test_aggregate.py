"""Run aggregates on hand-made runs whose numbers are known."""

from __future__ import annotations

import pytest

from rung.core import Answer, Case, Score
from rung.errors import ConfigError
from rung.evals.aggregate import STANDARD_METRICS, aggregate, bootstrap_ci
from rung.evals.types import CaseResult, RunInfo, RunResult


def _run(rows: list[dict], *, price_in: float = 0.0, price_out: float = 0.0,
         epochs: int = 1) -> RunResult:
    """rows: {"id", "scores": {name: value|None}, "hib": {name: bool}, "tags", "epoch",
    "latency", "tokens_in", "tokens_out", "error"}."""
    results = []
    for row in rows:
        hib = row.get("hib", {})
        scores = [Score(n, v, hib.get(n, STANDARD_METRICS.get(n, True)))
                  for n, v in row.get("scores", {}).items()]
        timings = {"total": row["latency"]} if "latency" in row else {}
        answer = Answer(text="a", tokens_in=row.get("tokens_in", 0),
                        tokens_out=row.get("tokens_out", 0), timings_ms=timings,
                        error=row.get("error"))
        case = Case(id=row["id"], input="q", tags=row.get("tags", []))
        results.append(CaseResult(case, answer, scores, epoch=row.get("epoch", 0)))
    info = RunInfo(id="run1", candidate="cand", candidate_hash="h", candidate_config={},
                   suite="suite", suite_hash="s", epochs=epochs, price_in_per_1k=price_in,
                   price_out_per_1k=price_out)
    return RunResult(info, results)


def test_success_rate_and_interval() -> None:
    run = _run([{"id": f"c{i}", "scores": {"task_success": v}}
                for i, v in enumerate([1.0, 1.0, 0.0, 1.0])])
    m = aggregate(run).metrics["task_success"]
    assert m.mean == 0.75
    assert (m.n, m.not_measured) == (4, 0)
    assert 0.0 <= m.ci_low <= m.mean <= m.ci_high <= 1.0
    assert m.ci_low < m.ci_high  # 4 cases with a failure: the interval is not a point
    assert m.binary and m.is_rate and m.higher_is_better


def test_not_measured_is_excluded_and_counted() -> None:
    run = _run([
        {"id": "a", "scores": {"task_success": 1.0}},
        {"id": "b", "scores": {"task_success": 0.0}},
        {"id": "c", "scores": {"task_success": None}},
        {"id": "d", "scores": {"task_success": 1.0}},
        {"id": "e", "scores": {}},  # the scorer does not apply: neither measured nor not measured
    ])
    s = aggregate(run)
    m = s.metrics["task_success"]
    assert (m.n, m.not_measured) == (3, 1)
    assert m.mean == pytest.approx(2 / 3)
    assert s.value("task_success") == pytest.approx(2 / 3)


def test_all_not_measured_gives_none() -> None:
    run = _run([{"id": "a", "scores": {"schema_valid": None}}])
    s = aggregate(run)
    assert s.metrics["schema_valid"].mean is None
    assert s.metrics["schema_valid"].not_measured == 1
    assert s.value("schema_valid") is None


def test_latency_percentiles_from_scores() -> None:
    # latencies 1..100 ms; linear interpolation: p95 at rank 0.95 * 99 = 94.05 -> 95.05
    run = _run([{"id": f"c{i}", "scores": {"latency_ms": float(i)}} for i in range(1, 101)])
    s = aggregate(run)
    assert s.p50_latency_ms == pytest.approx(50.5)
    assert s.p95_latency_ms == pytest.approx(95.05)
    assert s.p99_latency_ms == pytest.approx(99.01)
    assert s.value("p95_latency_ms") == pytest.approx(95.05)
    assert s.metrics["latency_ms"].higher_is_better is False
    assert not s.metrics["latency_ms"].is_rate


def test_latency_falls_back_to_answer_timings() -> None:
    run = _run([{"id": "a", "latency": 10.0}, {"id": "b", "latency": 30.0}, {"id": "c"}])
    s = aggregate(run)
    assert s.latencies_ms == [10.0, 30.0]  # the answer without timings has no latency
    assert s.p50_latency_ms == pytest.approx(20.0)


def test_tokens_and_cost_from_answers_and_prices() -> None:
    # per request: 1000 in * 0.002/1k + 500 out * 0.004/1k = 0.004 -> 4.0 per 1k requests
    run = _run([{"id": "a", "tokens_in": 800, "tokens_out": 400},
                {"id": "b", "tokens_in": 1200, "tokens_out": 600}],
               price_in=0.002, price_out=0.004)
    s = aggregate(run)
    assert s.tokens_in_mean == 1000.0
    assert s.tokens_out_mean == 500.0
    assert s.cost_per_1k_requests == pytest.approx(4.0)


def test_cost_score_wins_over_prices() -> None:
    run = _run([{"id": "a", "scores": {"cost": 0.01}}, {"id": "b", "scores": {"cost": 0.03}}],
               price_in=99.0)
    assert aggregate(run).cost_per_1k_requests == pytest.approx(20.0)


def test_safety_violations_and_errors() -> None:
    run = _run([
        {"id": "a", "scores": {"safety_violation": 1.0}},
        {"id": "b", "scores": {"safety_violation": 0.0}},
        {"id": "c", "scores": {"safety_violation": 1.0}, "error": "timeout"},
        {"id": "d", "scores": {"safety_violation": None}},
    ])
    s = aggregate(run)
    assert s.safety_violations == 2
    assert s.value("safety_violations") == 2.0
    assert s.errors == 1
    assert s.metrics["safety_violation"].mean == pytest.approx(2 / 3)


def test_safety_violations_not_measured_without_scorer() -> None:
    s = aggregate(_run([{"id": "a", "scores": {"task_success": 1.0}}]))
    assert s.safety_violations is None
    assert s.value("safety_violations") is None


def test_epochs_average_per_case_and_resample_together() -> None:
    run = _run([
        {"id": "a", "epoch": 0, "scores": {"task_success": 1.0}},
        {"id": "a", "epoch": 1, "scores": {"task_success": 0.0}},
        {"id": "b", "epoch": 0, "scores": {"task_success": 1.0}},
        {"id": "b", "epoch": 1, "scores": {"task_success": 1.0}},
    ], epochs=2)
    s = aggregate(run)
    m = s.metrics["task_success"]
    assert s.epochs == 2 and s.n_cases == 2 and s.n_results == 4
    assert m.mean == 0.75 and m.n == 2 and m.n_observations == 4
    # std across epochs: case a sqrt(0.5) (ddof=1), case b 0 -> mean 0.3536
    assert m.epoch_std == pytest.approx(0.5 ** 0.5 / 2)
    # resampling whole cases (means 0.5 and 1.0) can only give 0.5, 0.75 or 1.0;
    # resampling single epochs would also give values such as 2/3
    assert m.ci_low in (0.5, 0.75) and m.ci_high in (0.75, 1.0)


def test_tag_breakdown() -> None:
    run = _run([
        {"id": "a", "tags": ["adversarial"], "scores": {"task_success": 1.0, "latency_ms": 5.0}},
        {"id": "b", "tags": ["adversarial", "long"], "scores": {"task_success": 0.0}},
        {"id": "c", "tags": ["long"], "scores": {"task_success": 0.0}},
        {"id": "d", "scores": {"task_success": 1.0}},
    ])
    tags = aggregate(run).tags
    assert sorted(tags) == ["adversarial", "long"]
    assert tags["adversarial"].n == 2 and tags["adversarial"].means["task_success"] == 0.5
    assert tags["long"].means["task_success"] == 0.0
    assert "latency_ms" not in tags["adversarial"].means  # only rates are broken down


def test_value_resolves_names() -> None:
    s = aggregate(_run([{"id": "a", "scores": {"task_success": 1.0}, "latency": 12.0}]))
    assert s.value("task_success") == 1.0
    assert s.value("p99_latency_ms") == 12.0
    assert s.value("hallucination") is None  # a standard metric this run did not measure
    assert s.knows("hallucination") and not s.knows("task_sucess")
    with pytest.raises(ConfigError, match="did you mean 'task_success'"):
        s.value("task_sucess")


def test_bootstrap_is_seeded_and_narrows_with_more_cases() -> None:
    small = [1.0, 0.0] * 10
    large = [1.0, 0.0] * 200
    assert bootstrap_ci(small, seed=3) == bootstrap_ci(small, seed=3)
    lo_s, hi_s = bootstrap_ci(small)
    lo_l, hi_l = bootstrap_ci(large)
    assert lo_s < 0.5 < hi_s and lo_l < 0.5 < hi_l
    assert (hi_l - lo_l) < (hi_s - lo_s) / 2
