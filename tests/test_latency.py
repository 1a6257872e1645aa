"""Latency as served vs as evaluated (rung.evals.latency): the probe over sampled cases with the
uncached model, the batched throughput figure, batching by request length, and the decision
judging the P95 budget on the probe. The model is the OpenAI-compatible stub on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rung.config import load_config
from rung.core import Case
from rung.evals.latency import LatencyProbe, Throughput, add_throughput, order_by_length, sample_for_probe

LENGTHS = [40, 5, 300, 12, 80, 3, 150, 20]  # words per question, in suite order


def _cases() -> list[Case]:
    return [Case(id=f"q{i}", input=" ".join(["word"] * n)) for i, n in enumerate(LENGTHS)]


def test_order_by_length_and_probe_sample_spread_over_lengths() -> None:
    cases = _cases()
    assert [cases[i].id for i in order_by_length(cases)] == ["q5", "q1", "q3", "q7", "q0", "q4",
                                                             "q6", "q2"]
    three = sample_for_probe(cases, 3)
    assert [c.id for c in three] == ["q5", "q0", "q2"]  # shortest, middle, longest
    assert [c.id for c in sample_for_probe(cases, 20)] == [cases[i].id for i in order_by_length(cases)]
    assert sample_for_probe(cases, 0) == []


def test_probe_and_throughput_records_round_trip() -> None:
    p = LatencyProbe(concurrency=1, requested=4, case_ids=list("abcd"),
                     latencies_ms=[100.0, 200.0, 300.0, 1000.0])
    back = LatencyProbe.from_dict(json.loads(json.dumps(p.to_dict())))
    assert back is not None and back.latencies_ms == p.latencies_ms
    assert back.p50_ms == pytest.approx(250.0) and back.p95_ms == pytest.approx(895.0)
    assert back.matches(4, 1) and not back.matches(8, 1) and not back.matches(4, 2)
    assert LatencyProbe.from_dict({"nope": 1}) is None and LatencyProbe.from_dict(None) is None
    meta: dict = {}
    add_throughput(meta, 8, 2.0, 0, 8)
    add_throughput(meta, 4, 2.0, 0, 8)  # a resumed run keeps counting
    t = Throughput.from_dict(meta["throughput"])
    assert t is not None and t.requests == 12 and t.requests_per_s == pytest.approx(3.0)
    add_throughput(meta, 4, 0.0, 4, 8)  # replayed answers: counted apart, not a measurement
    t = Throughput.from_dict(meta["throughput"])
    assert t.cached == 4 and not t.measured and "not a measurement" in t.describe()


def _project(root: Path, stub, *, probe: str) -> Path:
    (root / "cases.jsonl").write_text("".join(
        json.dumps({"id": f"q{i}", "input": " ".join(["word"] * n), "reference": "word",
                    "should_refuse": False, "tags": ["t"]}) + "\n"
        for i, n in enumerate(LENGTHS)))
    (root / "rung.yaml").write_text(f"""
project: latency-test
models:
  default:
    backend: openai
    base_url: {stub.url}
    model: stub-model
    max_retries: 0
    concurrency: 1          # the endpoint answers one request at a time: a batch of 8 waits 8x
    self_hosted: true
candidates:
  plain:
    system_prompt: You are a support agent.
    generation: {{max_new_tokens: 4}}
suites:
  main:
    path: cases.jsonl
    scorers: [contains, groundedness, safety]
constraints:
  min_cases_per_tag: 4
  p95_latency_ms: 600
  latency_probe: {probe}
