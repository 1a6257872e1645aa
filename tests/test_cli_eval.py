"""The eval commands end to end, as a user runs them: real `rung` processes, a real SQLite
store, and the OpenAI-compatible test stub on 127.0.0.1 as the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clirun import run_rung

QUESTIONS = ["refund window", "warranty length", "shipping cost", "support hours",
             "router reset", "storage plans", "thermostat pairing", "invoice copy"]


rung = run_rung


@pytest.fixture
def project(tmp_path: Path, stub) -> Path:
    (tmp_path / "cases.jsonl").write_text("".join(
        json.dumps({"id": f"q{i}", "input": f"Tell me about {q}", "reference": q,
                    "tags": ["even" if i % 2 == 0 else "odd"]}) + "\n"
        for i, q in enumerate(QUESTIONS)))
    (tmp_path / "rung.yaml").write_text(f"""
project: cli-test
models:
  default:
    backend: openai
    base_url: {stub.url}
    model: stub-model
    max_retries: 0
candidates:
  full:
    generation: {{max_new_tokens: 32}}
  clipped:
    generation: {{max_new_tokens: 2}}
suites:
  main:
    path: cases.jsonl
    scorers: [contains]
gate:
  thresholds:
    task_success: {{min: 0.5}}
constraints:
  latency_probe: {{cases: 0}}  # model calls counted below are the evaluation's (test_latency.py probes)
""")
    return tmp_path


def run_id(out: str) -> str:
    for line in out.splitlines():
        if line.startswith("run "):
            return line.split()[1]
    raise AssertionError(f"no run id in: {out}")


def test_eval_runs_show_compare_report(project: Path, stub):
    r = rung("eval", "-C", "full", cwd=project)
    assert r.returncode == 0, r.stderr
    assert "task_success" in r.stdout
    full = run_id(r.stdout)
    calls = stub.state.chat_calls
    assert calls == len(QUESTIONS)

    # an unchanged re-run is answered from the cache: no model call
    r = rung("eval", "-C", "full", cwd=project)
    assert r.returncode == 0, r.stderr
    assert stub.state.chat_calls == calls

    # the clipped candidate fails the gate and regresses against the full one
    r = rung("eval", "-C", "clipped", "--gate", cwd=project)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "gate failed" in r.stdout
    clipped = run_id(r.stdout)

    r = rung("runs", cwd=project)
    assert r.returncode == 0 and full in r.stdout and clipped in r.stdout

    r = rung("show", full[:15], "-c", "rung.yaml", cwd=project)
    assert r.returncode == 0, r.stderr
    assert "gate passed" in r.stdout

    r = rung("compare", full, clipped, "-c", "rung.yaml", "--fail-on-regression", cwd=project)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "REGRESSED" in r.stdout

    r = rung("compare", full, full, "-c", "rung.yaml", "--fail-on-regression", cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr

    r = rung("report", full, clipped, "-c", "rung.yaml", "-o", "out", cwd=project)
    assert r.returncode == 0, r.stderr
    html = (project / "out" / "report.html").read_text()
    assert "clipped" in html and "full" in html
    assert (project / "out" / "report.md").read_text().strip()

    r = rung("export", full, "-o", "full.jsonl", cwd=project)
    assert r.returncode == 0, r.stderr
    lines = (project / "full.jsonl").read_text().splitlines()
    assert len(lines) == 1 + len(QUESTIONS)


def test_unknown_run_id_is_one_line(project: Path):
    from rung.evals.store import RunStore

    RunStore(project / ".rung" / "rung.db").close()  # an empty store: what is wrong is the run id
    r = rung("show", "nope", cwd=project)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and "nope" in r.stderr


def test_bad_suite_names_file_and_line(project: Path):
    (project / "cases.jsonl").write_text('{"id": "a", "input": "x"}\n{"id": "b", "input": 3, "should_refuse": "yes"}\n')
    r = rung("eval", "-C", "full", cwd=project)
    assert r.returncode == 1
    assert "cases.jsonl:2" in r.stderr and "should_refuse" in r.stderr
    assert "Traceback" not in r.stderr


def test_evaluate_candidate_reuses_a_finished_run_of_the_same_recipe(project: Path, stub) -> None:
    """The ladder's cache: the same candidate (hash), cases and scorers give back the stored run
    without calling the model; changing the cases runs again."""
    from rung.config import load_config
    from rung.evals.runner import evaluate_candidate
    from rung.evals.store import RunStore

    cfg = load_config(project / "rung.yaml")
    store = RunStore(project / "ladder.db")
    first, reused = evaluate_candidate(cfg, "full", store, ids=["q0", "q1", "q2"], reuse=True)
    assert not reused and len(first.results) == 3
    calls = stub.state.chat_calls
    again, reused = evaluate_candidate(cfg, "full", store, ids=["q0", "q1", "q2"], reuse=True)
    assert reused and again.info.id == first.info.id and stub.state.chat_calls == calls
    other, reused = evaluate_candidate(cfg, "full", store, ids=["q0", "q1"], reuse=True)
    assert not reused and other.info.id != first.info.id
    assert [r.case.id for r in other.results] == ["q0", "q1"]
