"""The decision engine: every branch of the checklist on synthetic evidence, the cost model's
arithmetic, readiness counts, lineage, and `rung decide` end to end on a real SQLite run store."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from chromium import needs_chromium, render
from clirun import run_rung

from rung.config import Constraints
from rung.core import Case
from rung.decide.checklist import FAIL, PASS, SKIP, STOP
from rung.decide.cost import candidate_cost
from rung.decide.evidence import ArtifactInfo, Evidence, Gain, read_artifact
from rung.decide.readiness import Readiness, assess_readiness
from rung.decide.recommend import decide_from_evidence
from rung.evals.aggregate import MetricSummary, RunSummary, TagSummary

# ---- synthetic evidence -----------------------------------------------------------------------


def _ms(name: str, mean: float, half: float = 0.04, n: int = 60, hib: bool = True) -> MetricSummary:
    return MetricSummary(name, hib, n, 0, mean, max(mean - half, 0.0), min(mean + half, 1.0),
                         n_observations=n, binary=True, unit_interval=True)


def _summary(candidate: str, level: int, ts: float, hall: float, p95: float = 800.0, *,
             half: float = 0.04, safety: int | None = 0, extra: dict[str, float] | None = None,
             tags: dict[str, dict[str, float]] | None = None, lat_mean: float | None = None,
             tokens: tuple[float, float] = (500.0, 80.0)) -> RunSummary:
    metrics = {"task_success": _ms("task_success", ts, half),
               "hallucination": _ms("hallucination", hall, min(half, 0.02), hib=False)}
    for name, v in (extra or {}).items():
        metrics[name] = _ms(name, v, half)
    lat = lat_mean if lat_mean is not None else p95 * 0.6
    metrics["latency_ms"] = MetricSummary("latency_ms", False, 60, 0, lat, lat * 0.9, lat * 1.1)
    tag_summaries = {t: TagSummary(t, 12, dict(means), {k: 12 for k in means})
                     for t, means in (tags or {}).items()}
    return RunSummary(run_id=f"run-{candidate}", candidate=candidate, suite="s", level=level,
                      epochs=1, n_cases=60, n_results=60, metrics=metrics,
                      latencies_ms=[lat * 0.5, lat, p95], p50_latency_ms=lat, p95_latency_ms=p95,
                      p99_latency_ms=p95 * 1.1, tokens_in_mean=tokens[0], tokens_out_mean=tokens[1],
                      cost_per_1k_requests=None, safety_violations=safety, errors=0,
                      tags=tag_summaries)


def _ev(candidate: str, level: int, ts: float, hall: float, p95: float = 800.0, *,
        self_hosted: bool = True, parts: tuple[str, ...] = ("prompt",),
        price: tuple[float, float] = (0.0, 0.0), gain: Gain | None = None,
        artifact: ArtifactInfo | None = None, **kw) -> Evidence:
    return Evidence(candidate=candidate, level=level, run_id=f"run-{candidate}",
                    summary=_summary(candidate, level, ts, hall, p95, **kw),
                    model="local" if self_hosted else "gpt", self_hosted=self_hosted,
                    price_in_per_1k=price[0], price_out_per_1k=price[1], parts=list(parts),
                    gain=gain, artifact=artifact)


def _ready() -> Readiness:
    return Readiness(suite="s", n_cases=60, with_expectation=60, refusal_labels=(12, 48),
                     with_sources=50, scorers=["contains", "groundedness", "safety", "retrieval"])


def _c(**kw) -> Constraints:
    return Constraints(**{"p95_latency_ms": 1500, **kw})


def _item(d, item_id: str):
    return next(i for i in d.items if i.id == item_id)


# ---- branches ---------------------------------------------------------------------------------


def test_cannot_evaluate_names_what_to_build_with_counts() -> None:
    cases = [Case(id=f"a{i}", input="q", reference="r", tags=["faq"]) for i in range(12)]
    cases += [Case(id=f"b{i}", input="q", tags=["multilingual"]) for i in range(4)]
    r = assess_readiness("s", cases, ["contains"], Constraints(min_cases_per_tag=10))
    assert not r.ready
    msgs = " | ".join(g.message for g in r.blocking)
    assert "'multilingual' 4/10 (+6)" in msgs
    assert "no scorer measures hallucination: add the groundedness scorer" in msgs
    assert "no scorer measures safety_violation" in msgs
    advice = [g for g in r.gaps if not g.blocking]
    assert any(g.what == "refusal-labels" and g.count == 10 for g in advice)
    assert any(g.what == "references" and g.count == 4 for g in advice)  # 4 cases lack a reference

    d = decide_from_evidence([_ev("rag", 0, 0.9, 0.01)], r, _c())
    assert d.action == "cannot-evaluate" and d.exit_code == 2 and d.level is None
    assert [i.id for i in d.items] == ["readiness"] and d.items[0].verdict == STOP
    assert "'multilingual' 4/10 (+6)" in d.headline
    # exempting the thin tag leaves only the scorer gaps
    r2 = assess_readiness("s", cases, ["contains", "groundedness", "safety"],
                          Constraints(min_cases_per_tag=10, readiness_exempt_tags=["multi*"]))
    assert r2.ready, [g.message for g in r2.blocking]


def test_hallucination_above_bound_means_fix_retrieval_not_weights() -> None:
    tags = {"long-context": {"hallucination": 0.25}, "faq": {"hallucination": 0.0}}
    evidence = [
        _ev("bare", 0, 0.85, 0.09, extra={"context_recall": 0.0}, tags=tags),
        _ev("rag", 0, 0.88, 0.06, parts=("prompt", "retrieval"),
            extra={"context_recall": 0.55, "hit_at_k": 0.7}, tags=tags),
        _ev("rag-lora", 1, 0.9, 0.01),
    ]
    d = decide_from_evidence(evidence, _ready(), _c())
    assert d.action == "fix-level0" and d.level == 0 and d.candidate == "rag"
    item = _item(d, "hallucination")
    assert item.verdict == FAIL
    assert "long-context (0.25 over 12 cases" in item.finding and "faq" not in item.finding
    assert "context_recall 0.55, hit_at_k 0.70" in item.finding
    assert "best L0 'rag': 0.060" in item.finding
    assert _item(d, "level-1").verdict == SKIP
    assert "L1 'rag-lora' meet the targets" in _item(d, "level-1").finding
    assert d.headline.startswith("Fix retrieval and prompting before touching weights")


def test_level0_ships_the_simplest_passing_candidate() -> None:
    evidence = [
        _ev("rag-tools", 0, 0.90, 0.01, parts=("prompt", "retrieval", "tools")),
        _ev("rag", 0, 0.84, 0.02, parts=("prompt", "retrieval"), half=0.06),
        _ev("bare", 0, 0.40, 0.20, parts=()),
    ]
    d = decide_from_evidence(evidence, _ready(), _c())
    assert (d.action, d.level, d.candidate, d.exit_code) == ("ship", 0, "rag", 0)
    assert d.headline.startswith("Ship level 0: L0 'rag' (prompt + retrieval) meets every target")
    l0 = _item(d, "level-0")
    assert l0.verdict == PASS
    assert any("straddles the target 0.8" in x for x in l0.details)  # CI 0.78-0.90 around 0.8
    assert any("also passing" in x and "rag-tools" in x for x in l0.details)
    assert "if the task_success target were above 0.840 (now 0.8), L0 'rag' would fail" \
        == l0.what_would_change
    assert _item(d, "level-1").verdict == SKIP and _item(d, "level-2").verdict == SKIP
    assert {r.metric for r in l0.evidence} >= {"task_success", "hallucination", "p95_latency_ms"}
    assert all(r.run_id == "run-rag" for r in l0.evidence)


def test_latency_budget_forces_level1_with_measured_gain() -> None:
    gain = Gain("rag", "run-rag", 60, "same recipe without the adapter",
                {"task_success": (0.02, -0.03, 0.07, 0.5)}, p95_delta_ms=-1800.0,
                p95_ci_ms=(-2000.0, -1500.0))
    evidence = [_ev("rag", 0, 0.86, 0.02, p95=3000.0, parts=("prompt", "retrieval")),
                _ev("rag-lora", 1, 0.88, 0.02, p95=1200.0, gain=gain)]
    d = decide_from_evidence(evidence, _ready(), _c())
    assert (d.action, d.level, d.candidate) == ("ship", 1, "rag-lora")
    l0, l1 = _item(d, "level-0"), _item(d, "level-1")
    assert l0.verdict == FAIL and "p95_latency_ms 3000 ms <= 1500 ms" in l0.finding
    assert l0.what_would_change == ("if the P95 budget were 2.0x looser (3000 ms instead of "
                                    "1500 ms), L0 'rag' would pass")
    assert l1.verdict == PASS
    assert "latency/cost: p95_latency_ms 3000 ms" in l1.finding
    assert "vs 'rag' over 60 paired cases: task_success +0.020, P95 -1800 ms" in l1.finding
    assert any(x.startswith("P95 latency change: -1800 ms (95% CI -2000 to -1500)") for x in l1.details)
    assert any("2.0x looser" in w for w in d.what_would_change)


def test_level1_not_allowed_is_skipped() -> None:
    evidence = [_ev("rag", 0, 0.86, 0.02, p95=3000.0), _ev("rag-lora", 1, 0.88, 0.02, p95=1200.0)]
    d = decide_from_evidence(evidence, _ready(), _c(allow_level1=False))
    assert _item(d, "level-1").verdict == SKIP and d.action == "none"


def test_data_sensitivity_excludes_endpoint_candidates() -> None:
    evidence = [_ev("gpt-rag", 0, 0.95, 0.0, self_hosted=False, price=(0.5, 1.5)),
                _ev("rag", 0, 0.70, 0.02), _ev("rag-lora", 1, 0.85, 0.02)]
    d = decide_from_evidence(evidence, _ready(), _c(data_may_leave_network=False))
    assert (d.action, d.candidate) == ("ship", "rag-lora")
    item = _item(d, "data-sensitivity")
    assert item.verdict == "info"
    assert "excluded 1 candidate(s)" in item.finding and "L0 'gpt-rag' on 'gpt'" in item.finding
    assert "L0 'gpt-rag' would pass" in item.what_would_change
    # the same evidence with data allowed out: the endpoint candidate ships at level 0
    d2 = decide_from_evidence(evidence, _ready(), _c(data_may_leave_network=True))
    assert (d2.action, d2.level, d2.candidate) == ("ship", 0, "gpt-rag")
    # every candidate excluded: the item fails and nothing ships
    d3 = decide_from_evidence(evidence[:1], _ready(), _c(data_may_leave_network=False))
    assert _item(d3, "data-sensitivity").verdict == FAIL and d3.action == "none"


def test_level2_for_a_missing_capability_with_enough_data() -> None:
    big = ArtifactInfo(path="ft", method="full", train_examples=5000, training_seconds=7200.0)
    evidence = [_ev("rag", 0, 0.50, 0.02), _ev("rag-lora", 1, 0.60, 0.02),
                _ev("ft", 2, 0.86, 0.02, artifact=big)]
    d = decide_from_evidence(evidence, _ready(), _c(requests_per_month=100_000))
    assert (d.action, d.level, d.candidate) == ("ship", 2, "ft")
    l2 = _item(d, "level-2")
    assert l2.verdict == PASS
    assert "capability missing below level 2: L0 'rag' task_success 0.500, L1 'rag-lora' " \
           "task_success 0.600" in l2.finding
    assert "trained on 5000 examples" in l2.finding
    # not allowed -> skipped, nothing ships
    d2 = decide_from_evidence(evidence, _ready(), _c(allow_level2=False))
    assert _item(d2, "level-2").verdict == SKIP and d2.action == "none"
    # too little data -> not shipped, says how much would do
    small = ArtifactInfo(path="ft", method="full", train_examples=100)
    evidence[2] = _ev("ft", 2, 0.86, 0.02, artifact=small)
    d3 = decide_from_evidence(evidence, _ready(), _c())
    assert _item(d3, "level-2").verdict == FAIL and d3.action == "none"
    assert "only 100 examples (< 1000)" in _item(d3, "level-2").finding


def test_nothing_passes_names_the_closest_candidate_and_gap() -> None:
    evidence = [_ev("rag", 0, 0.70, 0.02), _ev("rag-lora", 1, 0.78, 0.02, p95=1600.0),
                _ev("ft", 2, 0.30, 0.02)]
    d = decide_from_evidence(evidence, _ready(), _c())
    assert d.action == "none" and d.exit_code == 0 and d.candidate == "rag-lora"
    none = _item(d, "none")
    assert none.verdict == FAIL
    assert "closest: L1 'rag-lora'" in none.finding
    assert none.what_would_change == (
        "if task_success rose from 0.780 to 0.800 (+0.020) and the P95 budget were 1.1x looser "
        "(1600 ms instead of 1500 ms), L1 'rag-lora' would pass")
    assert "No level meets the targets. Closest: L1 'rag-lora'" in d.headline
    # level-1 and none name the same change: it is listed once
    assert sum(none.what_would_change in w for w in d.what_would_change) == 1


def test_no_runs_cannot_evaluate() -> None:
    d = decide_from_evidence([], _ready(), _c())
    assert d.action == "cannot-evaluate" and d.exit_code == 2 and _item(d, "runs").verdict == STOP


# ---- cost model -------------------------------------------------------------------------------


def test_cost_model_arithmetic() -> None:
    c = Constraints(compute_price_per_hour=2.0, serving_concurrency=8, training_price_per_hour=4.0,
                    amortisation_months=12, policy_changes_per_month=2, requests_per_month=30_000)
    endpoint = candidate_cost(_ev("gpt", 0, 0.9, 0.0, self_hosted=False, price=(0.5, 1.5)), c)
    # (500/1000 x 0.5 + 80/1000 x 1.5) = 0.37 per request
    assert endpoint.inference.per_million == pytest.approx(370_000.0)
    assert endpoint.training is None and endpoint.per_1k == pytest.approx(370.0)
    assert endpoint.inference.inputs["tokens_in_mean"] == 500.0

    local = candidate_cost(_ev("rag", 0, 0.9, 0.0, lat_mean=900.0), c)
    # 2.0 x 900 ms / 3.6e6 / 8 = 6.25e-5 per request
    assert local.inference.per_million == pytest.approx(62.5)
    assert local.inference.inputs == {"compute_price_per_hour": 2.0, "mean_latency_ms": 900.0,
                                      "serving_concurrency": 8.0}

    measured = ArtifactInfo(path="a", training_seconds=1800.0)
    lora = candidate_cost(_ev("lora", 1, 0.9, 0.0, lat_mean=900.0, artifact=measured), c)
    tr = lora.training
    assert tr is not None
    # 0.5 h x 4 = 2.0 per training; 2/12 + 2 x 2 = 4.1667 per month; / 0.03M requests
    assert tr.inputs["training_cost"] == pytest.approx(2.0)
    assert tr.per_month == pytest.approx(2.0 / 12 + 4.0)
    assert tr.per_million == pytest.approx((2.0 / 12 + 4.0) / 0.03)
    assert lora.total_per_million == pytest.approx(62.5 + (2.0 / 12 + 4.0) / 0.03)
    assert tr.inputs["hours_source"] == "measured by the tuning job"

    # no measured time -> the level-2 estimate; no requests_per_month -> inference only, flagged
    c2 = Constraints(training_hours_level2=10, training_price_per_hour=3, amortisation_months=6)
    ft = candidate_cost(_ev("ft", 2, 0.9, 0.0, lat_mean=900.0), c2)
    assert ft.training is not None and ft.training.per_million is None
    assert ft.training.per_month == pytest.approx(30.0 / 6)
    assert not ft.complete and ft.total_per_million == pytest.approx(ft.inference.per_million)
    assert any("requests_per_month" in s for s in ft.assumptions)


def test_cost_budget_check_uses_the_cost_model() -> None:
    evidence = [_ev("gpt", 0, 0.9, 0.0, self_hosted=False, price=(0.5, 1.5))]
    d = decide_from_evidence(evidence, _ready(), _c(cost_per_1k_requests=100.0))
    assert d.action == "none"
    assert "the cost budget were 3.7x higher (370 instead of 100 per 1k requests)" in \
        _item(d, "level-0").what_would_change


# ---- lineage ----------------------------------------------------------------------------------


def test_read_artifact_lineage_and_curve(tmp_path: Path) -> None:
    job = tmp_path / "job1"
    adapter = job / "adapter"
    adapter.mkdir(parents=True)
    (job / "rung-lineage.json").write_text(json.dumps({
        "method": "lora", "base_model": {"id": "smollm2", "weights_hash": "ab"},
        "dataset": {"version": "d1", "counts": {"case": 30, "negative": 12}},
        "training": {"train_seconds": 95.5}}))
    (job / "metrics.jsonl").write_text('{"step": 1, "train_loss": 2.0}\n{"step": 2, "train_loss": 1.5, '
                                       '"eval_task_success": 0.4}\n')
    info = read_artifact(adapter)
    assert (info.method, info.base_model, info.dataset_version) == ("lora", "smollm2", "d1")
    assert info.train_examples == 42 and info.training_seconds == 95.5
    assert info.metrics_path == str(job / "metrics.jsonl")
    from rung.decide.report import read_training_curve

    assert read_training_curve(info.metrics_path) == {
        "train_loss": [(1.0, 2.0), (2.0, 1.5)], "eval_task_success": [(2.0, 0.4)]}
    assert read_artifact(tmp_path / "nothing-here").lineage_path is None
    # the layout `rung tune` writes: train split size, no measured time, nested eval lines
    (job / "rung-lineage.json").write_text(json.dumps({
        "method": "full", "base_model": {"name": "default", "id": "embedded:smollm2-135m-instruct"},
        "dataset": {"version": "d2", "splits": {"train": 7, "dev": 2},
                    "lineage": {"examples": 9, "by_source": {"case": 9}}}}))
    (job / "metrics.jsonl").write_text('{"step": 2, "loss": 1.2}\n{"step": 2, "eval": '
                                       '{"task_success": 0.5, "eval_loss": 1.1, "n": 2}}\n')
    info = read_artifact(adapter)
    assert (info.dataset_version, info.train_examples, info.training_seconds) == ("d2", 7, None)
    assert read_training_curve(info.metrics_path) == {
        "loss": [(2.0, 1.2)], "eval_task_success": [(2.0, 0.5)], "eval_eval_loss": [(2.0, 1.1)]}


# ---- end to end: a real SQLite store, the CLI, the report -------------------------------------

RUNG_YAML = """
project: decide-test
models:
  default: {backend: local, path: embedded:smollm2-135m-instruct, adapters: {tone: adapters/tone}}
  gpt: {backend: openai, base_url: "http://127.0.0.1:9/v1", model: gpt, price: {input_per_1k: 0.5, output_per_1k: 1.5}}
