"""The LLM-judge scorer: prompt, verdict parsing, not-measured paths, batching and caching.

The judge is a real object implementing the rung Model protocol that answers with scripted
verdict strings: a test stand-in for a judge endpoint, so every reply format is exercised
deterministically.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rung.core import Answer, Case
from rung.errors import EndpointError, ScorerError
from rung.evals.scorers import build_scorer
from rung.evals.scorers.base import ScoreContext
from rung.evals.scorers.judge import NO_JUDGE, parse_verdict
from rung.models.base import Completion, GenRequest, ProgressCallback
from rung.models.cache import CachedModel, ResponseCache


class ScriptedJudge:
    """Model protocol; reply(request) -> text, or raises; records every request it gets."""

    def __init__(self, reply: Callable[[GenRequest], str] | str, error: str | None = None) -> None:
        self.reply = reply if callable(reply) else (lambda _r: reply)
        self.error = error
        self.requests: list[GenRequest] = []
        self.calls: list[int] = []  # batch size of each generate call

    @property
    def model_id(self) -> str:
        return "scripted-judge"

    def fingerprint(self, adapter: str | None = None) -> str:
        return "scripted-judge-v1"

    def adapters(self) -> list[str]:
        return []

    def generate(self, requests: list[GenRequest], progress: ProgressCallback | None = None) -> list[Completion]:
        self.requests.extend(requests)
        self.calls.append(len(requests))
        out = []
        for i, r in enumerate(requests):
            text = self.reply(r)
            out.append(Completion(text=text, tokens_in=10, tokens_out=5, ttft_s=0.0, total_s=0.0,
                                  model_id=self.model_id, finish_reason="error" if self.error else "stop",
                                  error=self.error))
            if progress:
                progress(i + 1, len(requests))
        return out


CASE = Case(id="q1", input="How long is the return window?", reference="30 days")
RUBRIC = "The answer states the 30-day return window."


def judge_score(reply, scale="pass/fail", error=None, **params):
    judge = ScriptedJudge(reply, error)
    ctx = ScoreContext(judge=judge, judge_id=judge.model_id)
    (s,) = build_scorer("judge", rubric=RUBRIC, scale=scale, **params).score(CASE, Answer(text="30 days."), ctx)
    return s, judge


@pytest.mark.parametrize("reply, value", [
    ("The answer gives the window.\nVERDICT: PASS", 1.0),
    ("It says 14 days, which is wrong.\nVERDICT: FAIL", 0.0),
    ("verdict:pass", 1.0),
    ("Verdict: **Fail**", 0.0),
    ("  Final verdict - passed.", 1.0),
    ('{"verdict": "PASS", "reason": "ok"}', 1.0),
    ('```json\n{"pass": false}\n```', 0.0),
    ('{"score": 1}', 1.0),
    ("PASS", 1.0),
    ("Yes.", 1.0),
    ("no", 0.0),
    ("Correct", 1.0),
    ("I first thought VERDICT: FAIL but on reflection\nVERDICT: PASS", 1.0),
    ("Score: 0", 0.0),
])
def test_pass_fail_formats(reply, value):
    s, _ = judge_score(reply)
    assert s.value == value, s
    assert s.name == "task_success" and s.details["method"] == "judge" and s.details["judge"] == "scripted-judge"


@pytest.mark.parametrize("reply, raw", [
    ("Good coverage.\nSCORE: 4", 4),
    ("score: 4/5", 4),
    ("Rating = 2 out of 5", 2),
    ('{"rating": 5}', 5),
    ('{"score": "3/5"}', 3),
    ("I would give this 1/5.", 1),
    ("5", 5),
])
def test_one_to_five_formats(reply, raw):
    s, _ = judge_score(reply, scale="1-5")
    assert s.details["score"] == raw
    assert s.value == pytest.approx((raw - 1) / 4)
    assert s.details["passed"] is (raw >= 4)


@pytest.mark.parametrize("reply, scale", [
    ("I am not sure what to say.", "pass/fail"),
    ("", "pass/fail"),
    ("Score: 4/5", "pass/fail"),  # a 1-5 score for a pass/fail rubric: not guessed
    ("SCORE: 7", "1-5"),
    ("score: 8/10", "1-5"),
    ("VERDICT: PASS", "1-5"),
    ("{\"verdict\": \"maybe\"}", "pass/fail"),
])
def test_unparsable_is_not_measured(reply, scale):
    s, _ = judge_score(reply, scale=scale)
    assert s.value is None
    assert s.reason.startswith("unparsable judge verdict")
    assert s.details["reply"] == reply


def test_judge_exception_and_error_completion_are_not_measured():
    def boom(_r: GenRequest) -> str:
        raise EndpointError("http://127.0.0.1:9/v1: connection refused")

    s, _ = judge_score(boom)
    assert s.value is None and "judge failed: EndpointError" in s.reason and "connection refused" in s.reason
    s, _ = judge_score("", error="rate limited")
    assert s.value is None and s.reason == "judge error: rate limited"


def test_no_judge_configured():
    (s,) = build_scorer("judge", rubric=RUBRIC).score(CASE, Answer(text="x"), ScoreContext())
    assert s.value is None and s.reason == NO_JUDGE


def test_prompt_contents_and_greedy_decoding():
    s, judge = judge_score("VERDICT: PASS", name="policy_ok", max_new_tokens=50)
    assert s.name == "policy_ok"
    (req,) = judge.requests
    assert req.params.temperature == 0.0 and req.params.max_new_tokens == 50
    prompt = req.messages[-1]["content"]
    for part in (CASE.question, "30 days", "30 days.", RUBRIC, "VERDICT: PASS or VERDICT: FAIL"):
        assert part in prompt
    no_ref = Case(id="q2", input="Hi?")
    build_scorer("judge", rubric=RUBRIC, scale="1-5").score(no_ref, Answer(text="hello"), ScoreContext(judge=judge))
    last = judge.requests[-1].messages[-1]["content"]
    assert "Reference answer" not in last and "SCORE: n" in last


def test_batch_is_one_generate_call_and_reports_progress():
    def grade(r: GenRequest) -> str:
        graded = r.messages[-1]["content"].split("Answer to grade:")[1].split("Rubric:")[0]
        return "VERDICT: PASS" if "30" in graded else "VERDICT: FAIL"

    judge = ScriptedJudge(grade)
    seen: list[tuple[int, int]] = []
    scorer = build_scorer("judge", rubric=RUBRIC)
    out = scorer.score_batch([CASE] * 3, [Answer(text="30 days"), Answer(text="14 days"), Answer(text="30")],
                             ScoreContext(judge=judge), progress=lambda d, t: seen.append((d, t)))
    assert [s[0].value for s in out] == [1.0, 0.0, 1.0]
    assert judge.calls == [3] and seen[-1] == (3, 3)


def test_judge_calls_go_through_the_response_cache(tmp_path):
    inner = ScriptedJudge("VERDICT: PASS")
    with ResponseCache(tmp_path / "cache.db") as cache:
        ctx = ScoreContext(judge=CachedModel(inner, cache))
        scorer = build_scorer("judge", rubric=RUBRIC)
        first = scorer.score(CASE, Answer(text="30 days"), ctx)[0]
        second = scorer.score(CASE, Answer(text="30 days"), ctx)[0]
    assert first.value == second.value == 1.0
    assert len(inner.requests) == 1  # the second verdict came from the SQLite cache


def test_bad_parameters():
    with pytest.raises(ScorerError, match="rubric"):
        build_scorer("judge", rubric="  ")
    with pytest.raises(ScorerError, match="scale"):
        build_scorer("judge", rubric=RUBRIC, scale="1-10")
    with pytest.raises(ScorerError, match="bad parameters"):
        build_scorer("judge")


def test_parse_verdict_direct():
    assert parse_verdict("VERDICT: pass").passed is True
    assert parse_verdict("answer: incorrect").value == 0.0
    assert parse_verdict("Nothing here") is None
