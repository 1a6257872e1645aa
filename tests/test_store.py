"""The run store over a real SQLite file: round trip, prefix lookup, resume bookkeeping, export."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

from rung.core import Answer, Case, RetrievedChunk, Score, ToolCall, Trace
from rung.errors import StoreError
from rung.evals.store import RunStore, new_run_id, read_run_file
from rung.evals.types import CaseResult, RunInfo


def info(run_id: str = "", candidate: str = "L0", chash: str = "c" * 64, shash: str = "s" * 64) -> RunInfo:
    return RunInfo(id=run_id, candidate=candidate, candidate_hash=chash,
                   candidate_config={"system_prompt": "Be kind.", "generation": {"temperature": 0.0}},
                   suite="support", suite_hash=shash, level=1, model_id="smol", epochs=2,
                   git_commit="abc123", project="demo", price_in_per_1k=0.5, price_out_per_1k=1.5,
                   metadata={"note": "é ✓"})


def result(case_id: str, epoch: int = 0, text: str = "Refunds take 30 days [refunds-eu#1].") -> CaseResult:
    case = Case(id=case_id, input="How long?", reference="30 days", sources=["refunds-eu"],
                tags=["policy"], metadata={"k": 1}, file="cases.jsonl", line=3)
    trace = Trace(prompt=[{"role": "user", "content": "How long?"}],
                  retrieved=[RetrievedChunk("refunds-eu#1", "refunds-eu", "30 days", 0.9, {"lang": "en"})],
                  tool_calls=[ToolCall("lookup", {"q": "refund"}, "30", None, 1.5)],
                  events=[{"step": "generate", "event": "truncated"}])
    answer = Answer(text=text, citations=["refunds-eu#1"], parsed={"days": 30}, trace=trace,
                    tokens_in=12, tokens_out=7, timings_ms={"generate": 80.0, "total": 81.5},
                    model_id="smol", adapter="tone", cached=True)
    scores = [Score("task_success", 1.0, details={"method": "contains"}),
              Score("hallucination", 0.0, higher_is_better=False),
              Score.not_measured("judge", "no judge configured")]
    return CaseResult(case, answer, scores, epoch)


@pytest.fixture
def store(tmp_path):
    s = RunStore(tmp_path / "deep" / "er" / "rung.db")
    yield s
    s.close()


def test_run_ids_are_short_and_sortable():
    a = new_run_id()
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", a)
    assert new_run_id() != a


def test_round_trip_through_a_real_sqlite_file(tmp_path, store):
    assert (tmp_path / "deep" / "er" / "rung.db").exists()
    run = store.create_run(info())
    assert run.id and run.created_at and run.status == "running"
    stored = [result("a"), result("b"), result("a", epoch=1)]
    assert store.add_results(run.id, stored) == 3
    store.finish_run(run.id)

    # a second store object on the same file sees everything
    other = RunStore(tmp_path / "deep" / "er" / "rung.db")
    back = other.get_run(run.id)
    other.close()
    assert back.info.status == "finished" and back.info.finished_at
    assert back.info.candidate_config == run.candidate_config
    assert back.info.metadata == {"note": "é ✓"}
    assert (back.info.epochs, back.info.level, back.info.price_out_per_1k) == (2, 1, 1.5)
    assert [(r.case.id, r.epoch) for r in back.results] == [("a", 0), ("b", 0), ("a", 1)]
    first = back.results[0]
    assert first.case == stored[0].case
    assert first.answer == stored[0].answer  # trace, chunks, tool calls, timings included
    assert first.scores == stored[0].scores
    assert first.score("judge").measured is False


def test_a_result_is_stored_once_per_case_and_epoch(store):
    run = store.create_run(info())
    store.add_results(run.id, [result("a")])
    with pytest.raises(StoreError, match="already has a result"):
        # the whole batch is refused: "b" must not be half-stored
        store.add_results(run.id, [result("b"), result("a")])
    assert store.done_keys(run.id) == {("a", 0)}


def test_prefix_lookup_like_git(store):
    r1 = store.create_run(info("20261123-100000-aaaaaa"))
    store.create_run(info("20261123-100000-aaabbb"))
    store.create_run(info("20261124-090000-cccccc"))
    assert store.get_run("20261124").info.id == "20261124-090000-cccccc"
    assert store.get_run("20261123-100000-aaaaa").info.id == r1.id
    assert store.get_info(r1.id).id == r1.id
    with pytest.raises(StoreError) as e:
        store.get_run("20261123-100000-aaa")
    assert "ambiguous" in str(e.value)
    assert "20261123-100000-aaaaaa" in str(e.value) and "20261123-100000-aaabbb" in str(e.value)
    with pytest.raises(StoreError, match="no run matches 'zzz'"):
        store.get_run("zzz")
    with pytest.raises(StoreError, match="no run matches"):
        store.get_run("2026112_")  # LIKE wildcards are taken literally


def test_list_latest_unfinished_and_delete(store):
    old = store.create_run(info("20261120-000000-000001"))
    done = store.create_run(info("20261121-000000-000002"))
    store.finish_run(done.id)
    failed = store.create_run(info("20261122-000000-000003"))
    store.finish_run(failed.id, "failed")
    store.create_run(info("20261123-000000-000004", candidate="L1", chash="d" * 64))

    assert [r.id for r in store.list_runs()][:2] == ["20261123-000000-000004", failed.id]
    assert [r.id for r in store.list_runs(limit=2, candidate="L0")] == [failed.id, done.id]
    # the most recent unfinished run of that candidate on that suite (running or failed)
    assert store.latest_unfinished("c" * 64, "s" * 64).id == failed.id
    assert store.latest_unfinished("c" * 64, "t" * 64) is None

    store.add_results(failed.id, [result("a")])
    assert store.delete_run(failed.id[:17]) == failed.id
    assert store.latest_unfinished("c" * 64, "s" * 64).id == old.id
    with pytest.raises(StoreError):
        store.get_run(failed.id)
    con = sqlite3.connect(store.url.removeprefix("sqlite:///"))
    assert con.execute("select count(*) from results").fetchone() == (0,)
    con.close()


def test_export_jsonl_and_read_it_back(tmp_path, store):
    run = store.create_run(info())
    store.add_results(run.id, [result("a"), result("b", text="Sorry, I cannot help with that.")])
    out = store.export_jsonl(run.id[:15], tmp_path / "exports" / "run.jsonl")
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["type"] == "run" and lines[0]["run"]["id"] == run.id
    assert [x["case_id"] for x in lines[1:]] == ["a", "b"]
    assert lines[2]["answer"]["text"] == "Sorry, I cannot help with that."
    back = read_run_file(out)
    assert back.info == store.get_run(run.id).info
    assert back.results == store.get_run(run.id).results


def test_read_run_file_errors_name_the_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "run", "run": {"id": "x"}}\n{"type": "what"}\n')
    with pytest.raises(StoreError, match=r"bad.jsonl:1: not a run file line"):
        read_run_file(bad)
    no_header = tmp_path / "nohead.jsonl"
    no_header.write_text("\n")
    with pytest.raises(StoreError, match="no run header"):
        read_run_file(no_header)


def test_unknown_run_on_finish_and_unwritable_store(tmp_path, store):
    with pytest.raises(StoreError, match="no run 'nope'"):
        store.finish_run("nope")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create the store's folder"):
        RunStore(blocker / "sub" / "rung.db")


def test_any_sqlalchemy_url(tmp_path):
    s = RunStore(f"sqlite:///{tmp_path / 'team.db'}")
    run = s.create_run(info())
    assert s.get_run(run.id).info.candidate == "L0"
    s.close()


def test_bad_urls_are_store_errors_without_the_password():
    with pytest.raises(StoreError) as e:
        RunStore("postgresql+nodriver://user:s3cret@127.0.0.1:1/runs")
    assert "s3cret" not in str(e.value) and "cannot open the run store" in str(e.value)