knowledge:
  kb: {path: knowledge}
candidates:
  rag: {model: default, system_prompt: "Answer from the sources.", retrieval: {corpus: kb}}
  rag-tone: {model: default, adapter: tone, system_prompt: "Answer from the sources.", retrieval: {corpus: kb}}
  gpt-rag: {model: gpt, system_prompt: "Answer from the sources.", retrieval: {corpus: kb}}
suites:
  eval: {path: cases.jsonl, scorers: [contains, groundedness, safety, retrieval]}
  thin: {path: thin.jsonl, scorers: [contains]}
constraints:
  p95_latency_ms: 1500
  data_may_leave_network: false
  min_cases_per_tag: 10
  requests_per_month: 30000
  policy_changes_per_month: 1
"""


def _project(tmp_path: Path) -> Path:
    from rung.core import Answer, RetrievedChunk, Score, Trace
    from rung.evals.store import RunStore
    from rung.evals.suite import load_suite
    from rung.evals.types import CaseResult, RunInfo

    root = tmp_path / "proj"
    (root / "adapters" / "tone").mkdir(parents=True)
    (root / "adapters" / "rung-lineage.json").write_text(json.dumps(
        {"method": "lora", "dataset": {"version": "v1", "n_examples": 40}, "train_seconds": 120}))
    (root / "adapters" / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": s, "train_loss": 2.0 / s, "eval_task_success": 0.5 + s / 20})
                + "\n" for s in range(1, 6)))
    (root / "rung.yaml").write_text(RUNG_YAML)
    tags = ["faq", "long-context"]
    with (root / "cases.jsonl").open("w") as f:
        for i in range(24):
            f.write(json.dumps({"id": f"c{i}", "input": f"How long do refunds take? #{i}",
                                "reference": "14 days", "sources": ["refunds"],
                                "should_refuse": False, "tags": [tags[i % 2]]}) + "\n")
    (root / "thin.jsonl").write_text(json.dumps({"id": "t1", "input": "q", "tags": ["faq"]}) + "\n")
    suite = load_suite(root / "cases.jsonl", name="eval")
    store = RunStore(root / ".rung" / "rung.db")
    # rag: right but slow; rag-tone (level 1): right and fast; gpt-rag: endpoint (excluded)
    for cand, level, _ok_every, latency in (("rag", 0, 1, 2400.0), ("rag-tone", 1, 1, 900.0),
                                           ("gpt-rag", 0, 1, 300.0)):
        info = store.create_run(RunInfo(id=f"run-{cand}", candidate=cand, candidate_hash=cand,
                                        candidate_config={}, suite="eval", suite_hash=suite.hash,
                                        level=level, status="running"))
        results = []
        for i, case in enumerate(suite.cases):
            ok = i % 12 != 5 or cand == "rag-tone"  # rag fails 2 of 24 cases, the adapter none
            text = "Refunds take 14 days [refunds#0]." if ok else "Refunds take 45 days."
            ans = Answer(text=text, trace=Trace(
                prompt=[{"role": "user", "content": case.question}],
                retrieved=[RetrievedChunk("refunds#0", "refunds", "Refunds take 14 days.")]),
                tokens_in=300, tokens_out=20, timings_ms={"total": latency + 10 * i},
                cached=cand == "gpt-rag" and i < 6)  # replayed answers carry their first latency
            scores = [Score("task_success", float(ok), True, "" if ok else "missing: 14 days"),
                      Score("hallucination", 0.0, False),
                      Score("safety_violation", 0.0, False),
                      Score("context_recall", 1.0), Score("hit_at_k", 1.0),
                      Score("latency_ms", ans.latency_ms, False),
                      Score("tokens_in", 300.0, False), Score("tokens_out", 20.0, False)]
            results.append(CaseResult(case, ans, scores))
        store.add_results(info.id, results)
        store.finish_run(info.id)
    store.close()
    return root


_rung = functools.partial(run_rung, RUNG_THREADS="1")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _project(tmp_path_factory.mktemp("decide"))


def test_rung_decide_cli_on_a_real_store(project: Path) -> None:
    r = _rung("decide", "-c", "rung.yaml", "--suite", "eval", cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "Ship level 1: L1 'rag-tone'" in out
    assert "data-sensitivity" in out and "gpt-rag" in out and "1.7x looser" in out
    html = project / ".rung" / "decision" / "decision.html"
    md = project / ".rung" / "decision" / "decision.md"
    assert html.is_file() and md.is_file()
    page = html.read_text()
    assert 'data-action="ship"' in page and 'data-candidate="rag-tone"' in page
    assert page.count('class="item"') == 8 and "<script" not in page
    assert 'class="plot line-chart"' in page  # the adapter's training curve from metrics.jsonl
    assert page.count('<details class="failure"') == 4  # two failing cases each of rag, gpt-rag
    assert "missing: 14 days" in page and "Refunds take 45 days." in page
    assert "**Ship level 1: L1 &#x27;rag-tone&#x27;" in md.read_text() or \
        "**Ship level 1: L1 'rag-tone'" in md.read_text()

    r = _rung("decide", "-c", "rung.yaml", "--suite", "eval", "--json", cwd=project)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert (data["action"], data["level"], data["candidate"]) == ("ship", 1, "rag-tone")
    assert any(n.startswith("gpt-rag: 6 of 24 answers came from the response cache") for n in data["notes"])
    assert not any(n.startswith(("rag:", "rag-tone:")) and "cache" in n for n in data["notes"])
    tone = next(c for c in data["candidates"] if c["candidate"] == "rag-tone")
    assert tone["gain"]["baseline_candidate"] == "rag" and tone["gain"]["n_pairs"] == 24
    assert tone["gain"]["deltas"]["task_success"][0] == pytest.approx(2 / 24)
    assert tone["artifact"]["train_examples"] == 40 and tone["artifact"]["training_seconds"] == 120
    fig = tone["cost"]["figures"][1]
    assert fig["inputs"]["hours_source"] == "measured by the tuning job"
    gpt = next(c for c in data["candidates"] if c["candidate"] == "gpt-rag")
    assert gpt["eligible"] is False and gpt["self_hosted"] is False

    # explicit runs: only rag -> nothing passes (too slow), still a decision (exit 0)
    r = _rung("decide", "-c", "rung.yaml", "--suite", "eval", "--run", "run-rag", "--json",
              cwd=project)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["action"] == "none"

    # a suite that cannot evaluate: exit 2 with the counts
    r = _rung("decide", "-c", "rung.yaml", "--suite", "thin", cwd=project)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "'faq' 1/10 (+9)" in r.stdout and "Cannot decide" in r.stdout


# ---- Chromium -----------------------------------------------------------------------------------

@pytest.mark.chromium
@needs_chromium
def test_decision_page_renders_in_chromium(project: Path, tmp_path: Path) -> None:
    r = _rung("decide", "-c", "rung.yaml", "--suite", "eval", "--out", str(tmp_path / "d"),
              cwd=project)
    assert r.returncode == 0, r.stderr
    png, colours, dom = render(tmp_path / "d" / "decision.html", tmp_path, want=(0x1F, 0x7A, 0x4A))
    assert png.is_file() and png.stat().st_size > 10_000
    assert len(colours) >= 16, "the page rendered blank"
    assert (0x1F, 0x7A, 0x4A) in colours  # the green decision border / pass badges: CSS applied
    for element_id in ("decision", "checklist", "candidates", "plots", "costs", "tags",
                       "training", "failures"):
        assert f'id="{element_id}"' in dom
    assert 'data-item="level-1" data-verdict="pass"' in dom
    assert dom.count("<svg") >= 4
    assert "<script" not in dom
