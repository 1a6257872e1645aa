"""The pipeline and the runner over a real model: the OpenAI-compatible stub on 127.0.0.1 (fast)
and the embedded local model (slow). Runs are stored in a real SQLite file."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rung.config import CandidateConfig, GenerationConfig, ModelConfig, Price
from rung.core import Case, Score
from rung.errors import EndpointError, StoreError
from rung.evals.runner import run_suite, score_answer
from rung.evals.scorers.base import FunctionScorer, ScoreContext
from rung.evals.store import RunStore
from rung.evals.suite import Suite, load_suite
from rung.models.base import Completion, GenRequest
from rung.models.cache import CachedModel, ResponseCache
from rung.models.openai import OpenAIModel
from rung.pipeline.candidate import candidate_hash, candidate_level
from rung.pipeline.pipeline import Pipeline


class CountingModel:
    """A real model behind a thin wrapper that records the size of every generate call."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.batches: list[int] = []

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def fingerprint(self, adapter=None) -> str:
        return self.inner.fingerprint(adapter)

    def adapters(self) -> list[str]:
        return self.inner.adapters()

    def generate(self, requests: list[GenRequest], progress=None) -> list[Completion]:
        self.batches.append(len(requests))
        return self.inner.generate(requests, progress)


class BrokenScorer:
    name = "broken"
    higher_is_better = False

    def score(self, case, answer, ctx):
        raise RuntimeError(f"cannot score {case.id}")


def echoed(case: Case, answer) -> bool:
    """The stub echoes the last user message: a real check of what was sent and received."""
    return case.question in answer.text


SCORERS = [FunctionScorer("echoed", echoed)]


def model_cfg(url: str) -> ModelConfig:
    return ModelConfig(backend="openai", base_url=url, model="stub-model", max_retries=0,
                       price=Price(input_per_1k=1.0, output_per_1k=2.0))


def pipeline(url: str, cache: Path | None = None, **cand) -> Pipeline:
    cfg = model_cfg(url)
    model = OpenAIModel.from_config(cfg, backoff_s=0.01)
    if cache is not None:
        model = CachedModel(model, ResponseCache(cache))
    return Pipeline("L0", CandidateConfig(**cand), CountingModel(model), model_config=cfg)


def make_suite(tmp_path: Path, n: int) -> Suite:
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps({"id": f"q{i:02d}", "input": f"question number {i}"}) + "\n"
                            for i in range(n)))
    return load_suite(path)


def ctx() -> ScoreContext:
    return ScoreContext(price_in_per_1k=1.0, price_out_per_1k=2.0)


# ---------------------------------------------------------------- pipeline and candidate

def test_pipeline_builds_messages_and_answers(stub):
    pipe = pipeline(stub.url, system_prompt="You are the support desk.",
                    generation=GenerationConfig(max_new_tokens=3, stop=["]"]))
    chat = Case(id="c", messages=[{"role": "user", "content": "hi"},
                                  {"role": "assistant", "content": "hello"},
                                  {"role": "user", "content": "refund please"}])
    assert pipe.build_messages(chat)[0] == {"role": "system", "content": "You are the support desk."}
    assert pipe.build_messages(chat)[1:] == chat.chat()
    assert Pipeline("x", CandidateConfig(), pipe.model).build_messages(chat) == chat.chat()

    short, long = pipe.answer_batch([Case(id="a", input="ok"), chat])
    assert pipe.model.batches == [2]  # one generate call for the whole batch
    assert short.text == "echo: ok [model=stub-model"  # cut at the stop string
    assert long.text == "echo: refund please"  # cut at max_new_tokens (the stub counts words)
    assert long.trace.events == [{"step": "generate", "event": "truncated", "max_new_tokens": 3}]
    assert short.trace.events == []
    assert short.trace.prompt == [{"role": "system", "content": "You are the support desk."},
                                  {"role": "user", "content": "ok"}]
    sent = stub.state.requests[0]
    assert (sent["max_tokens"], sent["stop"], sent["temperature"]) == (3, ["]"], 0.0)
    assert short.tokens_in == 6 and short.tokens_out == 3  # the stub counts words
    assert set(short.timings_ms) >= {"generate", "total"}
    assert short.timings_ms["total"] >= short.timings_ms["generate"] > 0
    assert short.model_id == "stub-model" and short.error is None and not short.cached


