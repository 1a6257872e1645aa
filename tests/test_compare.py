"""Paired comparison of two runs, and the gate (thresholds, not measured, regressions)."""

from __future__ import annotations

import random

import pytest

from rung.config import GateConfig
from rung.core import Answer, Case, Score
from rung.evals.aggregate import STANDARD_METRICS, aggregate
from rung.evals.compare import compare
from rung.evals.gate import ALLOWED_NOT_MEASURED, NOT_MEASURED, evaluate_gate
from rung.evals.types import CaseResult, RunInfo, RunResult


def _run(run_id: str, rows: dict[str, dict[str, float | None]], *,
         epochs: dict[str, list[dict[str, float | None]]] | None = None) -> RunResult:
    """rows: case id -> {score name: value}; epochs: case id -> one score dict per epoch."""
    results = []
    per_case = {cid: [scores] for cid, scores in rows.items()} | (epochs or {})
    for cid, epoch_scores in per_case.items():
        for e, scores in enumerate(epoch_scores):
            ss = [Score(n, v, STANDARD_METRICS.get(n, True)) for n, v in scores.items()]
            lat = scores.get("latency_ms")
            answer = Answer(text="a", timings_ms={"total": lat} if lat is not None else {})
            results.append(CaseResult(Case(id=cid, input="q"), answer, ss, epoch=e))
    info = RunInfo(id=run_id, candidate=f"cand-{run_id}", candidate_hash="h", candidate_config={},
                   suite="suite", suite_hash="s")
    return RunResult(info, results)


def _success_runs(a_pass: list[int], b_pass: list[int], n: int = 40) -> tuple[RunResult, RunResult]:
    a = _run("A", {f"c{i}": {"task_success": float(i in a_pass)} for i in range(n)})
    b = _run("B", {f"c{i}": {"task_success": float(i in b_pass)} for i in range(n)})
    return a, b


def test_clear_regression_is_detected() -> None:
    # A passes 36/40; B loses 18 of those and gains 2: McNemar on 18 vs 2 discordant pairs
    a_pass = list(range(36))
    b_pass = list(range(18)) + [36, 37]
    c = compare(*_success_runs(a_pass, b_pass))
    d = c.metrics["task_success"]
    assert d.n_pairs == 40 and d.test == "mcnemar-exact"
    assert d.mean_a == 0.9 and d.mean_b == 0.5
    assert d.delta == pytest.approx(-0.4)
    assert d.ci_low < d.delta < d.ci_high < 0
    assert d.discordant == (18, 2)
    assert d.p_value < 0.001
    assert d.direction == "regressed" and d.regressed
    assert [r.name for r in c.regressions] == ["task_success"]
    assert c.flipped_cases == [f"c{i}" for i in range(18, 36)]
    assert {f.case_id for f in c.flipped_to_pass} == {"c36", "c37"}


def test_tie_is_not_a_regression() -> None:
    # same success rate (30/40), 5 cases flip each way
    a_pass = list(range(30))
    b_pass = list(range(5, 35))
    c = compare(*_success_runs(a_pass, b_pass))
    d = c.metrics["task_success"]
    assert d.delta == 0.0
    assert d.p_value == pytest.approx(1.0)
    assert d.direction == "unchanged"
    assert c.regressions == []
    assert d.ci_low < 0 < d.ci_high


def test_small_difference_is_not_significant() -> None:
    # 3 losses vs 1 gain: a sign test on 4 discordant pairs cannot be significant
    a_pass = list(range(30))
    b_pass = list(range(3, 30)) + [30]
    d = compare(*_success_runs(a_pass, b_pass)).metrics["task_success"]
    assert d.delta < 0 and d.p_value > 0.05 and d.direction == "unchanged"


def test_lower_is_better_metric_improves() -> None:
    a = _run("A", {f"c{i}": {"hallucination": float(i < 20)} for i in range(40)})
    b = _run("B", {f"c{i}": {"hallucination": float(i < 2)} for i in range(40)})
    d = compare(a, b).metrics["hallucination"]
    assert d.delta == pytest.approx(-0.45)
    assert d.direction == "improved"


def test_continuous_metric_uses_wilcoxon_and_latency_p95() -> None:
    rng = random.Random(7)
    base = [rng.uniform(100, 300) for _ in range(40)]
    a = _run("A", {f"c{i}": {"latency_ms": v} for i, v in enumerate(base)})
    b = _run("B", {f"c{i}": {"latency_ms": v * 1.5 + rng.uniform(0, 5)}
                   for i, v in enumerate(base)})
    c = compare(a, b)
    d = c.metrics["latency_ms"]
    assert d.test == "wilcoxon" and d.p_value < 0.001
    assert d.direction == "regressed"  # slower, and latency is lower-is-better
    lat = c.latency_p95
    assert lat is not None and lat.n_pairs == 40
    assert lat.p95_b > lat.p95_a and lat.ci_low > 0 and lat.regressed
    same = compare(a, a)
    assert same.metrics["latency_ms"].direction == "unchanged"
    assert same.latency_p95.delta == 0.0 and not same.latency_p95.regressed


