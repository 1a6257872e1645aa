"""`rung release ...` as a user runs it (subprocesses), on the stub-served fixture project whose
runs and index were made in-process."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from clirun import run_rung
from test_releases_support import use_hash_embedder, write_project

from rung.config import load_config
from rung.evals.runner import evaluate_candidate
from rung.evals.store import RunStore


def _eval(cfg_path):
    cfg = load_config(cfg_path)
    run, _ = evaluate_candidate(cfg, "support", RunStore(cfg.store_target()), use_cache=False)
    return run.info.id


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def test_release_commands(tmp_path, stub, monkeypatch):
    use_hash_embedder(monkeypatch)
    stub.state.replies = {"terse": "I don't know."}
    root = tmp_path / "proj"
    cfg = write_project(root, stub.url)
    run1 = _eval(cfg)
    env = {"RUNG_USER": "ana"}

    def rung(*args: str):
        return run_rung("release", *args, "-c", str(cfg), cwd=tmp_path, **env)

    r = rung("create", "support", "--note", "first cut")
    assert r.returncode == 0, r.stderr
    assert "created release" in r.stdout and "1 run(s)" in r.stdout
    rid_a = r.stdout.split("release ", 1)[1].split()[0]
    assert len(rid_a) == 64

    r = rung("show", rid_a[:8])
    assert r.returncode == 0, r.stderr
    assert "refusal-rules 3" in r.stdout and run1 in r.stdout and "first cut" in r.stdout
    manifest = json.loads(rung("show", rid_a[:8], "--json").stdout)
    assert manifest["id"] == rid_a and manifest["provenance"]["created_by"] == "ana"

    before = _now()
    r = rung("promote", rid_a[:8], "--to", "production", "--reason", "launch")
    assert r.returncode == 0, r.stderr
    assert "PASS" in r.stdout and "promoted" in r.stdout and "event #1" in r.stdout
    after_a = _now()

    # the regressed recipe: refused with the paired numbers, then forced with a reason
    original = cfg.read_text()
    cfg.write_text(cfg.read_text().replace("    description: the support desk\n",
                                           "    description: the support desk\n    adapter: terse\n"))
    run2 = _eval(cfg)
    r = rung("create", "support")
    rid_b = r.stdout.split("release ", 1)[1].split()[0]
    r = rung("diff", rid_a[:10], rid_b[:10])
    assert "adapter terse: added" in r.stdout and "level: 0 -> 1" in r.stdout

    r = rung("promote", rid_b[:10], "--to", "production")
    assert r.returncode == 1
    assert "refused" in r.stderr and "task_success" in r.stderr and "FAIL" in r.stderr
    assert f"{run1} 1 -> {run2} 0" in r.stderr.replace("\n", " ") or "mcnemar" in r.stderr
    r = rung("promote", rid_b[:10], "--to", "production", "--force")
    assert r.returncode == 1 and "--force needs --reason" in r.stderr
    r = rung("promote", rid_b[:10], "--to", "production", "--force", "--reason", "hotfix")
    assert r.returncode == 0 and "forced" in r.stdout
    after_b = _now()

    r = rung("rollback", "production", "--reason", "regressed")
    assert r.returncode == 0 and f"{rid_b[:12]} -> {rid_a[:12]}" in r.stdout

    r = rung("history", "production")
    assert r.returncode == 0
    for word in ("promote", "promote (forced)", "rollback", "launch", "hotfix", "regressed", "ana"):
        assert word in r.stdout
    for at, want in ((before, None), (after_a, rid_a), (after_b, rid_b), (_now(), rid_a)):
        r = rung("history", "production", "--at", at, "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["live"] == want
    r = rung("history", "production", "--at", after_a)
    assert f"release {rid_a[:12]}" in r.stdout and "promote by ana: launch" in r.stdout

    r = rung("flag", "production", "adapter=off", "--reason", "adapter misbehaves")
    assert r.returncode == 0 and "flags now: adapter=off" in r.stdout
    r = rung("flag", "production", "adapter=maybe")
    assert r.returncode == 1 and "not one of on, off" in r.stderr

    r = rung("list")
    assert rid_a[:12] in r.stdout and rid_b[:12] in r.stdout and "production" in r.stdout

    r = rung("verify", rid_a[:10])  # rung.yaml now has the adapter: named as drift
    assert r.returncode == 1 and "adapter terse: added" in r.stdout
    cfg.write_text(original)
    r = rung("verify", rid_a[:10])
    assert r.returncode == 0 and "ok" in r.stdout
    doc = root / "knowledge" / "shipping.md"
    doc.write_text(doc.read_text().replace("two working days", "five working days"))
    r = rung("verify", rid_a[:10])
    assert r.returncode == 1
    assert "knowledge document shipping: content changed" in r.stdout
    assert "knowledge/shipping.md" in r.stdout
