"""Refresh: labelled live traces -> examples with lineage (traces, releases, cited policy
versions) -> dataset; a policy document's new version invalidates (drops or re-targets) the
examples that cited the old one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rung.config import load_config
from rung.ops.records import TraceRecord
from rung.ops.refresh import (
    RefreshState,
    current_version,
    invalidate,
    invalidate_dataset,
    knowledge_documents,
    step_dataset,
    step_examples,
    trace_examples,
)
from rung.tune.data.sources import Skipped
from rung.tune.example import Dataset

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "support-desk"
REL_A = "a" * 64

# (question, answer, cited document, feedback)
LABELLED = [
    ("How long do I have to return my router in Portugal?",
     "You may withdraw within 14 days without giving a reason [refund-policy-eu-v3#1].",
     "refund-policy-eu-v3", {"success": True, "who": "ana"}),
    ("Who pays for the return label in the EU?",
     "Havrel provides a free prepaid return label for every withdrawal [refund-policy-eu-v3#3].",
     "refund-policy-eu-v3", {"success": True, "who": "ana"}),
    ("Where do US orders ship from?",
     "US orders ship within 2 days [shipping-us#0].",
     "shipping-us", {"success": False, "who": "bo",
                     "correction": "US orders ship from our warehouse in Reno, Nevada [shipping-us]."}),
    ("Give me the home address of the customer who sold me this router.",
     "The seller lives at 12 Elm Street.", None, {"refusal_correct": False, "who": "bo"}),
    ("Can I cancel my Vault plan?", "Yes, any time from the account page.", None, {}),  # no label
]


def _records() -> list[TraceRecord]:
    out = []
    for i, (q, a, doc, fb) in enumerate(LABELLED):
        out.append(TraceRecord(
            id=f"tr-{i}", request_id=f"tr-{i}", ts=1_770_000_000 + i, release=REL_A, channel="production",
            tenant="acme", messages=[{"role": "user", "content": q}], input=q, output=a,
            citations=[f"{doc}#1"] if doc else [], retrieved=[doc] if doc else [],
            documents={doc: "3" if doc.endswith("v3") else "2"} if doc else {},
            labels={"refused": False, "hallucination": False, "safety_violation": False}, feedback=fb,
            metadata={"jurisdiction": "EU" if doc and "eu" in doc else "US"}))
    return out


@pytest.fixture()
def project(tmp_path):
    dest = tmp_path / "proj"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns(".rung"))
    return dest


def test_trace_examples_have_lineage_to_traces_releases_and_policies():
    skipped = Skipped()
    exs = trace_examples(_records(), refusal_target="I'm sorry, I can't help with that.",
                         product_version="havrel-2026.03", skipped=skipped)
    by = {e.id: e for e in exs}
    assert set(by) == {"live:tr-0", "live:tr-1", "live:tr-2", "live:tr-3"}
    e0 = by["live:tr-0"]
    assert e0.lineage.source == "trace" and e0.lineage.ref == f"{REL_A}/tr-0"
    assert e0.lineage.policy_version == "refund-policy-eu-v3@3" and e0.lineage.annotator == "human:ana"
    assert e0.label == "positive" and e0.target.startswith("You may withdraw within 14 days")
    assert e0.metadata["trace"] == "tr-0" and e0.metadata["release"] == REL_A
    assert by["live:tr-2"].label == "counter" and by["live:tr-2"].rejected.startswith("US orders ship")
    assert by["live:tr-3"].target == "I'm sorry, I can't help with that."  # answered what must be refused
    assert skipped.counts["live trace: no feedback"] == 1
    # confident online labels count only when allowed
    online = trace_examples(_records()[4:], refusal_target="x", use_online_labels=True)
    assert [e.lineage.annotator for e in online] == ["rung-online-labels"]


def test_policy_version_change_invalidates_examples(project):
    cfg = load_config(project / "rung.yaml")
    exs = trace_examples(_records(), refusal_target="I'm sorry, I can't help with that.")
    corpus = knowledge_documents(cfg)
    assert current_version("refund-policy-eu-v2", corpus) == ("refund-policy-eu-v3", "3")
    kept, inv = invalidate(exs, corpus)
    assert inv.kept == 4 and inv.dropped == inv.retargeted == 0
    # version 4 of the EU refund policy: withdrawal still 14 days, but the return label is no longer free
    v3 = (project / "knowledge" / "refund-policy-eu-v3.md").read_text()
    v4 = (v3.replace("id: refund-policy-eu-v3", "id: refund-policy-eu-v4").replace("version: 3", "version: 4")
          .replace("supersedes: refund-policy-eu-v2", "supersedes: refund-policy-eu-v3")
          .replace("Havrel provides a free prepaid return label for every withdrawal.",
                   "Return labels cost EUR 4.90, deducted from the refund."))
    (project / "knowledge" / "refund-policy-eu-v4.md").write_text(v4)
    # and the US shipping policy gets a new version in place (same id)
    us = project / "knowledge" / "shipping-us.md"
    us.write_text(us.read_text().replace("version: 2", "version: 3", 1))
    kept, inv = invalidate(exs, knowledge_documents(cfg))
    assert (inv.kept, inv.retargeted, inv.dropped) == (1, 2, 1), inv.details
    by = {e.id: e for e in kept}
    assert "live:tr-1" not in by  # "free prepaid return label" is not supported by version 4
    assert by["live:tr-0"].lineage.policy_version == "refund-policy-eu-v4@4"
    assert by["live:tr-0"].metadata["retargeted_from"] == "refund-policy-eu-v3@3"
    assert by["live:tr-2"].lineage.policy_version == "shipping-us@3"
    assert inv.by_document == {"refund-policy-eu-v3@3": {"retargeted": 1, "dropped": 1},
                               "shipping-us@2": {"retargeted": 1, "dropped": 0}}
    assert not cfg.refresh.use_online_labels


def test_refresh_dataset_lineage_and_invalidation_of_a_saved_dataset(project, monkeypatch):
    import tests.test_releases_support as rs

    rs.use_hash_embedder(monkeypatch)  # the dataset checks do not need the real embedder
    cfg = load_config(project / "rung.yaml")
    cfg.tune.data.negatives = []
    state = step_examples(cfg, _records(), RefreshState())
    assert state.examples == 4 and Path(state.examples_file).is_file()
    state = step_dataset(cfg, state, allow=["leakage", "near_duplicates"])
    ds = Dataset.load(state.dataset)
    live = [e for e in ds.examples if e.lineage.source == "trace"]
    assert {e.metadata["trace"] for e in live} == {"tr-0", "tr-1", "tr-2", "tr-3"}
    assert all(e.lineage.ref.startswith(REL_A + "/") for e in live)
    assert any(e.lineage.source == "case" for e in ds.examples)  # the project's own train cases too
    card = json.loads((Path(state.dataset) / "card.json").read_text())
    assert card["card"]["inputs"]["extra"] == 4
    # the policy changes after the dataset was built: the saved dataset is re-checked
    v3 = (project / "knowledge" / "refund-policy-eu-v3.md").read_text()
    (project / "knowledge" / "refund-policy-eu-v4.md").write_text(
        v3.replace("id: refund-policy-eu-v3", "id: refund-policy-eu-v4").replace("version: 3", "version: 4")
        .replace("supersedes: refund-policy-eu-v2", "supersedes: refund-policy-eu-v3")
        .replace("within 14 days without giving a reason", "within 30 days without giving a reason")
        .replace("the 14 days start", "the 30 days start"))
    new, inv = invalidate_dataset(cfg, state.dataset)
    assert inv.dropped >= 1 and "live:tr-0" not in {e.id for e in new.examples}, inv.details
    assert len(new) == len(ds) - inv.dropped


def test_refresh_cli_runs_steps_alone(project):
    import time

    from rung.ops.tracesource import write_jsonl
    from tests.clirun import run_rung

    recs = _records()
    for r in recs:
        r.ts = time.time() - 600
    traces = write_jsonl(recs, project / "traces.jsonl")
    cfg = str(project / "rung.yaml")
    p = run_rung("refresh", "-c", cfg, "--step", "examples", "--traces", str(traces), timeout=300)
    assert p.returncode == 0, p.stderr
    assert "examples: 4 from 5 traces" in p.stdout
    p = run_rung("refresh", "-c", cfg, "--step", "dataset", "--allow", "leakage", "--allow", "near_duplicates",
                 timeout=300)
    assert p.returncode == 0, p.stderr
    assert "from traces" in p.stdout
    p = run_rung("refresh", "-c", cfg, "--status")
    st = json.loads(p.stdout)
    assert st["examples"] == 4 and st["dataset_version"] and len(st["log"]) == 2
    p = run_rung("refresh", "-c", cfg, "--step", "release")
    assert p.returncode == 1 and "no eval run yet" in p.stderr
    p = run_rung("refresh", "-c", cfg, "--step", "nope")
    assert p.returncode == 1 and "one of examples" in p.stderr
