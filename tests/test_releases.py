"""Releases and channels (rung.ops.releases) on a small project answered by the OpenAI stub,
with real eval runs, against SQLite and a real PostgreSQL server (skipped, with the reason, when
PostgreSQL cannot be installed here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from test_releases_support import (
    new_database,
    postgres_server,
    postgres_unavailable,
    use_hash_embedder,
    write_project,
)

from rung.config import GateConfig, load_config
from rung.ops.releases import (
    ChannelConflict,
    PromotionRefused,
    ReleaseError,
    ReleaseStore,
    apply_flags,
    channel_flags,
    channel_state,
    create_release,
    diff_releases,
    live_release,
    materialize,
    promote,
    rollback,
    set_flag,
    verify_release,
)

SRC = str(Path(__file__).resolve().parents[1] / "src")
TESTS = str(Path(__file__).resolve().parent)


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def pg_admin():
    why = postgres_unavailable()
    if why:
        pytest.skip(f"PostgreSQL tests skipped: {why}")
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    """(store target, artifacts folder) on SQLite or on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "store" / "rung.db"), tmp_path / "store" / "artifacts"
    admin = request.getfixturevalue("pg_admin")
    return new_database(admin), tmp_path / "pg-artifacts"


@pytest.fixture
def project(tmp_path, stub, monkeypatch):
    use_hash_embedder(monkeypatch)
    monkeypatch.setenv("RUNG_USER", "tester")
    stub.state.replies = {"terse": "I don't know."}  # the regressed recipe's answers
    root = tmp_path / "proj"
    write_project(root, stub.url)
    return root


def evaluate(cfg_path: Path, store: ReleaseStore):
    from rung.evals.runner import evaluate_candidate

    run, _ = evaluate_candidate(load_config(cfg_path), "support", store.runs, use_cache=False)
    return run


def instant() -> str:
    time.sleep(0.002)
    t = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    time.sleep(0.002)
    return t


# ---------------------------------------------------------------- the whole story

def test_release_lifecycle(project, backend, tmp_path):
    target, artifacts = backend
    st = ReleaseStore(target, artifacts)
    cfg_path = project / "rung.yaml"
    run1 = evaluate(cfg_path, st)
    assert run1.info.status == "finished"

    made = create_release(load_config(cfg_path), "support", st, note="first")
    a = made.release
    assert made.created and a.run_ids == [run1.info.id] and len(a.id) == 64
    assert a.content["knowledge"]["documents"][0]["id"] == "refund-policy"
    assert a.content["knowledge"]["documents"][0]["version"] == 3
    assert {b["name"]: b["version"] for b in a.content["prompt"]["blocks"]} == {"persona": "1", "refusal-rules": "3"}
    assert "knowledge/refund-policy.md" in a.content["files"]
    for sha in a.content["files"].values():  # copied by hash, read-only
        assert st.check_blob(sha) is None
    # the note, author and time are not part of the id: the same inputs give the same release
    again = create_release(load_config(cfg_path), "support", st, note="other note", who="someone-else")
    assert again.release.id == a.id and not again.created

    gate = load_config(cfg_path).gate
    t0 = instant()
    ev, check = promote(st, a.id[:10], "production", gate, reason="first release")
    assert ev.seq == 1 and ev.previous_id is None and check.passed and not ev.forced
    t1 = instant()

    # a second release whose answers regress: the endpoint's "terse" model (level 1), new block version
    (project / "rung.yaml").write_text((project / "rung.yaml").read_text().replace(
        "    description: the support desk\n", "    description: the support desk\n    adapter: terse\n"))
    (project / "policies" / "refusal-rules.md").write_text("---\nversion: 4\n---\nRefuse more.\n")
    run2 = evaluate(cfg_path, st)
    b = create_release(load_config(cfg_path), "support", st).release
    assert b.id != a.id and b.level == 1
    changes = [str(c) for c in diff_releases(a, b)]
    assert "prompt block refusal-rules: version 3 -> 4" in changes
    assert "adapter terse: added" in changes
    assert any(c.startswith("evidence run on eval") for c in changes)

    with pytest.raises(PromotionRefused) as refused:
        promote(st, b.id, "production", gate)
    msg = str(refused.value)
    assert "task_success" in msg and "regressed" in msg and "mcnemar" in msg
    assert f"{run1.info.id} 1 -> {run2.info.id} 0" in msg  # the paired numbers
    assert "12 case(s) pass->fail" in msg
    assert channel_state(st, "production").release_id == a.id  # nothing moved

    with pytest.raises(ReleaseError, match="--reason"):
        promote(st, b.id, "production", gate, force=True)
    ev2, _ = promote(st, b.id, "production", gate, force=True, reason="hotfix, owner approved")
    assert ev2.forced and ev2.previous_id == a.id and ev2.reason == "hotfix, owner approved"
    assert any("regressed" in o for o in ev2.evidence["override"])
    t2 = instant()

    back = rollback(st, "production", reason="answers regressed")
    assert back.release_id == a.id and back.previous_id == b.id and back.kind == "rollback"
    t3 = instant()
    assert live_release(st, "production").id == a.id

    # what was live when
    assert channel_state(st, "production", at=t0).release_id is None
    assert channel_state(st, "production", at=t1).release_id == a.id
    assert channel_state(st, "production", at=t2).release_id == b.id
    assert channel_state(st, "production", at=t3).release_id == a.id
    events = st.events("production")
    assert [(e.seq, e.kind) for e in events] == [(1, "promote"), (2, "promote"), (3, "rollback")]
    assert all(e.who == "tester" for e in events)

    # flags, logged like promotions, inherited by tenant channels
    set_flag(st, "production", "retrieval", "require_citations", reason="audit")
    assert channel_flags(st, "production") == {"retrieval": "require_citations"}
    assert channel_flags(st, "production@acme") == {"retrieval": "require_citations"}
    assert live_release(st, "production@acme").id == a.id  # falls back to production
    assert live_release(st, "production@acme", fallback=False) is None
    set_flag(st, "production@acme", "adapter", "off")
    cand = apply_flags(load_config(cfg_path).candidates["support"], channel_flags(st, "production@acme"))
    assert cand.adapter is None and cand.require_citations
    with pytest.raises(ReleaseError, match="did you mean 'adapter'"):
        set_flag(st, "production", "adaptor", "off")
    set_flag(st, "production", "retrieval", "on")
    assert channel_flags(st, "production") == {}
    assert channel_state(st, "production", at=t3).flags == {}

    # editing a knowledge document afterwards: verify names it; the stored copy is untouched
    (project / "knowledge" / "refund-policy.md").write_text(
        (project / "knowledge" / "refund-policy.md").read_text().replace("30 days", "14 days"))
    v = verify_release(st, a.id, load_config(cfg_path))
    drift = [str(c) for c in v.drift]
    assert any(s.startswith("knowledge document refund-policy: content changed") for s in drift), drift
    assert verify_release(st, a.id).ok  # its artifacts are intact
    out = materialize(st, a, tmp_path / "served")
    assert "30 days" in (tmp_path / "served" / "knowledge" / "refund-policy.md").read_text()
    served = load_config(out)
    assert served.candidates["support"].adapter is None and "kb" in served.knowledge
    st.close()


