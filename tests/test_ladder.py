"""The ladder end to end over the OpenAI-compatible stub on 127.0.0.1: level 0 from bare to
richest, the climb to a declared level-1 candidate only when the checklist says level 0 cannot
close the gap, reuse of unchanged steps, and the report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from clirun import run_rung

from rung.config import CandidateConfig, RetrievalConfig, load_config
from rung.evals.store import RunStore
from rung.ladder import LadderEvents, climb, level_order
from rung.pipeline.candidate import candidate_complexity

QUESTIONS = ["refund window", "warranty length", "shipping cost", "support hours",
             "router reset", "storage plans", "thermostat pairing", "invoice copy"]


L0_REPLY = "Refunds are possible within 30 days of delivery."
L1_REPLY = "Tenant A customers get a refund within 45 days of delivery."


def write_project(root: Path, stub, *, reference: str, l1: bool = True,
                  allow_level1: bool = True) -> Path:
    """Eight cases whose reference is `reference`; both level-0 candidates retrieve the policy
    (dense: every question gets it) and the stub answers them with L0_REPLY, the level-1 candidate (its adapter name is
    the request's model field) with L1_REPLY. Both replies are grounded in the policy."""
    stub.state.replies = {"stub-model": L0_REPLY, "tenant-a": L1_REPLY}
    (root / "kb").mkdir(parents=True, exist_ok=True)
    (root / "kb" / "policy.md").write_text(
        "# Refund policy\n\nRefunds are possible within 30 days of delivery.\n"
        "Tenant A customers get a refund within 45 days of delivery.\n")
    (root / "cases.jsonl").write_text("".join(
        json.dumps({"id": f"q{i}", "input": f"Tell me about the {q}", "reference": reference,
                    "should_refuse": False, "tags": ["even" if i % 2 == 0 else "odd"]}) + "\n"
        for i, q in enumerate(QUESTIONS)))
    retrieval = "    retrieval: {corpus: kb, mode: dense, top_k: 1}\n"
    level1 = ("  tuned:\n    system_prompt: You are a support agent.\n    adapter: tenant-a\n"
              f"{retrieval}    generation: {{max_new_tokens: 32}}\n") if l1 else ""
    (root / "rung.yaml").write_text(f"""
project: ladder-test
models:
  default:
    backend: openai
    base_url: {stub.url}
    model: stub-model
    max_retries: 0
    self_hosted: true
candidates:
  with-prompt:
    system_prompt: You are a support agent.
{retrieval}    generation: {{max_new_tokens: 32}}
  bare:
{retrieval}    generation: {{max_new_tokens: 32}}
{level1}knowledge:
  kb: {{path: kb}}
suites:
  main:
    path: cases.jsonl
    scorers: [contains, groundedness, safety]
constraints:
  min_cases_per_tag: 4
  allow_level1: {str(allow_level1).lower()}
""")
    return root / "rung.yaml"


def test_level_order_climbs_from_bare_to_richest(tmp_path: Path, stub) -> None:
    cfg = load_config(write_project(tmp_path, stub, reference="x"))
    assert level_order(cfg, 0) == ["bare", "with-prompt"]  # not the order of rung.yaml
    assert level_order(cfg, 1) == ["tuned"]
    rag = CandidateConfig(system_prompt="p", retrieval=RetrievalConfig(corpus="kb"))
    full = CandidateConfig(system_prompt="p", retrieval=RetrievalConfig(corpus="kb"), tools=["calculator"])
    prompt = CandidateConfig(system_prompt="p")
    cx = candidate_complexity
    assert cx(CandidateConfig()) < cx(prompt) < cx(rag) < cx(full)


def test_ladder_climbs_to_level1_only_when_level0_falls_short_and_reuses_steps(tmp_path: Path, stub) -> None:
    cfg = load_config(write_project(tmp_path, stub, reference="45 days"))
    store = RunStore(tmp_path / "runs.db")
    seen: list[tuple[str, int]] = []
    events = LadderEvents(step=lambda name, level, i, n: seen.append((name, level)) or None)
    result = climb(cfg, store, events=events)
    assert seen == [("bare", 0), ("with-prompt", 0), ("tuned", 1)]
    assert result.decision.action == "ship" and result.decision.level == 1, result.decision.headline
    assert result.decision.candidate == "tuned"
    assert not any(s.reused for s in result.steps)

    calls = stub.state.chat_calls
    again = climb(load_config(tmp_path / "rung.yaml"), store)
    assert all(s.reused for s in again.steps) and stub.state.chat_calls == calls
    assert [s.run_id for s in again.steps] == [s.run_id for s in result.steps]
    assert again.decision.headline == result.decision.headline


def test_ladder_stays_at_level0_when_it_passes(tmp_path: Path, stub) -> None:
    cfg = load_config(write_project(tmp_path, stub, reference="days"))
    result = climb(cfg, RunStore(tmp_path / "runs.db"))
    assert [s.level for s in result.steps] == [0, 0]  # the level-1 candidate is never run
    assert result.decision.action == "ship" and result.decision.level == 0, result.decision.headline
    assert result.decision.candidate == "bare"  # the simplest passing candidate


def test_ladder_says_why_it_did_not_climb(tmp_path: Path, stub) -> None:
    cfg = load_config(write_project(tmp_path, stub, reference="45 days", l1=False))
    result = climb(cfg, RunStore(tmp_path / "runs.db"))
    assert [s.level for s in result.steps] == [0, 0]
    assert any("no level-1 candidate" in n and "--train" in n for n in result.notes)
    cfg = load_config(write_project(tmp_path, stub, reference="45 days", allow_level1=False))
    result = climb(cfg, RunStore(tmp_path / "runs2.db"))
    assert [s.level for s in result.steps] == [0, 0]
    assert any("allow_level1 is false" in n for n in result.notes)


def test_rung_ladder_command_prints_the_recommendation_and_the_report(tmp_path: Path, stub) -> None:
    write_project(tmp_path, stub, reference="45 days")
    p = run_rung("ladder", "-c", "rung.yaml", "--sample", "4", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "4 of 8 cases" in p.stdout
    assert "recommendation: Ship level 1" in p.stdout
    report = tmp_path / ".rung" / "report" / "report.html"
    assert f"report: {report}" in p.stdout.replace("\n", " ") or str(report) in p.stdout
    html = report.read_text(encoding="utf-8")
    assert "tuned" in html and "bare" in html and "<svg" in html
    assert (tmp_path / ".rung" / "report" / "report.md").read_text(encoding="utf-8").strip()


@pytest.mark.parametrize("bad", ["no-candidates"])
def test_ladder_needs_a_level0_candidate(tmp_path: Path, stub, bad: str) -> None:
    from rung.errors import ConfigError

    path = write_project(tmp_path, stub, reference="x")
    cfg = load_config(path)
    cfg.candidates = {"tuned": cfg.candidates["tuned"]}
    with pytest.raises(ConfigError, match="at least one level-0 candidate"):
        climb(cfg, RunStore(tmp_path / "runs.db"))


@pytest.mark.slow
def test_ladder_trains_a_lora_adapter_and_reuses_it(tmp_path: Path) -> None:
    """--train: the ladder builds the dataset from tune.data, trains LoRA for the level-0
    candidate closest to the targets (2 steps here), adds `<candidate>-lora` and evaluates it
    like any candidate; a second climb reuses the artifact of the same job."""
    from types import SimpleNamespace

    from rung.evals.runner import evaluate_candidate
    from rung.ladder import _train_level1

    qa = [("What is the refund window?", "Refunds are accepted within 30 days."),
          ("How long does shipping take?", "Shipping takes 3 to 5 business days."),
          ("Is there a warranty?", "All devices have a two year warranty."),
          ("Can I pay by invoice?", "Business customers can pay by invoice.")]
    (tmp_path / "train.jsonl").write_text("".join(
        json.dumps({"id": f"t{i}", "input": q, "reference": a}) + "\n" for i, (q, a) in enumerate(qa)))
    (tmp_path / "eval.jsonl").write_text(json.dumps({"id": "e1", "input": "Do you refund?",
                                                     "reference": "30 days"}) + "\n")
    (tmp_path / "rung.yaml").write_text("""
project: ladder-train
candidates:
  desk:
    system_prompt: You are the support desk of Acme. Answer in one sentence.
    generation: {max_new_tokens: 8}
suites:
  eval: {path: eval.jsonl, scorers: [contains]}
tune:
  data:
    train: train.jsonl
    checks: {leakage_suites: []}
  train: {max_steps: 2, batch_size: 2, max_seq_len: 96, dev_size: 0, lr_scheduler: constant}
""")
    os.environ.setdefault("RUNG_THREADS", "1")
    cfg = load_config(tmp_path / "rung.yaml")
    notes: list[str] = []
    said: list[str] = []
    name = _train_level1(cfg, SimpleNamespace(candidate="desk"), LadderEvents(note=said.append), notes)
    assert name == "desk-lora" and cfg.candidates[name].adapter == name
    folder = Path(cfg.models["default"].adapters[name])
    lineage = json.loads((folder / "rung-lineage.json").read_text())
    assert lineage["dataset"]["version"] and (folder / "adapter_model.safetensors").is_file()
    assert any("training LoRA adapter" in s for s in said) and "desk-lora" in notes[0]
    run, _ = evaluate_candidate(cfg, name, RunStore(tmp_path / "runs.db"))
    assert run.info.level == 1 and run.results[0].answer.text.strip()

    cfg2 = load_config(tmp_path / "rung.yaml")
    said.clear()
    assert _train_level1(cfg2, SimpleNamespace(candidate="desk"), LadderEvents(note=said.append), []) == name
    assert any("reusing adapter" in s for s in said)
