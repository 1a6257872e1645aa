"""The rollout judge over synthetic trace records: decisions, numbers and what more is needed."""

from __future__ import annotations

import random

from rung.config.operations import JudgeConfig
from rung.ops.records import TraceRecord
from rung.ops.rollout.judge import FAILED, INCONCLUSIVE, SUCCESSFUL, judge


def _records(n: int, arm: str, *, seed: int, refuse: float = 0.2, halluc: float = 0.02,
             latency: float = 300.0, slow_tail: float = 0.0, error: float = 0.0,
             cost: float = 0.001, safety: int = 0, prefix: str = "r",
             refuse_ids: set[int] | None = None) -> list[TraceRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        lat = rng.lognormvariate(0, 0.2) * latency
        if rng.random() < slow_tail:
            lat *= 5
        refused = (i in refuse_ids) if refuse_ids is not None else rng.random() < refuse
        labels = {"refused": refused, "hallucination": (not refused) and rng.random() < halluc,
                  "safety_violation": i < safety, "citation_correct": 1.0}
        out.append(TraceRecord(id=f"{arm}-{i}", request_id=f"{prefix}{i}", ts=1000.0 + i,
                               release=arm, channel="production", arm=arm,
                               latency_ms=lat, cost=cost * rng.uniform(0.9, 1.1),
                               error=rng.random() < error, labels=labels))
    return out


CFG = JudgeConfig(min_requests=50, min_labelled=30)


def test_equal_arms_succeed_in_both_modes():
    s = _records(300, "stable", seed=1)
    c = _records(300, "canary", seed=2, prefix="c")
    res = judge(s, c, CFG, mode="canary")
    assert res.decision == SUCCESSFUL, res.to_dict()
    assert res.check("refused").test == "fisher-exact"
    assert res.check("latency_p50").test == "mann-whitney"
    # shadow: same request ids, the same refusals (the same requests must be refused)
    ids = {i for i in range(300) if i % 5 == 0}
    s = _records(300, "stable", seed=1, refuse_ids=ids)
    c = _records(300, "shadow", seed=3, refuse_ids=ids)
    res = judge(s, c, CFG, mode="shadow")
    assert res.decision == SUCCESSFUL, res.summary()
    assert res.n_pairs == 300
    chk = res.check("refused")
    assert chk.test == "mcnemar-exact" and chk.discordant == (0, 0)


def test_shadow_refusal_drop_fails_with_paired_numbers():
    ids = {i for i in range(200) if i % 4 == 0}  # 50 must-refuse requests
    s = _records(200, "stable", seed=1, refuse_ids=ids)
    c = _records(200, "shadow", seed=1, refuse_ids={i for i in ids if i % 8 == 0})  # refuses half
    res = judge(s, c, CFG, mode="shadow")
    assert res.decision == FAILED
    chk = res.check("refused")
    assert chk.verdict == "fail" and chk.test == "mcnemar-exact"
    assert chk.discordant == (0, 25)  # 25 pairs: stable refused, shadow answered
    assert chk.p_value < 1e-6 and abs(chk.delta + 0.125) < 1e-9
    assert "down" in chk.reason
    assert any(r.startswith("refused") for r in res.reasons)


def test_safety_violation_is_a_hard_cap():
    s = _records(100, "stable", seed=1)
    c = _records(100, "canary", seed=2, safety=1, prefix="c")
    res = judge(s, c, CFG)
    assert res.decision == FAILED
    assert res.check("safety_violation").test == "cap"


def test_latency_tail_blowup_fails_and_small_samples_hold():
    s = _records(400, "stable", seed=1)
    c = _records(400, "canary", seed=2, slow_tail=0.15, prefix="c")
    res = judge(s, c, CFG)
    assert res.decision == FAILED
    p95 = res.check("latency_p95")
    assert p95.verdict == "fail" and p95.ratio > 1.25 and p95.test == "tail-fisher"
    # too few requests: inconclusive, saying how many more are needed
    res = judge(s[:20], c[:20], CFG)
    assert res.decision == INCONCLUSIVE
    assert any("30 more canary requests" in n for n in res.needed)


def test_not_significant_but_beyond_tolerance_is_inconclusive_with_an_estimate():
    s = _records(60, "stable", seed=4, halluc=0.02)
    c = _records(60, "canary", seed=5, halluc=0.09, prefix="c")
    res = judge(s, c, CFG)
    h = res.check("hallucination")
    assert h.verdict == "inconclusive", h
    assert h.more_needed and h.more_needed > 0
    assert res.decision == INCONCLUSIVE
    assert any(n.startswith("hallucination: about") for n in res.needed)


def test_cost_and_errors():
    s = _records(200, "stable", seed=1)
    c = _records(200, "canary", seed=2, cost=0.002, error=0.1, prefix="c")
    res = judge(s, c, CFG)
    assert res.check("cost_per_request").verdict == "fail"
    assert res.check("error_rate").verdict == "fail"
    d = res.to_dict()
    assert d["decision"] == FAILED and {c["name"] for c in d["checks"]} >= {"error_rate", "cost_per_request"}


def test_feedback_overrides_and_derived_refusal_labels():
    r = TraceRecord(id="t", request_id="q", ts=0, labels={"refused": 1, "schema_valid": 0},
                    feedback={"should_refuse": False})
    assert r.label("over_refusal") == 1.0 and r.label("under_refusal") == 0.0
    assert r.label("schema_invalid") == 1.0
    r.feedback["refused"] = 0
    assert r.label("refused") == 0.0 and r.label("over_refusal") == 0.0