def test_rollback_default_skips_rolled_back_releases(project, tmp_path):
    st = ReleaseStore(tmp_path / "rung.db", tmp_path / "artifacts")
    cfg_path = project / "rung.yaml"
    evaluate(cfg_path, st)
    a = create_release(load_config(cfg_path), "support", st).release
    gate = GateConfig()
    with pytest.raises(ReleaseError, match="no live release"):
        rollback(st, "staging")
    promote(st, a.id, "staging", gate)
    with pytest.raises(ReleaseError, match="no earlier release was good"):
        rollback(st, "staging")
    with pytest.raises(ReleaseError, match="already live"):
        promote(st, a.id, "staging", gate)
    # b: no run on the suite (created before any evaluation of its recipe): needs --force
    (project / "policies" / "persona.md").write_text("---\nversion: 2\n---\nYou are Example Corp's desk.\n")
    b = create_release(load_config(cfg_path), "support", st).release
    assert b.run_ids == []
    with pytest.raises(PromotionRefused, match="no eval run"):
        promote(st, b.id, "staging", gate)
    promote(st, b.id, "staging", gate, force=True, reason="docs only")
    assert rollback(st, "staging").release_id == a.id
    # c over a; rolling c back goes to a, not b (b was rolled back from here: bad on staging)
    (project / "policies" / "persona.md").write_text("---\nversion: 3\n---\nYou are the desk.\n")
    c = create_release(load_config(cfg_path), "support", st).release
    promote(st, c.id, "staging", gate, force=True, reason="c")
    assert rollback(st, "staging").release_id == a.id
    promote(st, b.id, "staging", gate, force=True, reason="b again")
    assert rollback(st, "staging").release_id == a.id  # not c: c was rolled back from here
    assert rollback(st, "staging", to=c.id[:8]).release_id == c.id


def test_live_release_without_run_on_suite_requires_force(project, tmp_path):
    st = ReleaseStore(tmp_path / "rung.db", tmp_path / "artifacts")
    cfg_path = project / "rung.yaml"
    a = create_release(load_config(cfg_path), "support", st).release  # no runs yet
    promote(st, a.id, "production", GateConfig(), force=True, reason="bootstrap")
    (project / "policies" / "persona.md").write_text("---\nversion: 2\n---\nYou are Example Corp's desk.\n")
    evaluate(cfg_path, st)
    b = create_release(load_config(cfg_path), "support", st).release
    with pytest.raises(PromotionRefused, match=f"live release {a.id[:12]} has no run on this suite"):
        promote(st, b.id, "production", GateConfig())


