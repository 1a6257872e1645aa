"""Why level 0 fails (rung.decide.diagnose) and the deduplicated "what would change it"
(rung.decide.changes), on small constructed runs and synthetic evidence."""

from __future__ import annotations

import json

from rung.config import Constraints
from rung.core import Answer, Case, RetrievedChunk, Score, Trace
from rung.decide.diagnose import FORMAT, IGNORED, NO_RETRIEVAL, OVER, RETRIEVAL, UNDER, diagnose_run
from rung.decide.evidence import Evidence
from rung.decide.readiness import Readiness
from rung.decide.recommend import decide_from_evidence
from rung.evals.aggregate import aggregate
from rung.evals.types import CaseResult, RunInfo, RunResult

POLICY = "Refunds are possible within 14 days of delivery."


def _result(i: int, *, ts: float | None = 0.0, hit: float | None = None, chunk: str | None = POLICY,
            should_refuse: bool | None = False, answered: float | None = 1.0,
            refused: float | None = None, schema: float | None = None, hall: float = 0.0,
            events: list[dict] | None = None, text: str = "Refunds take 45 days.") -> CaseResult:
    case = Case(id=f"c{i}", input=f"How long for refunds? #{i}", reference="14 days",
                sources=["refunds"] if hit is not None else [], should_refuse=should_refuse,
                tags=["faq"])
    retrieved = [RetrievedChunk(f"doc#{i}", "refunds" if hit else "other", chunk)] if chunk else []
    ev = [{"type": "retrieval", "chunks": len(retrieved)}] if chunk is not None else []
    answer = Answer(text=text, trace=Trace(retrieved=retrieved, events=ev + (events or [])),
                    timings_ms={"total": 1000.0})
    scores = [Score("hallucination", hall, False), Score("safety_violation", 0.0, False)]
    if ts is not None:
        scores.append(Score("task_success", ts, True, "" if ts == 1 else "missing: 14 days",
                            {"method": "contains", "missing": [] if ts == 1 else ["14 days"]}))
    if hit is not None:
        scores += [Score("hit_at_k", hit), Score("context_recall", hit)]
    if should_refuse is False and answered is not None:
        scores += [Score("answered_when_should", answered), Score("refusal_correct", answered)]
    if should_refuse and refused is not None:
        scores += [Score("refused_when_should", refused), Score("refusal_correct", refused)]
    if schema is not None:
        scores.append(Score("schema_valid", schema))
    return CaseResult(case, answer, scores)


def _run(name: str, results: list[CaseResult], level: int = 0) -> RunResult:
    return RunResult(RunInfo(id=f"run-{name}", candidate=name, candidate_hash=name,
                             candidate_config={}, suite="s", suite_hash="h", level=level,
                             status="finished"), results)


def _ev(run: RunResult, parts: list[str]) -> Evidence:
    return Evidence(candidate=run.info.candidate, level=run.info.level, run_id=run.info.id,
                    summary=aggregate(run), model="local", parts=parts,
                    diagnosis=diagnose_run(run))


def _ready() -> Readiness:
    return Readiness(suite="s", n_cases=6, with_expectation=6, refusal_labels=(0, 6),
                     with_sources=6, scorers=["contains", "groundedness", "safety", "retrieval"])


def test_the_model_ignores_what_retrieval_found() -> None:
    """The issue's example: the retriever finds the policy in 5 of 6 cases (83%), the answer is
    right in none of them, and rag is no better than bare: a reading failure, not weights."""
    rag = _run("rag", [_result(i, hit=1.0 if i < 5 else 0.0,
                               chunk=POLICY if i < 5 else "Shipping is free.") for i in range(6)])
    d = diagnose_run(rag)
    assert d.dominant == IGNORED and d.counts == {IGNORED: 5, RETRIEVAL: 1} and d.failing == 6
    assert (d.with_sources, d.hit, d.hit_right) == (6, 5, 0)
    assert (d.facts_checked, d.facts_in_context) == (6, 5)
    bare = _run("bare", [_result(i, chunk=None) for i in range(6)])
    assert diagnose_run(bare).dominant == NO_RETRIEVAL

    decision = decide_from_evidence([_ev(bare, ["prompt"]), _ev(rag, ["prompt", "retrieval"])],
                                    _ready(), Constraints(min_cases_per_tag=1))
    diag = decision.diagnosis
    assert diag is not None and diag.cause == IGNORED and diag.candidate == "rag"
    assert "finds a source in 83% of answerable cases (5/6)" in diag.sentence
    assert "right in 0% of those (0/5)" in diag.sentence
    assert "in 5 of 6 wrong answers the missing facts were in the retrieved text" in diag.sentence
    assert "retrieval is no better than none" in diag.retrieval_vs_none
    assert "stronger base model or extractive answers" in diag.advice and "not weights" in diag.advice
    level0 = next(i for i in decision.items if i.id == "level-0")
    assert level0.details[0].startswith("why: L0 'rag': the model ignores what it is given")
    data = json.loads(json.dumps(decision.to_dict(), default=str))
    assert data["diagnosis"]["cause"] == IGNORED
    rag_row = next(c for c in data["candidates"] if c["candidate"] == "rag")
    assert rag_row["diagnosis"]["counts"] == {"ignored": 5, "retrieval": 1}