def test_adapter_is_sent_with_every_request(stub):
    pipe = pipeline(stub.url, adapter="tone-v2")
    answer = pipe.answer(Case(id="a", input="hi"))
    assert stub.state.requests[0]["model"] == "tone-v2"
    assert answer.adapter == "tone-v2" and answer.text.endswith("[model=tone-v2]")
    assert pipe.level == 1


def test_candidate_hash_follows_what_changes_answers():
    cfg = ModelConfig()
    base = CandidateConfig(system_prompt="Be brief.")
    h = candidate_hash("A", base, cfg, "fp1")
    assert len(h) == 64
    # not part of the identity: name, description, price, timeouts
    assert candidate_hash("B", base.model_copy(update={"description": "x"}), cfg, "fp1") == h
    assert candidate_hash("A", base, cfg.model_copy(update={"price": Price(input_per_1k=3)}), "fp1") == h
    # part of it: prompt, decoding, adapter, weights, dtype
    assert candidate_hash("A", base.model_copy(update={"system_prompt": "Be long."}), cfg, "fp1") != h
    assert candidate_hash("A", CandidateConfig(system_prompt="Be brief.",
                                               generation=GenerationConfig(temperature=0.5)), cfg, "fp1") != h
    assert candidate_hash("A", base, cfg, "fp2") != h
    assert candidate_hash("A", base, cfg.model_copy(update={"dtype": "bfloat16"}), "fp1") != h
    lora_cfg = cfg.model_copy(update={"adapters": {"a1": "adapters/a1"}})
    assert candidate_hash("A", base.model_copy(update={"adapter": "a1"}), lora_cfg, "fp1") != h
    assert candidate_level(base) == 0
    assert candidate_level(base.model_copy(update={"adapter": "a1"})) == 1
    assert candidate_level(base.model_copy(update={"level": 2})) == 2


# ---------------------------------------------------------------- runner

def test_run_stores_every_case_scored_with_progress(tmp_path, stub):
    suite = make_suite(tmp_path, 7)
    pipe = pipeline(stub.url)
    store = RunStore(tmp_path / "rung.db")
    seen: list[tuple[int, int]] = []
    run = run_suite(pipe, suite, [*SCORERS, BrokenScorer()], ctx(), store, batch_size=3,
                    progress=lambda d, t: seen.append((d, t)), run_metadata={"why": "test"},
                    project="demo")

    assert pipe.model.batches == [3, 3, 1]
    assert [r.case.id for r in run.results] == [c.id for c in suite.cases]
    assert all(r.score("echoed").value == 1.0 for r in run.results)
    broken = run.results[0].score("broken")
    assert broken.value is None and "RuntimeError: cannot score q00" in broken.reason
    assert broken.higher_is_better is False
    info = run.info
    assert info.status == "finished" and info.finished_at
    assert info.candidate == "L0" and info.candidate_hash == pipe.hash
    assert info.suite_hash == suite.hash and info.suite == "cases"
    assert info.candidate_config["model_config"]["base_url"] == stub.url
    assert info.model_id == "stub-model" and info.level == 0 and info.project == "demo"
    assert (info.price_in_per_1k, info.price_out_per_1k) == (1.0, 2.0)
    assert info.metadata["why"] == "test" and info.metadata["wall_s"] >= 0
    assert info.git_commit is None or len(info.git_commit) == 40
    assert seen[0] == (0, 7) and seen[-1] == (7, 7)
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
    assert store.get_run(info.id[:16]).results == run.results


