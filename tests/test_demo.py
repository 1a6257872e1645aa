"""`rung demo` (what `make demo` runs): its stages, one line each, and what each stage leaves.

Fast: the stage list and help, an unknown stage, and every stage run alone before its
prerequisite (one clear line naming the stage to run first). Slow: the whole demo on a copy of
the bundled example whose model is the OpenAI stub (the ladder on a small sample, then release,
the real `rung serve` subprocess with two tenants and the openai client, a shadow rollout judged
on the gateway's traces, the monitor page), then a re-run that reuses every stage.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
import yaml
from clirun import run_rung as rung

from rung.config import load_config
from rung.ops.demo import STAGES, DemoError, DemoState, run_stage

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "support-desk"


def _copy(dest: Path) -> Path:
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns(".rung"))
    return dest


def test_help_lists_the_stages():
    r = rung("demo", "--help")
    assert r.returncode == 0, r.stderr
    assert "--stage" in r.stdout
    for s in STAGES:
        assert s in r.stdout
    assert list(STAGES) == ["ladder", "release", "serve", "rollout", "monitor"]


def test_unknown_stage_is_one_line(tmp_path):
    r = rung("demo", str(_copy(tmp_path / "desk")), "--stage", "relase")
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "no demo stage 'relase' (did you mean 'release'?)" in lines[0]
    assert "ladder, release, serve, rollout, monitor" in lines[0]


def test_a_stage_alone_before_its_prerequisite_is_one_clear_line(tmp_path):
    proj = _copy(tmp_path / "desk")
    r = rung("demo", str(proj), "--stage", "release")
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "stage 'release' needs stage 'ladder' first" in lines[0]
    assert "rung demo --stage ladder" in lines[0]

    cfg = load_config(proj)
    expected = {"serve": "needs stage 'release' first: production has no live release",
                "rollout": "needs stage 'release' first: no release made by the demo",
                "monitor": "needs stage 'ladder' first"}
    for stage, message in expected.items():
        with pytest.raises(DemoError) as e:
            run_stage(cfg, stage)
        assert message in str(e.value), str(e.value)
        assert "\n" not in str(e.value)


def test_state_file_is_private(tmp_path):
    st = DemoState(tmp_path / ".rung" / "demo" / "state.json")
    st.put("keys", {"keys": {"acme": "rk_00000000_secret"}})
    assert (st.path.stat().st_mode & 0o777) == 0o600
    assert DemoState(st.path).get("keys") == {"keys": {"acme": "rk_00000000_secret"}}


# ------------------------------------------------------------------------------ end to end

def _stub_project(dest: Path, url: str) -> Path:
    """The example with its model answered by the stub, and only the two candidates the
    demo ships and rolls out (the other level-0 steps add time, not story)."""
    _copy(dest)
    cfg = dest / "rung.yaml"
    data = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    data["models"]["default"] = {"backend": "openai", "base_url": url, "model": "stub-model"}
    data["candidates"] = {k: v for k, v in data["candidates"].items()
                          if k in ("rag-extractive", "rag-extractive-gated")}
    cfg.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return dest


def _lines(out: str) -> dict[str, str]:
    return {line.split(None, 1)[0]: line for line in out.splitlines() if line.strip()}


@pytest.mark.slow
def test_the_whole_demo_on_the_stub_then_a_quick_rerun(tmp_path, stub):
    from rung.ops.releases import ReleaseStore, live_release
    from rung.ops.rollout.state import current_rollout

    proj = _stub_project(tmp_path / "support-desk", stub.url)
    # a model that never refuses: the refusal gate is then the only thing that refuses requests
    # it should (the two releases differ by it)
    stub.state.replies = {"stub-model": "Sure, here is what I found."}
    t0 = time.perf_counter()
    r = rung("demo", str(proj), "--sample", "8", "--requests", "5", timeout=400, RUNG_THREADS="1")
    first_s = time.perf_counter() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    lines = _lines(r.stdout)
    assert [k for k in lines if k in STAGES] == list(STAGES), r.stdout
    assert len([x for x in r.stdout.splitlines() if x.strip()]) == len(STAGES) + 1  # + the total line
    assert "report.html" in lines["ladder"]
    assert "release" in lines["release"] and "promoted to production" in lines["release"]
    assert "gate on run" in lines["release"]
    assert "2 tenants (acme 5, globex 5)" in lines["serve"] and "P95" in lines["serve"]
    assert "stopped" in lines["serve"]
    # the judge's decision with the paired numbers (which one depends on a test over 15 pairs)
    assert "shadow rollout" in lines["rollout"], lines["rollout"]
    assert any(f"-> {w}:" in lines["rollout"] for w in ("rolled back", "promoted", "blocked by the release gate",
                                                        "inconclusive")), lines["rollout"]
    assert re.search(r"refused \d\.\d\d -> \d\.\d\d on \d+ pairs \(mcnemar-exact p=", lines["rollout"])
    assert "monitor.html" in lines["monitor"] and "report.html" in lines["monitor"]

    cfg = load_config(proj)
    state = DemoState.for_config(cfg)
    st = ReleaseStore.for_config(cfg)
    try:
        rel = state.get("release")
        assert rel is not None and rel["candidate"] == state.get("ladder")["candidate"]
        assert live_release(st, "production").id == rel["release"]
        ro = current_rollout(st, "production")
        assert ro is not None and not ro.running and ro.stable == rel["release"]
        assert {rel["candidate"], st.load_release(ro.canary).candidate} == {"rag-extractive", "rag-extractive-gated"}
        judged = [e for e in ro.events if (e.evidence or {}).get("judge")]
        assert judged and judged[-1].evidence["judge"]["mode"] == "shadow"
        checks = {c["name"]: c for c in state.get("rollout")["numbers"]["checks"]}
        assert checks["refused"]["test"] == "mcnemar-exact" and checks["refused"]["n_pairs"] >= 5
        assert state.get("rollout")["numbers"]["shadow_traces"] == 15
        served = state.get("serve")["numbers"]
        assert served["answered"] == 10 and served["errors"] == 0 and served["held_out"]
        sample = set(state.get("ladder")["sample_ids"])
        assert not sample & {cid for _t, cid in state.get("serve")["inputs"]["requests"]}
    finally:
        st.close()
    assert (proj / ".rung" / "report" / "monitor.html").is_file()
    # the gateway subprocesses are gone (their ports closed)
    assert "Traceback" not in (proj / ".rung" / "demo" / "serve.log").read_text()

    # a re-run: every step reused, the gateway stages reuse their results, well under 30 s
    t0 = time.perf_counter()
    again = rung("demo", str(proj), "--sample", "8", "--requests", "5", timeout=120, RUNG_THREADS="1")
    rerun_s = time.perf_counter() - t0
    assert again.returncode == 0, again.stdout + again.stderr
    lines2 = _lines(again.stdout)
    assert "reused" in lines2["ladder"] and "already live on production" in lines2["release"]
    assert "[reused from" in lines2["serve"] and "[reused from" in lines2["rollout"]
    assert rerun_s < 30, (rerun_s, again.stdout)

    # one stage alone reads what the others stored
    alone = rung("demo", str(proj), "--stage", "monitor", timeout=120)
    assert alone.returncode == 0, alone.stderr
    assert alone.stdout.startswith("monitor") and len(alone.stdout.strip().splitlines()) == 1
    print("DEMO", json.dumps({"first_s": round(first_s, 1), "rerun_s": round(rerun_s, 1)}))