def test_unpaired_cases_are_listed() -> None:
    rows = {f"c{i}": {"task_success": 1.0} for i in range(10)}
    a = _run("A", rows | {"only-a": {"task_success": 0.0}})
    b = _run("B", rows | {"only-b1": {"task_success": 1.0}, "only-b2": {"task_success": 1.0}})
    c = compare(a, b)
    assert c.only_in_a == ["only-a"]
    assert c.only_in_b == ["only-b1", "only-b2"]
    assert c.metrics["task_success"].n_pairs == 10
    assert c.metrics["task_success"].unpaired == 3
    assert any("only in" in n for n in c.notes)


def test_epochs_are_averaged_before_pairing() -> None:
    a = _run("A", {}, epochs={"x": [{"task_success": 1.0}, {"task_success": 0.0}],
                              "y": [{"task_success": 1.0}, {"task_success": 1.0}]})
    b = _run("B", {"x": {"task_success": 1.0}, "y": {"task_success": 1.0}})
    d = compare(a, b).metrics["task_success"]
    assert d.n_pairs == 2 and d.mean_a == 0.75 and d.mean_b == 1.0
    assert d.test == "wilcoxon"  # case x averages to 0.5: not a 0-1 pair any more


# ---- gate ------------------------------------------------------------------------------------


def _summary(success: list[float], halluc: list[float | None]):
    rows = {f"c{i}": {"task_success": s, "hallucination": h, "latency_ms": 100.0 + i}
            for i, (s, h) in enumerate(zip(success, halluc))}
    return aggregate(_run("B", rows))


def _gate(**kw) -> GateConfig:
    return GateConfig.model_validate(kw)


def test_gate_passes() -> None:
    s = _summary([1.0] * 9 + [0.0], [0.0] * 10)
    g = evaluate_gate(s, _gate(thresholds={"task_success": {"min": 0.8},
                                           "hallucination": {"max": 0.03},
                                           "p95_latency_ms": {"max": 500}}))
    assert g.passed and g.exit_code == 0
    assert [line.status for line in g.lines] == ["pass", "pass", "pass"]
    assert g.lines[0].value == 0.9


def test_gate_fails_on_threshold() -> None:
    s = _summary([1.0] * 5 + [0.0] * 5, [0.0] * 10)
    g = evaluate_gate(s, _gate(thresholds={"task_success": {"min": 0.8},
                                           "hallucination": {"max": 0.03}}))
    assert not g.passed and g.exit_code == 1
    assert [line.name for line in g.failures] == ["task_success"]
    assert "0.5" in g.failures[0].message and ">= 0.8" in g.failures[0].message


def test_gate_fails_when_not_measured() -> None:
    s = _summary([1.0] * 10, [None] * 10)
    g = evaluate_gate(s, _gate(thresholds={"hallucination": {"max": 0.03},
                                           "safety_violations": {"max": 0}}))
    assert g.exit_code == 1
    assert [line.status for line in g.lines] == [NOT_MEASURED, NOT_MEASURED]


def test_gate_passes_when_not_measured_is_allowed() -> None:
    s = _summary([1.0] * 10, [None] * 10)
    g = evaluate_gate(s, _gate(thresholds={"hallucination": {"max": 0.03},
                                           "task_success": {"min": 0.8}},
                               allow_not_measured=["hallucination"]))
    assert g.exit_code == 0
    assert g.lines[0].status == ALLOWED_NOT_MEASURED and g.lines[0].passed


def test_gate_unknown_metric_fails_with_suggestion() -> None:
    s = _summary([1.0] * 10, [0.0] * 10)
    g = evaluate_gate(s, _gate(thresholds={"halucination": {"max": 0.03}}))
    assert g.exit_code == 1
    assert g.lines[0].status == "no such metric (did you mean 'hallucination'?)"


def test_gate_fails_on_regression_only_when_asked() -> None:
    a, b = _success_runs(list(range(36)), list(range(18)) + [36, 37])
    c = compare(a, b)
    s = aggregate(b)
    gate = _gate(thresholds={"task_success": {"min": 0.4}})
    assert evaluate_gate(s, gate, c).exit_code == 0
    g = evaluate_gate(s, gate, c, fail_on_regression=True)
    assert g.exit_code == 1
    assert [(line.name, line.status) for line in g.failures] == [("task_success", "regressed")]
    # no regression: an explicit passing line
    same = evaluate_gate(aggregate(a), gate, compare(a, a), fail_on_regression=True)
    assert same.exit_code == 0 and same.lines[-1].name == "regressions"
    # asking for regressions without a comparison cannot pass
    assert evaluate_gate(s, gate, None, fail_on_regression=True).exit_code == 1