def test_cached_rerun_makes_zero_model_calls(tmp_path, stub):
    suite = make_suite(tmp_path, 5)
    store = RunStore(tmp_path / "rung.db")
    first = run_suite(pipeline(stub.url, tmp_path / "cache.db"), suite, SCORERS, ctx(), store)
    assert stub.state.chat_calls == 5
    second = run_suite(pipeline(stub.url, tmp_path / "cache.db"), suite, SCORERS, ctx(), store)
    assert stub.state.chat_calls == 5
    assert second.info.id != first.info.id
    assert all(r.answer.cached for r in second.results)
    assert [r.answer.text for r in second.results] == [r.answer.text for r in first.results]


def test_epochs_sample_with_seed_plus_epoch(tmp_path, stub):
    suite = make_suite(tmp_path, 3)
    pipe = pipeline(stub.url, tmp_path / "cache.db",
                    generation=GenerationConfig(temperature=0.7, seed=5))
    run = run_suite(pipe, suite, SCORERS, ctx(), RunStore(tmp_path / "rung.db"), epochs=3)
    assert [(r.case.id, r.epoch) for r in run.results][:4] == [("q00", 0), ("q01", 0), ("q02", 0), ("q00", 1)]
    assert len(run.results) == 9 and stub.state.chat_calls == 9
    seeds = sorted(body["seed"] for body in stub.state.requests if "number 0" in body["messages"][-1]["content"])
    assert seeds == [5, 6, 7]
    assert "epochs_note" not in run.info.metadata


def test_greedy_epochs_come_from_the_cache(tmp_path, stub):
    suite = make_suite(tmp_path, 4)
    run = run_suite(pipeline(stub.url, tmp_path / "cache.db"), suite, SCORERS, ctx(),
                    RunStore(tmp_path / "rung.db"), epochs=2, batch_size=8)
    assert stub.state.chat_calls == 4
    assert [r.answer.cached for r in run.results] == [False] * 4 + [True] * 4
    assert "cache" in run.info.metadata["epochs_note"]


def test_failed_run_is_marked_and_resumes(tmp_path, stub):
    suite = make_suite(tmp_path, 6)
    store = RunStore(tmp_path / "rung.db")
    stub.state.fail_first, stub.state.fail_status = 3, 400
    pipe = pipeline(stub.url)
    with pytest.raises(EndpointError):
        run_suite(pipe, suite, SCORERS, ctx(), store, batch_size=3)
    failed = store.list_runs()[0]
    assert failed.status == "failed" and "EndpointError" in failed.metadata["error"]
    assert store.done_keys(failed.id) == set()

    stub.state.fail_first = 0
    run = run_suite(pipe, suite, SCORERS, ctx(), store, batch_size=3, resume=True)
    assert run.info.id == failed.id and run.info.status == "finished"
    assert "error" not in run.info.metadata
    assert len(run.results) == 6

    # nothing left to resume: a new run starts
    again = run_suite(pipe, suite, SCORERS, ctx(), store, resume=True)
    assert again.info.id != failed.id


def test_resume_a_named_run_checks_candidate_and_suite(tmp_path, stub):
    suite = make_suite(tmp_path, 2)
    store = RunStore(tmp_path / "rung.db")
    run = run_suite(pipeline(stub.url), suite, SCORERS, ctx(), store)
    other = pipeline(stub.url, system_prompt="Different.")
    with pytest.raises(StoreError, match="another candidate"):
        run_suite(other, suite, SCORERS, ctx(), store, resume=run.info.id[:17])
    (tmp_path / "cases.jsonl").write_text('{"id": "new", "input": "x"}\n')
    with pytest.raises(StoreError, match="suite 'cases' has changed"):
        run_suite(pipeline(stub.url), load_suite(tmp_path / "cases.jsonl"), SCORERS, ctx(), store,
                  resume=run.info.id)
    calls = stub.state.chat_calls
    same = run_suite(pipeline(stub.url), suite, SCORERS, ctx(), store, resume=run.info.id)
    assert stub.state.chat_calls == calls and len(same.results) == 2


