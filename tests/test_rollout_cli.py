"""`rung rollout start|status|evaluate|abort` as a user runs them (subprocess, SQLite store)."""

from __future__ import annotations

import json

from rung.ops.rollout.state import current_rollout, iso_seconds
from rung.ops.tracesource import write_jsonl
from tests.clirun import run_rung
from tests.rollout_support import make_release, open_store, traffic


def test_rollout_cli_start_status_evaluate_abort(tmp_path):
    from rung.config import GateConfig
    from rung.ops.releases import promote

    (tmp_path / "rung.yaml").write_text(
        "project: t\npaths: {store: rung.db, artifacts: artifacts}\n"
        "rollout: {mode: shadow, steps: [50, 100], min_requests: 40, min_minutes: 0,\n"
        "          judge: {min_requests: 40, min_labelled: 30}}\n")
    st = open_store(tmp_path)
    a, b = make_release(st, "a"), make_release(st, "b")
    promote(st, a.id, "production", GateConfig(), force=True, reason="first")
    st.close()
    cfg = str(tmp_path / "rung.yaml")
    p = run_rung("rollout", "start", "production", b.id[:10], "-c", cfg, "--reason", "try b")
    assert p.returncode == 0, p.stderr
    assert "started" in p.stdout and "shadow" in p.stdout
    p = run_rung("rollout", "start", "production", b.id[:10], "-c", cfg)
    assert p.returncode == 1 and "already has a running rollout" in p.stderr
    st = open_store(tmp_path)
    r = current_rollout(st, "production")
    st.close()
    t0 = iso_seconds(r.step_started_at) + 1e-3
    must = {i for i in range(60) if i % 3 == 0}
    recs = (traffic(60, release=a.id, arm="stable", ts0=t0, refuse_ids=must)
            + traffic(60, release=b.id, arm="shadow", ts0=t0, seed=1, refuse_ids=set()))
    path = write_jsonl(recs, tmp_path / "traces.jsonl")
    p = run_rung("rollout", "evaluate", "production", "-c", cfg, "--traces", str(path))
    assert p.returncode == 0, p.stderr
    assert "rollback" in p.stdout and "mcnemar-exact" in p.stdout
    p = run_rung("rollout", "status", "production", "-c", cfg, "--json")
    d = json.loads(p.stdout)
    assert d["status"] == "rolled back" and d["weight"] == 0
    assert d["last_decision"]["decision"] == "Failed"
    p = run_rung("rollout", "abort", "production", "-c", cfg)
    assert p.returncode == 1 and "no running rollout" in p.stderr
