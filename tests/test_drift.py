"""Drift: live requests vs the example's eval suite, with the embedded MiniLM."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rung.config.operations import DriftConfig
from rung.evals.suite import load_suite
from rung.ops.drift import candidate_cases, drift_report, mix_shifts, write_cases
from rung.ops.records import TraceRecord
from rung.ops.tracesource import write_jsonl
from tests.clirun import run_rung

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "support-desk"

NEW_TOPIC = [  # a product the suite has no case about: a video doorbell
    "My Havrel Lens doorbell camera keeps disconnecting from the chime, what can I do?",
    "How do I share the doorbell camera's live video with my partner?",
    "The doorbell camera's night vision is blurry, can I fix that?",
    "Does the Lens doorbell record motion events when the wifi is down?",
    "How long are doorbell video clips kept in the cloud?",
    "Can I mount the doorbell camera on a brick wall without drilling?",
    "The doorbell battery drains in three days, is that normal?",
    "Why does my doorbell camera send motion alerts for passing cars?",
]


def _live(cases, ts0: float) -> list[TraceRecord]:
    out = []
    for i, c in enumerate(cases[:40]):
        out.append(TraceRecord(id=f"tr-{i}", request_id=f"tr-{i}", ts=ts0 + i, release="a", channel="production",
                               input=c.question, metadata=dict(c.metadata)))
    for j, q in enumerate(NEW_TOPIC):
        out.append(TraceRecord(id=f"tr-new-{j}", request_id=f"tr-new-{j}", ts=ts0 + 100 + j, release="a",
                               channel="production", input=q, metadata={"jurisdiction": "US", "product": "doorbell"}))
    return out


def _embedder():  # noqa: ANN202
    from rung.pipeline.retrieval.index import get_embedder

    return get_embedder("embedded:all-minilm-l6-v2")


def test_drift_finds_the_new_topic_and_writes_cases(tmp_path):
    cases = load_suite(EXAMPLE / "cases" / "eval.jsonl").cases
    live = _live(cases, 1000.0)
    rep = drift_report(live, cases, _embedder(), DriftConfig(min_cluster_size=3, clusters=3, far_threshold=0.5))
    assert rep.n_live == 48 and rep.n_cases == len(cases)
    assert rep.distance_p50 < 0.05  # the suite's own questions: distance ~0
    assert 0.1 < rep.far_share <= 0.17  # at most the 8 doorbell requests
    doorbell = [c for c in rep.clusters if any("doorbell" in t or "camera" in t for t in c.terms)]
    assert doorbell and sum(c.size for c in doorbell) >= 6
    assert any("under-covers" in f and "doorbell" in f for f in rep.findings)
    product = next(m for m in rep.mix if m.dimension == "product")
    assert "doorbell" in product.under_covered and product.suite.get("doorbell", 0) == 0
    cands = candidate_cases(rep, live)
    path = write_cases(cands, tmp_path / "cands.jsonl")
    loaded = load_suite(path).cases  # what is written is a suite rung can read
    assert {c.question for c in loaded} <= set(NEW_TOPIC)
    assert all(c.metadata["drift"]["trace"].startswith("tr-new-") for c in loaded)


def test_no_drift_on_the_suites_own_questions():
    cases = load_suite(EXAMPLE / "cases" / "eval.jsonl").cases
    live = _live(cases, 0.0)[:40]
    rep = drift_report(live, cases, _embedder(), DriftConfig())
    assert rep.far_share == 0 and not rep.clusters
    assert all(not m.under_covered for m in mix_shifts(live, cases))


def test_drift_cli(tmp_path):
    cases = load_suite(EXAMPLE / "cases" / "eval.jsonl").cases
    live = _live(cases, time.time() - 3600)
    traces = write_jsonl(live, tmp_path / "traces.jsonl")
    out = tmp_path / "cands.jsonl"
    p = run_rung("drift", "-c", str(EXAMPLE / "rung.yaml"), "--since", "7d", "--traces", str(traces),
                 "-o", str(out), "--json", timeout=300)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["drifted"] and d["n_live"] == 48 and d["candidate_cases"] == str(out)
    assert out.is_file() and len(out.read_text().splitlines()) >= 6