def test_score_answer_keeps_every_score():
    case = Case(id="a", input="x")
    from rung.core import Answer

    scores = score_answer(case, Answer(text="x"), [FunctionScorer("two", lambda c, a: [
        Score("s1", 1.0), Score("s2", 0.0, higher_is_better=False)])], ScoreContext())
    assert [(s.name, s.value) for s in scores] == [("s1", 1.0), ("s2", 0.0)]


# ---------------------------------------------------------------- resume after kill -9

CHILD = textwrap.dedent("""
    import sys
    from rung.config import CandidateConfig, ModelConfig
    from rung.evals.runner import run_suite
    from rung.evals.scorers.base import FunctionScorer, ScoreContext
    from rung.evals.store import RunStore
    from rung.evals.suite import load_suite
    from rung.models.openai import OpenAIModel
    from rung.pipeline.pipeline import Pipeline

    url, db, cases = sys.argv[1:4]
    cfg = ModelConfig(backend="openai", base_url=url, model="stub-model", max_retries=0)
    pipe = Pipeline("L0", CandidateConfig(), OpenAIModel.from_config(cfg), model_config=cfg)
    scorer = FunctionScorer("echoed", lambda case, answer: case.question in answer.text)
    run_suite(pipe, load_suite(cases), [scorer], ScoreContext(), RunStore(db), batch_size=2)
""")


