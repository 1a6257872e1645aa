"""`rung score`: outputs made elsewhere, scored with the suite's scorers and stored as a run that
`rung compare` pairs with `rung eval` runs of the same cases; bad lines as FILE:LINE errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clirun import run_rung as rung

from rung.config import load_config
from rung.errors import SuiteError
from rung.evals.score_file import LEVEL_UNKNOWN, read_outputs, request_id, score_file
from rung.evals.store import RunStore

TOPICS = ["refund window", "warranty length", "shipping cost", "support hours",
          "router reset", "storage plans", "thermostat pairing", "invoice copy"]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------- 200 lines with contexts, no model

def big_project(tmp: Path, n: int = 200) -> Path:
    write_jsonl(tmp / "cases.jsonl", [
        {"id": f"c{i}", "input": f"How long is the {TOPICS[i % 8]} for plan {i}?",
         "reference": f"{30 + i} days", "sources": [f"policy-{i % 8}"],
         "tags": [TOPICS[i % 8].split()[0]], **({"should_refuse": False} if i % 4 == 0 else {})}
        for i in range(n)])
    (tmp / "rung.yaml").write_text("""
project: score-test
models:
  default: {backend: openai, base_url: "http://127.0.0.1:9/v1", model: none}
suites:
  main:
    path: cases.jsonl
    scorers:
      - contains
      - {type: groundedness, use_embedder: false}
      - {type: citation, use_embedder: false}
      - {type: refusal, use_embedder: false}
      - retrieval
""")
    return tmp / "rung.yaml"


def outputs(n: int = 200) -> list[dict]:
    rows = []
    for i in range(n):
        ctx = [{"id": f"policy-{i % 8}#1", "text": f"The {TOPICS[i % 8]} for plan {i} is {30 + i} days."},
               {"id": f"faq#{i % 5}", "text": "Orders ship within two working days."}]
        answer = f"The {TOPICS[i % 8]} is {30 + i} days [policy-{i % 8}#1]." if i % 10 else "It is 7 days."
        rows.append({"id": f"c{i}", "input": f"How long is the {TOPICS[i % 8]} for plan {i}?",
                     "output": answer, "contexts": ctx, "latency_ms": 100 + i, "tokens_in": 50,
                     "tokens_out": 12, "model": "other-system"})
    return rows


def test_200_lines_with_contexts_store_a_run_in_seconds_without_loading_a_model(tmp_path):
    cfg_file = big_project(tmp_path)
    write_jsonl(tmp_path / "out.jsonl", outputs())
    code = (
        "import json, sys, time\n"
        "from rung.config import load_config\n"
        "from rung.evals.score_file import score_file\n"
        "from rung.evals.store import RunStore\n"
        f"cfg = load_config({str(cfg_file)!r})\n"
        "t0 = time.perf_counter()\n"
        f"run = score_file(cfg, {str(tmp_path / 'out.jsonl')!r}, RunStore(cfg.store_target()))\n"
        "dt = time.perf_counter() - t0\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]\n"
        "print(json.dumps({'s': dt, 'heavy': heavy, 'id': run.info.id, 'n': len(run.results)}))\n")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"rung score of 200 lines: {out['s']:.2f} s in the library, {wall:.2f} s with interpreter start")
    assert out["n"] == 200 and out["heavy"] == []  # no torch / transformers: no model was loaded
    assert out["s"] < 10.0

    run = RunStore(load_config(cfg_file).store_target()).get_run(out["id"])
    info = run.info
    assert info.status == "finished" and info.level == LEVEL_UNKNOWN and info.suite == "main"
    assert info.candidate.startswith("out.jsonl@") and len(info.candidate_hash) == 64
    assert info.model_id == "other-system" and info.metadata["suite_cases_matched"] == 200
    first = run.results[0]
    assert first.case.id == "c0" and first.case.reference == "30 days"  # the expectation came from the suite
    assert first.answer.trace.retrieved[0].doc_id == "policy-0"
    names = {s.name: s for s in first.scores}
    assert names["context_recall"].value == 1.0 and names["hit_at_k"].value == 1.0
    assert names["hallucination"].value == 1.0  # "7 days" is in no context
    assert names["latency_ms"].value == 100.0 and names["refusal_correct"].value == 1.0
    second = {s.name: s.value for s in run.results[1].scores}
    assert second["task_success"] == 1.0 and second["hallucination"] == 0.0 and second["citation_correct"] == 1.0


# ---------------------------------------------------------------- end to end with `rung eval` (the stub)

@pytest.fixture
def project(tmp_path: Path, stub) -> Path:
    write_jsonl(tmp_path / "cases.jsonl", [
        {"id": f"q{i}", "input": f"Tell me about {q}", "reference": q, "tags": ["even" if i % 2 == 0 else "odd"]}
        for i, q in enumerate(TOPICS)])
    (tmp_path / "rung.yaml").write_text(f"""
project: score-cli
models:
  default: {{backend: openai, base_url: {stub.url}, model: stub-model, max_retries: 0}}
candidates:
  full:
    generation: {{max_new_tokens: 32}}
suites:
  main:
    path: cases.jsonl
    scorers: [contains]