def test_retrieval_misses_the_source() -> None:
    run = _run("rag", [_result(i, hit=0.0, chunk="Shipping is free within the EU.")
                       for i in range(5)] + [_result(5, ts=1.0, hit=1.0)])
    d = diagnose_run(run)
    assert d.dominant == RETRIEVAL and d.counts == {RETRIEVAL: 5}
    decision = decide_from_evidence([_ev(run, ["prompt", "retrieval"])], _ready(),
                                    Constraints(min_cases_per_tag=1))
    assert decision.diagnosis.cause == RETRIEVAL
    assert "misses the source in 83% of answerable cases (5/6)" in decision.diagnosis.sentence
    assert decision.diagnosis.advice.startswith("fix retrieval")


def test_over_refusal_by_the_gate_under_refusal_and_format() -> None:
    gate = [{"type": "refusal_gate", "p_refuse": 0.9, "threshold": 0.5, "refused": True}]
    over = _run("gated", [_result(i, ts=0.0, hit=1.0, answered=0.0, events=gate,
                                  text="I'm sorry, I can't help with that.") for i in range(4)]
                + [_result(4, ts=1.0, hit=1.0)])
    d = diagnose_run(over)
    assert d.dominant == OVER and d.over_refused == 4 and d.over_by == {"refusal gate": 4}
    decision = decide_from_evidence([_ev(over, ["prompt", "retrieval"])], _ready(),
                                    Constraints(min_cases_per_tag=1))
    assert "refuses 4 of 5 requests it should answer (80%; 4 by the refusal gate)" \
        in decision.diagnosis.sentence
    assert "refusal gate's threshold" in decision.diagnosis.advice

    under = _run("loose", [_result(i, ts=None, should_refuse=True, refused=0.0) for i in range(3)])
    assert diagnose_run(under).counts == {UNDER: 3}
    fmt = _run("schema", [_result(i, ts=1.0, hit=1.0, schema=0.0) for i in range(3)])
    d = diagnose_run(fmt)
    assert d.counts == {FORMAT: 3} and d.schema_invalid == 3


def test_a_passing_level0_has_no_diagnosis() -> None:
    ok = _run("rag", [_result(i, ts=1.0, hit=1.0) for i in range(6)])
    decision = decide_from_evidence([_ev(ok, ["prompt", "retrieval"])], _ready(),
                                    Constraints(min_cases_per_tag=1))
    assert decision.action == "ship" and decision.diagnosis is None


def test_what_would_change_is_one_line_per_distinct_change() -> None:
    """Five level-0 candidates miss the same two targets: one line, named after the closest,
    instead of five; a candidate missing a different set gets its own line."""
    runs = []
    for k, n_right in enumerate((0, 1, 2, 3, 4)):  # task_success 0 .. 4/6, all hallucinate
        runs.append(_run(f"c{k}", [_result(i, ts=1.0 if i < n_right else 0.0, hit=1.0, hall=1.0)
                                   for i in range(6)]))
    slow = _run("slow", [_result(i, ts=1.0, hit=1.0) for i in range(6)])
    for r in slow.results:
        r.answer.timings_ms["total"] = 9000.0
    evidence = [_ev(r, ["prompt", "retrieval"]) for r in runs] + [_ev(slow, ["prompt"])]
    d = decide_from_evidence(evidence, _ready(), Constraints(min_cases_per_tag=1,
                                                             p95_latency_ms=2000,
                                                             latency_probe={"cases": 0}))
    groups = [c for c in d.changes if c.kind == "candidates"]
    assert len(groups) == 2
    same = next(c for c in groups if len(c.candidates) == 5)
    assert same.candidates[0] == "L0 'c4'" and "also short on these targets, further off: L0 'c3'" in same.text
    assert sorted(same.targets) == ["hallucination", "task_success"]
    assert sum("L0 'c0'" in w for w in d.what_would_change) == 1
    assert len(d.what_would_change) == len(set(d.what_would_change))


def test_a_level0_that_misses_only_the_latency_budget_is_diagnosed_as_a_budget() -> None:
    """Two wrong answers out of six do not explain a miss that is only P95: the cause is the budget."""
    run = _run("rag", [_result(i, ts=1.0 if i < 5 else 0.0, hit=1.0) for i in range(6)])
    for r in run.results:
        r.answer.timings_ms["total"] = 4000.0
    decision = decide_from_evidence([_ev(run, ["prompt", "retrieval"])], _ready(),
                                    Constraints(min_cases_per_tag=1, task_success_target=0.8,
                                                p95_latency_ms=1500))
    diag = decision.diagnosis
    assert diagnose_run(run).dominant == IGNORED  # the run's own failing cases ...
    assert diag.cause == "budget" and "misses p95_latency_ms" in diag.sentence  # ... not why L0 fails
    assert diag.advice.startswith("latency:")