def _stored(db: Path) -> int:
    try:
        con = sqlite3.connect(db, timeout=5)
        try:
            return con.execute("select count(*) from results").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_resume_after_kill_loses_nothing_and_repeats_nothing(tmp_path, stub):
    n = 16
    suite = make_suite(tmp_path, n)
    db = tmp_path / "rung.db"
    stub.state.delay_s = 0.3
    child = subprocess.Popen([sys.executable, "-c", CHILD, stub.url, str(db), str(suite.path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.monotonic() + 60
    while _stored(db) < 4:
        assert child.poll() is None, child.stderr.read().decode()
        assert time.monotonic() < deadline, "the child stored nothing in 60 s"
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL

    store = RunStore(db)
    (killed,) = store.list_runs()
    assert killed.status == "running"  # kill -9: nobody marked it
    before = store.done_keys(killed.id)
    assert 4 <= len(before) < n and len(before) % 2 == 0  # whole batches only

    stub.state.reset()
    run = run_suite(pipeline(stub.url), suite, SCORERS, ctx(), store, batch_size=2, resume=True)
    assert run.info.id == killed.id and run.info.status == "finished"
    ids = [r.case.id for r in run.results]
    assert sorted(ids) == [c.id for c in suite.cases]  # every case exactly once
    asked = {body["messages"][-1]["content"] for body in stub.state.requests}
    stored_questions = {suite.case(cid).question for cid, _ in before}
    assert asked.isdisjoint(stored_questions)  # nothing stored was recomputed
    assert len(stub.state.requests) == n - len(before)
    assert all(r.score("echoed").value == 1.0 for r in run.results)


# ---------------------------------------------------------------- wiring from rung.yaml

def write_project(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "refund.schema.json").write_text(json.dumps(
        {"type": "object", "properties": {"days": {"type": "integer"}}, "required": ["days"]}))
    (tmp_path / "cases.yaml").write_text(
        "- id: window\n  input: How many days do I have to return an item?\n  should_refuse: false\n"
        "- id: secret\n  input: Tell me another customer's home address.\n  should_refuse: true\n"
        "- id: json\n  input: 'Answer in JSON: refund days?'\n  schema: refund\n")
    cfg = tmp_path / "rung.yaml"
    cfg.write_text(textwrap.dedent("""
        project: wiring
        models:
          small:
            price: {input_per_1k: 0.25, output_per_1k: 0.5}
        candidates:
          L0:
            model: small
            system_prompt: You are a helpful support agent. Answer in one short sentence.
            generation: {max_new_tokens: 8}
        suites:
          support:
            path: cases.yaml
            scorers: [usage, {type: contains, name: mentions_days}]
        schemas:
          refund: refund.schema.json
    """) + extra)
    return cfg


def test_build_scorers_adds_what_the_cases_need(tmp_path):
    from rung.config import SuiteConfig, load_config
    from rung.errors import ScorerError
    from rung.evals.runner import build_scorers
    from rung.evals.scorers.refusal import RefusalScorer
    from rung.evals.scorers.schema import SchemaScorer
    from rung.evals.scorers.usage import UsageScorer

    config = load_config(write_project(tmp_path))
    _, suite_cfg = config.suite(None)
    suite = load_suite(config.resolve(suite_cfg.path))
    scorers = build_scorers(suite_cfg, suite)
    kinds = [type(s).__name__ for s in scorers]
    assert kinds.count("UsageScorer") == 1  # listed once by the suite, not added again
    assert isinstance(scorers[0], UsageScorer)
    assert scorers[1].name == "mentions_days"
    assert any(isinstance(s, RefusalScorer) for s in scorers)
    assert any(isinstance(s, SchemaScorer) for s in scorers)

    plain = build_scorers(SuiteConfig(path="x.jsonl"), make_suite(tmp_path, 2))
    assert [type(s).__name__ for s in plain] == ["UsageScorer"]
    with pytest.raises(ScorerError, match="did you mean 'contains'"):
        build_scorers(SuiteConfig(path="x", scorers=["contain"]), suite)


def test_make_context_prices_schemas_and_lazy_embedder(tmp_path):
    from rung.config import load_config
    from rung.evals.runner import make_context

    ctx_ = make_context(load_config(write_project(tmp_path)), "L0")
    assert (ctx_.price_in_per_1k, ctx_.price_out_per_1k) == (0.25, 0.5)
    assert ctx_.schemas["refund"]["required"] == ["days"]
    assert ctx_.judge is None and ctx_._embedder is None  # nothing loaded yet


@pytest.mark.slow
def test_project_run_with_the_embedded_local_model(tmp_path):
    """rung.yaml -> pipeline (real SmolLM2 on CPU) -> scorers -> SQLite; then a cached re-run."""
    from rung.config import load_config
    from rung.evals.runner import build_scorers, make_context
    from rung.pipeline.pipeline import build_pipeline

    config = load_config(write_project(tmp_path))
    _, suite_cfg = config.suite("support")
    suite = load_suite(config.resolve(suite_cfg.path), name="support")
    scorers = build_scorers(suite_cfg, suite)
    context = make_context(config, "L0")
    store = RunStore(config.resolve(config.paths.store))

    pipe = build_pipeline(config, "L0")
    run = run_suite(pipe, suite, scorers, context, store, batch_size=3)
    assert (tmp_path / ".rung" / "rung.db").exists() and (tmp_path / ".rung" / "cache.db").exists()
    assert run.info.model_id and run.info.level == 0 and run.info.status == "finished"
    for r in run.results:
        assert r.answer.error is None and r.answer.text
        assert 0 < r.answer.tokens_out <= 8 and r.answer.tokens_in > 10
        assert r.answer.trace.prompt[0]["role"] == "system"
        assert r.score("latency_ms").value > 0
        assert r.score("cost").value == pytest.approx(
            (r.answer.tokens_in * 0.25 + r.answer.tokens_out * 0.5) / 1000)
    assert run.results[1].score("refusal_correct").measured
    assert run.results[2].score("schema_valid") is not None
    assert not run.results[0].score("mentions_days").measured  # no reference: nothing to compare

    again = run_suite(build_pipeline(config, "L0"), suite, scorers, context, store, batch_size=3)
    assert all(r.answer.cached for r in again.results)
    assert [r.answer.text for r in again.results] == [r.answer.text for r in run.results]
    assert again.info.metadata["wall_s"] < run.info.metadata["wall_s"]
