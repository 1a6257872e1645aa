"""The `retrieval` scorer: context precision / recall and hit@k against a case's sources."""

from __future__ import annotations

import pytest

from rung.core import Answer, Case, RetrievedChunk, Score, Trace
from rung.errors import ScorerError
from rung.evals.scorers.base import ScoreContext
from rung.evals.scorers.retrieval import RetrievalScorer


def answer_with(*doc_ids: str) -> Answer:
    chunks = [RetrievedChunk(id=f"{d}#{i}", doc_id=d, text=f"text of {d}") for i, d in enumerate(doc_ids)]
    return Answer(text="an answer", trace=Trace(retrieved=chunks))


def scores(case: Case, answer: Answer, **params) -> dict[str, Score]:
    out = RetrievalScorer(**params).score(case, answer, ScoreContext())
    return {s.name: s for s in out}


def test_precision_recall_and_hit() -> None:
    case = Case(id="c", input="q", sources=["refunds-eu", "shipping-eu"])
    got = scores(case, answer_with("refunds-eu", "forum", "refunds-eu", "pricing"))
    assert got["context_precision"].value == pytest.approx(2 / 4)
    assert got["context_recall"].value == pytest.approx(1 / 2)
    assert got["hit_at_k"].value == 1.0
    assert got["context_recall"].details["missing"] == ["shipping-eu"]
    assert all(s.higher_is_better for s in got.values())


def test_all_sources_found() -> None:
    case = Case(id="c", input="q", sources=["a", "b"])
    got = scores(case, answer_with("b", "a"))
    assert (got["context_precision"].value, got["context_recall"].value, got["hit_at_k"].value) == (1.0, 1.0, 1.0)


def test_no_source_retrieved_is_zero_not_missing() -> None:
    got = scores(Case(id="c", input="q", sources=["a"]), answer_with("x", "y"))
    assert got["context_precision"].value == 0.0
    assert got["context_recall"].value == 0.0
    assert got["hit_at_k"].value == 0.0


def test_case_without_sources_is_not_measured() -> None:
    for answer in (answer_with("a"), Answer(text="no retrieval")):
        got = scores(Case(id="c", input="q"), answer)
        assert all(not s.measured for s in got.values())
        assert "no sources" in got["context_recall"].reason


def test_sources_but_nothing_retrieved() -> None:
    from rung.core import Trace

    searched = Answer(text="retrieval found nothing", trace=Trace(events=[{"type": "retrieval", "chunks": 0}]))
    got = scores(Case(id="c", input="q", sources=["a"]), searched)
    assert not got["context_precision"].measured
    assert got["context_recall"].value == 0.0
    assert got["hit_at_k"].value == 0.0


def test_candidate_without_retrieval_is_not_measured() -> None:
    got = scores(Case(id="c", input="q", sources=["a"]), Answer(text="no retrieval"))
    assert all(not s.measured for s in got.values())


def test_k_counts_only_the_first_chunks() -> None:
    case = Case(id="c", input="q", sources=["a"])
    answer = answer_with("x", "y", "a")
    assert scores(case, answer)["hit_at_k"].value == 1.0
    got = scores(case, answer, k=2)
    assert got["hit_at_k"].value == 0.0
    assert got["context_precision"].value == 0.0


def test_registered_and_bad_k() -> None:
    import rung.evals.scorers.retrieval  # noqa: F401  (registers itself, also when not yet in the built-in list)
    from rung.evals.scorers import build_scorer

    assert isinstance(build_scorer("retrieval", k=3), RetrievalScorer)
    with pytest.raises(ScorerError, match="k must be a positive integer"):
        RetrievalScorer(k=0)