""")
    return root / "rung.yaml"


def test_probe_measures_latency_as_served_uncached_and_the_decision_uses_it(tmp_path: Path,
                                                                           stub) -> None:
    from rung.decide.recommend import decide
    from rung.evals.aggregate import aggregate
    from rung.evals.runner import evaluate_candidate
    from rung.evals.store import RunStore

    stub.state.delay_s = 0.15
    cfg = load_config(_project(tmp_path, stub, probe="{cases: 3}"))
    store = RunStore(tmp_path / "rung.db")
    run, reused = evaluate_candidate(cfg, "plain", store, reuse=True)
    assert not reused
    # 8 evaluated + 1 untimed warm-up + 3 probed requests
    assert stub.state.chat_calls == 8 + 1 + 3
    # batched by request length: the shortest requests went first, the run comes back in suite order
    asked = [b["messages"][-1]["content"] for b in stub.state.requests[:8]]
    assert [len(q.split()) for q in asked] == sorted(LENGTHS)
    assert [r.case.id for r in run.results] == [f"q{i}" for i in range(8)]

    probe = LatencyProbe.from_dict(store.get_info(run.info.id).metadata["latency_probe"])
    assert probe is not None and probe.n == 3 and probe.concurrency == 1
    assert probe.case_ids == ["q5", "q0", "q2"] and probe.same_text == 3 and probe.errors == 0
    s = aggregate(store.get_run(run.info.id))
    assert 100 < s.served_p95_latency_ms < 600  # one request waits for itself only
    # the endpoint answers one request at a time: 8 per batch take >= 8 x 150 ms
    assert s.throughput_rps is not None and s.throughput_rps < 1 / 0.15
    assert s.throughput_batch_size == 8 and s.throughput_cached == 0

    # reuse keeps the stored probe: no model call at all
    calls = stub.state.chat_calls
    again, reused = evaluate_candidate(cfg, "plain", store, reuse=True)
    assert reused and again.info.id == run.info.id and stub.state.chat_calls == calls

    decision, _ = decide(cfg, store, suite="main")
    a = decision.assessments[0]
    check = a.check("p95_latency_ms")
    assert check.passed and check.note == "as served" and check.n == 3
    assert a.evidence.p95_ms == pytest.approx(s.served_p95_latency_ms)
    assert "as served" in a.evidence.latency_basis

    # a new probe setting measures again on the reused run (answers reused, the probe not cached)
    cfg2 = load_config(_project(tmp_path, stub, probe="{cases: 2, concurrency: 2}"))
    again, reused = evaluate_candidate(cfg2, "plain", store, reuse=True)
    assert reused and stub.state.chat_calls == calls + 1 + 2
    probe2 = LatencyProbe.from_dict(store.get_info(run.info.id).metadata["latency_probe"])
    assert probe2.concurrency == 2 and probe2.n == 2


def test_probe_never_reads_the_response_cache(tmp_path: Path, stub) -> None:
    """A fresh run answered entirely from the response cache still probes the live model, and its
    batched throughput says it is not a measurement."""
    from rung.evals.aggregate import aggregate
    from rung.evals.runner import evaluate_candidate
    from rung.evals.store import RunStore

    cfg = load_config(_project(tmp_path, stub, probe="{cases: 2}"))
    store = RunStore(tmp_path / "rung.db")
    evaluate_candidate(cfg, "plain", store)
    calls = stub.state.chat_calls
    second, reused = evaluate_candidate(cfg, "plain", store)  # not reuse: a new run, all cached
    assert not reused and all(r.answer.cached for r in second.results)
    assert stub.state.chat_calls == calls + 1 + 2  # only the probe reached the model
    s = aggregate(store.get_run(second.info.id))
    assert s.throughput_cached == 8 and s.throughput_rps is None
    assert s.served_p95_latency_ms is not None


def test_probe_off_falls_back_to_batched_latency_and_says_so(tmp_path: Path, stub) -> None:
    from rung.decide.recommend import decide
    from rung.evals.runner import evaluate_candidate
    from rung.evals.store import RunStore

    cfg = load_config(_project(tmp_path, stub, probe="{cases: 0}"))
    store = RunStore(tmp_path / "rung.db")
    run, _ = evaluate_candidate(cfg, "plain", store)
    assert stub.state.chat_calls == 8 and "latency_probe" not in run.info.metadata
    decision, _ = decide(cfg, store, suite="main")
    e = decision.assessments[0].evidence
    assert not e.served and e.p95_ms == e.batched_p95_ms
    assert "no latency probe" in e.latency_basis
    assert decision.assessments[0].check("p95_latency_ms").note == "batched evaluation, no probe"


class _BatchClock:
    """A model like the local backend: a batch takes `per_request_s` per request and every
    completion of the batch reports the batch's wall time."""

    model_id = "batch-clock"

    def __init__(self, per_request_s: float) -> None:
        self.per_request_s = per_request_s
        self.batches: list[int] = []

    def fingerprint(self, adapter: str | None = None) -> str:
        return "batch-clock"

    def adapters(self) -> list[str]:
        return []

    def generate(self, requests, progress=None):  # noqa: ANN001, ANN201
        import time

        from rung.models.base import Completion

        self.batches.append(len(requests))
        t0 = time.perf_counter()
        time.sleep(self.per_request_s * len(requests))
        wall = time.perf_counter() - t0
        return [Completion(text="word", tokens_in=5, tokens_out=1, ttft_s=wall, total_s=wall,
                           model_id=self.model_id) for _ in requests]