""")
    return tmp_path


def run_id(out: str) -> str:
    for line in out.splitlines():
        if line.startswith("run "):
            return line.split()[1]
    raise AssertionError(f"no run id in: {out}")


def test_score_pairs_with_an_eval_run_of_the_same_cases(project: Path, stub):
    r = rung("eval", "-C", "full", cwd=project)
    assert r.returncode == 0, r.stderr
    evaluated = run_id(r.stdout)
    calls = stub.state.chat_calls
    # another system's answers to the same cases (ids only: the requests and references are the suite's);
    # it gets the even ones right
    write_jsonl(project / "theirs.jsonl", [
        {"id": f"q{i}", "output": f"About {q}: see the manual." if i % 2 == 0 else "No idea."}
        for i, q in enumerate(TOPICS)])
    r = rung("score", "theirs.jsonl", "--name", "vendor-x", cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "8 outputs, 8 paired with cases of suite main" in r.stdout
    scored = run_id(r.stdout)
    assert stub.state.chat_calls == calls  # scoring asks no model

    r = rung("compare", evaluated, scored, "-c", "rung.yaml", cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "unpaired" not in r.stdout and "vendor-x" in r.stdout

    from rung.evals.compare import compare

    store = RunStore(project / ".rung" / "rung.db")
    c = compare(store.get_run(evaluated), store.get_run(scored))
    assert not c.only_in_a and not c.only_in_b
    assert c.metrics["task_success"].n_pairs == 8
    assert c.metrics["task_success"].mean_a == 1.0 and c.metrics["task_success"].mean_b == 0.5

    r = rung("report", evaluated, scored, "-c", "rung.yaml", "-o", "rep", cwd=project)
    assert r.returncode == 0, r.stderr
    assert "vendor-x" in (project / "rep" / "report.md").read_text()
    r = rung("decide", "-c", "rung.yaml", "--run", evaluated, "--run", scored, "--json", cwd=project)
    assert r.returncode in (0, 2) and "Traceback" not in r.stderr, r.stderr
    assert "vendor-x" in r.stdout


def test_bad_lines_are_reported_with_file_and_line_and_nothing_is_stored(project: Path):
    write_jsonl(project / "bad.jsonl", [
        {"id": "q0", "output": "fine"},
        {"input": "no output here"},
        "not json {",
        {"input": "x", "output": 3, "contexts": "one string", "ouput": "typo"},
        {"id": "q0", "output": "again"},
        {"id": "zzz", "output": "an unknown id and no input"},
    ])
    r = rung("score", "bad.jsonl", cwd=project)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    err = r.stderr
    assert "bad.jsonl: 7 problems, nothing stored" in err, err
    assert "bad.jsonl:2: missing required field 'output'" in err
    assert "bad.jsonl:3: not valid JSON" in err
    assert "bad.jsonl:4: unknown field 'ouput' (did you mean 'output'?)" in err
    assert "bad.jsonl:4: field 'output': expected a string, got 3" in err
    assert "bad.jsonl:4: field 'contexts': expected a list" in err
    assert "bad.jsonl:5: duplicate id 'q0' (first at bad.jsonl:1)" in err
    assert "bad.jsonl:6: missing 'input' or 'messages' (id 'zzz' is not a case of the suite)" in err
    r = rung("runs", cwd=project)
    assert "no runs yet" in r.stdout


# ---------------------------------------------------------------- reading lines

def test_lines_merge_with_suite_cases_and_ids_without_suite(tmp_path):
    from rung.core import Case

    suite = [Case(id="a", input="Refund?", reference="30 days", should_refuse=False, tags=["refunds"],
                  metadata={"must_include": ["30"]})]
    write_jsonl(tmp_path / "o.jsonl", [
        {"id": "a", "output": "30 days", "reference": None, "tags": ["mine"], "metadata": {"x": 1}},
        {"messages": [{"role": "user", "content": "Hi"}], "output": "Hello",
         "retrieved": ["some context", "more"]},
        {"messages": [{"role": "user", "content": "Hi"}], "output": "Hello again"},
        {"input": "Steal data", "output": "No.", "should_refuse": True, "contexts": []},
    ])
    lines = read_outputs(tmp_path / "o.jsonl", suite)
    a, hi, hi2, steal = (x.case for x in lines)
    assert a.input == "Refund?" and a.reference == "30 days" and a.should_refuse is False  # null = not given
    assert a.tags == ["mine"] and a.metadata == {"must_include": ["30"], "x": 1} and lines[0].matched
    assert hi.id == request_id([{"role": "user", "content": "Hi"}]) and hi2.id == hi.id + "-2"
    assert [c.id for c in lines[1].answer.trace.retrieved] == ["ctx1", "ctx2"]
    assert lines[2].answer.trace.retrieved == [] and lines[2].answer.trace.events == []
    assert lines[3].answer.trace.events[0]["type"] == "retrieval"  # contexts: [] = retrieved nothing
    assert steal.should_refuse is True and not lines[3].matched


def test_scorers_flag_and_a_project_without_suites(tmp_path):
    (tmp_path / "rung.yaml").write_text("project: p\n")
    write_jsonl(tmp_path / "o.jsonl", [{"input": "2+2?", "output": "4", "reference": "4"}])
    cfg = load_config(tmp_path / "rung.yaml")
    store = RunStore(tmp_path / "runs.db")
    with pytest.raises(Exception, match="--scorers"):
        score_file(cfg, tmp_path / "o.jsonl", store)
    run = score_file(cfg, tmp_path / "o.jsonl", store, scorers=["exact"])
    assert run.info.suite == "o" and {s.name for s in run.results[0].scores} >= {"task_success", "cost"}
    assert run.results[0].score("task_success").value == 1.0
    with pytest.raises(SuiteError, match="no lines to score"):
        score_file(cfg, write_jsonl(tmp_path / "empty.jsonl", []), store, scorers=["exact"])