def test_same_id_on_a_fresh_copy_of_the_project(project, tmp_path):
    """Another checkout (no .rung folder, another path), the same team store: the same id."""
    shared = tmp_path / "team-store.db"
    st = ReleaseStore(shared, tmp_path / "artifacts")
    cfg_path = project / "rung.yaml"
    run = evaluate(cfg_path, st)
    first = create_release(load_config(cfg_path), "support", st, note="mine").release
    copy = tmp_path / "elsewhere" / "checkout"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns(".rung"))
    assert not (copy / ".rung").exists()
    st2 = ReleaseStore(shared, tmp_path / "artifacts2")
    second = create_release(load_config(copy / "rung.yaml"), "support", st2, note="theirs", who="b").release
    assert second.id == first.id and second.run_ids == [run.info.id]
    # explicit evidence gives the same id too
    third = create_release(load_config(copy / "rung.yaml"), "support", st2, runs=[run.info.id[:12]]).release
    assert third.id == first.id


def test_run_of_another_recipe_is_not_evidence(project, tmp_path):
    st = ReleaseStore(tmp_path / "rung.db", tmp_path / "artifacts")
    run = evaluate(project / "rung.yaml", st)
    (project / "policies" / "persona.md").write_text("---\nversion: 2\n---\nChanged.\n")
    with pytest.raises(ReleaseError, match="another recipe"):
        create_release(load_config(project / "rung.yaml"), "support", st, runs=[run.info.id])


def test_log_is_append_only_in_the_database(project, backend):
    from sqlalchemy import text

    target, artifacts = backend
    st = ReleaseStore(target, artifacts)
    a = create_release(load_config(project / "rung.yaml"), "support", st).release
    promote(st, a.id, "staging", GateConfig(), force=True, reason="x")
    for sql in ("UPDATE channel_events SET who = 'mallory'", "DELETE FROM channel_events",
                "DELETE FROM releases"):
        with pytest.raises(Exception, match="append-only"):
            with st.engine.begin() as conn:
                conn.execute(text(sql))
    assert st.events("staging")[0].who == "tester"


def test_channel_names_and_unknown_releases(tmp_path):
    st = ReleaseStore(tmp_path / "rung.db")
    with pytest.raises(ReleaseError, match="production@acme"):
        channel_state(st, "Prod uction")
    with pytest.raises(ReleaseError, match="no release"):
        st.load_release("abc123")
    with pytest.raises(ReleaseError, match="not a release id"):
        st.load_release("not-hex")
    with pytest.raises(ReleaseError, match="ISO 8601"):
        channel_state(st, "production", at="yesterday")


# ---------------------------------------------------------------- two processes at once

RACE = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    sys.path[:0] = [{src!r}]
    from rung.config import GateConfig
    from rung.ops.releases import ReleaseStore, promote, ChannelConflict
    target, artifacts, rid, go = sys.argv[1:5]
    st = ReleaseStore(target, artifacts)
    st.state("production")  # connected and ready
    Path(go + "." + rid[:6]).touch()
    while not Path(go).exists():
        time.sleep(0.001)
    try:
        ev, _ = promote(st, rid, "production", GateConfig(), force=True, reason="race", expected_head=0)
        print(json.dumps({{"won": ev.seq}}))
    except ChannelConflict as e:
        print(json.dumps({{"conflict": str(e)}}))
""")


def test_two_processes_promoting_the_same_channel(project, backend, tmp_path):
    target, artifacts = backend
    st = ReleaseStore(target, artifacts)
    cfg_path = project / "rung.yaml"
    a = create_release(load_config(cfg_path), "support", st).release
    (project / "policies" / "persona.md").write_text("---\nversion: 2\n---\nChanged.\n")
    b = create_release(load_config(cfg_path), "support", st).release
    go = tmp_path / "go"
    script = RACE.format(src=SRC)
    env = {**os.environ, "RUNG_USER": "racer"}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(target), str(artifacts), rid, str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for rid in (a.id, b.id)]
    deadline = time.time() + 60
    while not all(Path(f"{go}.{r[:6]}").exists() for r in (a.id, b.id)) and time.time() < deadline:
        time.sleep(0.01)
    go.touch()
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    winners = [o for o in outs if "won" in o]
    losers = [o for o in outs if "conflict" in o]
    assert len(winners) == 1 and len(losers) == 1, outs
    assert "production" in losers[0]["conflict"] and "run it again" in losers[0]["conflict"]
    events = st.events("production")
    assert [e.seq for e in events] == [1] and events[0].previous_id is None


def test_conflict_when_the_channel_moved_since_it_was_read(project, backend):
    target, artifacts = backend
    st = ReleaseStore(target, artifacts)
    a = create_release(load_config(project / "rung.yaml"), "support", st).release
    (project / "policies" / "persona.md").write_text("---\nversion: 2\n---\nChanged.\n")
    b = create_release(load_config(project / "rung.yaml"), "support", st).release
    promote(st, a.id, "staging", GateConfig(), force=True, reason="x")
    set_flag(st, "staging", "adapter", "off")
    with pytest.raises(ChannelConflict, match=r"expected event #1, now #2: flag adapter=off by tester"):
        promote(st, b.id, "staging", GateConfig(), force=True, reason="y", expected_head=1)
    assert [e.seq for e in st.events("staging")] == [1, 2]
