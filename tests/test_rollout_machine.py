"""The rollout state machine over a real release store (SQLite): start, steps, automatic
rollback with the judge's numbers in the log, promotion through the release gate, abort, and
sticky arm assignment."""

from __future__ import annotations

import time

import pytest

from rung.config.operations import JudgeConfig, RolloutConfig
from rung.ops.releases import ReleaseError, live_release, promote
from rung.ops.rollout.assign import bucket, choose, choose_arm
from rung.ops.rollout.machine import abort_rollout, evaluate, start_rollout
from rung.ops.rollout.state import current_rollout, iso_seconds
from tests.rollout_support import make_release, open_store, traffic

CFG = RolloutConfig(mode="shadow", steps=[50, 100], min_requests=40, min_minutes=0,
                    judge=JudgeConfig(min_requests=40, min_labelled=30))


@pytest.fixture()
def store(tmp_path):
    s = open_store(tmp_path)
    yield s
    s.close()


def _live(store, rel):  # noqa: ANN001, ANN202
    from rung.config import GateConfig

    promote(store, rel.id, "production", GateConfig(), force=True, reason="first release")


def test_shadow_rollout_of_a_release_that_stops_refusing_rolls_back(store):
    a = make_release(store, "gated")
    b = make_release(store, "ungated")
    _live(store, a)
    r = start_rollout(store, "production", b.id, CFG)
    assert r.running and r.weight == 50 and r.mode == "shadow"
    t0 = iso_seconds(r.step_started_at) + 1e-3
    must = {i for i in range(80) if i % 4 == 0}  # 20 must-refuse requests
    recs = (traffic(80, release=a.id, arm="stable", ts0=t0, refuse_ids=must)
            + traffic(80, release=b.id, arm="shadow", ts0=t0, seed=1, refuse_ids={0, 4}))
    out = evaluate(store, "production", recs)
    assert out.action == "rollback"
    r = current_rollout(store, "production")
    assert r.status == "rolled back" and r.weight == 0
    ev = r.events[-1]
    chk = next(c for c in ev.evidence["judge"]["checks"] if c["name"] == "refused")
    assert chk["test"] == "mcnemar-exact" and chk["discordant"] == [0, 18] and chk["n_pairs"] == 80
    assert chk["p_value"] < 1e-4
    assert live_release(store, "production").id == a.id  # the stable never moved
    # the log: promote, rollout start, rollout rollback
    kinds = [(e.kind, e.flag) for e in store.events("production")]
    assert kinds == [("promote", None), ("rollout", "start"), ("rollout", "rollback")]


def test_equal_release_steps_up_and_is_promoted_through_the_gate(store):
    a = make_release(store, "a")
    b = make_release(store, "b")
    _live(store, a)
    r = start_rollout(store, "production", b.id, CFG)
    must = {i for i in range(80) if i % 4 == 0}
    t0 = iso_seconds(r.step_started_at) + 1e-3
    recs = (traffic(80, release=a.id, arm="stable", ts0=t0, refuse_ids=must)
            + traffic(80, release=b.id, arm="shadow", ts0=t0, seed=1, refuse_ids=must))
    time.sleep(0.05)  # the next step begins after these requests
    out = evaluate(store, "production", recs)
    assert out.action == "step", out.message
    r = current_rollout(store, "production")
    assert r.step == 1 and r.weight == 100
    # the next step only counts requests after it began
    out = evaluate(store, "production", recs)
    assert out.action == "hold" and "more paired requests" in out.message
    n_holds = sum(e.flag == "hold" for e in store.events("production"))
    evaluate(store, "production", recs)  # same reasons: no second hold event
    assert sum(e.flag == "hold" for e in store.events("production")) == n_holds == 1
    t1 = iso_seconds(r.step_started_at) + 1e-3
    recs2 = (traffic(60, release=a.id, arm="stable", ts0=t1, refuse_ids=must, prefix="z")
             + traffic(60, release=b.id, arm="shadow", ts0=t1, seed=2, refuse_ids=must, prefix="z"))
    out = evaluate(store, "production", recs + recs2)
    assert out.action == "promoted", out.message
    assert live_release(store, "production").id == b.id
    assert current_rollout(store, "production").status == "promoted"


def test_gate_refusal_blocks_the_promotion(store):
    a = make_release(store, "a")
    b = make_release(store, "worse-offline", refusal_correct=[0] * 10 + [1] * 10)
    _live(store, a)
    cfg = RolloutConfig(mode="canary", steps=[100], min_requests=40, min_minutes=0,
                        judge=JudgeConfig(min_requests=40, min_labelled=30))
    r = start_rollout(store, "production", b.id, cfg)
    t0 = iso_seconds(r.step_started_at) + 1e-3
    recs = (traffic(60, release=a.id, arm="stable", ts0=t0)
            + traffic(60, release=b.id, arm="canary", ts0=t0, seed=1, prefix="k"))
    out = evaluate(store, "production", recs)
    assert out.action == "blocked", out.message
    assert "refused" in out.message
    assert live_release(store, "production").id == a.id