def test_batched_latency_is_throughput_the_probe_is_one_request(tmp_path: Path) -> None:
    """The issue's case: with a batching backend every case of a batch of 8 records the batch's
    wall time, so P95 as evaluated is ~8x one request; the probe measures one request."""
    from rung.config import CandidateConfig, SuiteConfig
    from rung.evals.aggregate import aggregate
    from rung.evals.latency import PROBE_KEY, probe_latency
    from rung.evals.runner import build_scorers, run_suite
    from rung.evals.scorers.base import ScoreContext
    from rung.evals.store import RunStore
    from rung.evals.suite import Suite
    from rung.pipeline.pipeline import Pipeline

    model = _BatchClock(0.02)
    pipeline = Pipeline("clock", CandidateConfig(model="m"), model)
    suite = Suite("main", tmp_path / "cases.jsonl", _cases())
    store = RunStore(tmp_path / "rung.db")
    scorers = build_scorers(SuiteConfig(path="cases.jsonl", scorers=[]), suite)
    run = run_suite(pipeline, suite, scorers, ScoreContext(), store, batch_size=8)
    assert model.batches == [8]
    probe = probe_latency(pipeline, suite.cases, n=4, concurrency=1)
    assert model.batches == [8, 1, 1, 1, 1, 1]  # warm-up + 4 single requests
    run.info.metadata[PROBE_KEY] = probe.to_dict()
    s = aggregate(run)
    assert s.p95_latency_ms >= 8 * 0.02 * 1000 * 0.95
    assert s.served_p95_latency_ms < s.p95_latency_ms / 3
    assert s.throughput_rps == pytest.approx(8 / (8 * 0.02), rel=0.5)


def test_rung_eval_prints_served_and_batched_latency(tmp_path: Path, stub) -> None:
    from clirun import run_rung

    _project(tmp_path, stub, probe="{cases: 2}")
    r = run_rung("eval", "-c", "rung.yaml", "-C", "plain", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "p95 latency ms, as served" in r.stdout and "p95 latency ms, batched" in r.stdout
    assert "requests/s, batched" in r.stdout


def test_probe_skips_its_warm_up_when_the_model_is_loaded_and_batches_at_its_concurrency(tmp_path: Path) -> None:
    from rung.config import CandidateConfig
    from rung.evals.latency import probe_latency
    from rung.pipeline.pipeline import Pipeline

    model = _BatchClock(0.001)
    pipeline = Pipeline("clock", CandidateConfig(model="m"), model)
    probe_latency(pipeline, _cases(), n=4, concurrency=1)
    assert model.batches == [1, 1, 1, 1, 1]  # not loaded (an endpoint, a stub): warm-up first
    model.batches.clear()
    model.loaded = True  # type: ignore[attr-defined]  # a local model that just answered the run
    probe = probe_latency(pipeline, _cases(), n=8, concurrency=4)
    assert model.batches == [4, 4] and probe.n == 8 and probe.concurrency == 4