def test_start_and_abort_rules(store):
    a = make_release(store, "a")
    b = make_release(store, "b")
    with pytest.raises(ReleaseError, match="no live release"):
        start_rollout(store, "production", b.id, CFG)
    _live(store, a)
    with pytest.raises(ReleaseError, match="already live"):
        start_rollout(store, "production", a.id, CFG)
    start_rollout(store, "production", b.id, CFG)
    with pytest.raises(ReleaseError, match="already has a running rollout"):
        start_rollout(store, "production", b.id, CFG)
    r = abort_rollout(store, "production", reason="changed my mind")
    assert r.status == "aborted" and r.weight == 0
    assert evaluate(store, "production", []) is None


def test_sticky_assignment(store):
    a = make_release(store, "a")
    b = make_release(store, "b")
    _live(store, a)
    cfg = RolloutConfig(mode="canary", steps=[5, 25, 50, 100])
    r = start_rollout(store, "production", b.id, cfg)
    users = [f"user{i}" for i in range(4000)]
    at5 = {u for u in users if choose_arm(r, "acme", u)[1] == "canary"}
    assert 0.03 < len(at5) / len(users) < 0.07
    assert all(choose_arm(r, "acme", u) == choose_arm(r, "acme", u) for u in users[:50])
    r.step = 1  # 25 %: everyone in the canary at 5 % stays in it
    at25 = {u for u in users if choose_arm(r, "acme", u)[1] == "canary"}
    assert at5 <= at25 and 0.22 < len(at25) / len(users) < 0.28
    assert choose_arm(r, "acme", "user1")[0] in (a.id, b.id)
    assert bucket("x", "y") == bucket("x", "y")
    # shadow: the user always gets the stable answer; a share of requests is mirrored
    r.mode = "shadow"
    picks = [choose(r, "acme", "u", request_id=f"req{i}") for i in range(2000)]
    assert all(p.release == a.id and p.arm == "stable" for p in picks)
    assert 0.2 < sum(p.shadow == b.id for p in picks) / 2000 < 0.3
    r.status = "rolled back"
    assert choose(r, "acme", "u", request_id="x").shadow is None


def test_rollout_cache_for_the_gateway(store):
    from rung.ops.rollout.assign import RolloutCache

    a, b = make_release(store, "a"), make_release(store, "b")
    _live(store, a)
    cache = RolloutCache(store, ttl_s=0.0)
    assert cache.choose("production@acme", "acme", "u1", "r1", a.id).arm == "stable"
    start_rollout(store, "production", b.id, RolloutConfig(mode="shadow", steps=[100]))
    c = cache.choose("production@acme", "acme", "u1", "r1", a.id)  # tenant channel follows its base
    assert c.release == a.id and c.shadow == b.id
    assert cache.choose("production", "acme", "u1", "r1", "f" * 64).shadow is None  # channel moved
    abort_rollout(store, "production")
    assert cache.choose("production", "acme", "u1", "r1", a.id).shadow is None


def test_ops_loop_judges_rollouts_and_alerts(store, tmp_path):
    from rung.config import RungConfig
    from rung.ops.monitor.loop import OpsLoop

    a, b = make_release(store, "a"), make_release(store, "b")
    _live(store, a)
    r = start_rollout(store, "production", b.id, CFG)
    t0 = iso_seconds(r.step_started_at) + 1e-3
    must = {i for i in range(80) if i % 4 == 0}
    recs = (traffic(80, release=a.id, arm="stable", ts0=t0, refuse_ids=must, latency=3000)
            + traffic(80, release=b.id, arm="shadow", ts0=t0, seed=1, refuse_ids=set()))
    cfg = RungConfig.model_validate({"monitor": {"rules": {"p95": {"kind": "p95_latency", "budget_ms": 1000}},
                                                 "log": None}})
    cfg.root = tmp_path
    seen = []
    loop = OpsLoop(cfg, store, records=lambda since: [x for x in recs if x.ts >= since], on_event=seen.append)
    out = loop.tick(now=t0 + 1)
    assert [getattr(o, "action", getattr(o, "status", None)) for o in out] == ["rollback", "firing"]
    assert current_rollout(store, "production").status == "rolled back"
    assert any("FIRING" in s for s in seen) and any("rollback" in s for s in seen)
    assert loop.tick(now=t0 + 2) == []  # nothing new: the alert is already notified
