"""The `judge` scorer: an LLM grades the answer against a rubric.

Suite parameters: `rubric` (required), `name` (default "task_success"), `scale` ("pass/fail",
the default, or "1-5"), `pass_at` (1-5 scale: the lowest score counted as passed in details,
default 4), `max_new_tokens` (default 200).

The judge is ScoreContext.judge, any rung Model (the runner wraps it in the response cache);
it is called with temperature 0. The prompt holds the question, the reference when the case has
one, the answer and the rubric, and asks for a last line "VERDICT: PASS|FAIL" (or "SCORE: n").
`parse_verdict` accepts much more than that, because small judges drift from the format: a JSON
object ({"verdict": "pass"}, {"score": 4}), a labelled line anywhere ("Verdict: **Fail**",
"score = 4/5", "Rating: 4 out of 5"; the last one wins), or a bare answer ("PASS", "Yes.", "4").

Values: pass/fail -> 1.0 / 0.0; 1-5 -> (score - 1) / 4 with details["score"] the raw score.
No judge configured, a judge error (exception or an error completion) or a reply that does not
parse -> "not measured" with the reason; never a guess.
`score_batch` sends every case of a batch to the judge in one generate call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rung.core import Answer, Case, Message, Score
from rung.errors import ScorerError
from rung.evals.scorers.base import ScoreContext, register
from rung.evals.scorers.success import number_param
from rung.models.base import GenerationParams, GenRequest, ProgressCallback
from rung.text.jsonx import JSONExtractError, extract_json

NO_JUDGE = "no judge model configured"
_SCALES = {"pass/fail": "pass/fail", "pass_fail": "pass/fail", "pass-fail": "pass/fail", "binary": "pass/fail",
           "1-5": "1-5", "1..5": "1-5", "likert": "1-5"}
_PASS = {"pass", "passed", "passes", "yes", "correct", "true", "acceptable"}
_FAIL = {"fail", "failed", "fails", "no", "incorrect", "false", "unacceptable"}
_WORDS = "|".join(sorted(_PASS | _FAIL, key=len, reverse=True))
_DECOR = r"[\s*_`\"'\[(]*"
_LABELLED = re.compile(
    rf"\b(?:final\s+)?(?:verdict|result|decision|judge?ment|assessment|answer|grade)\s*(?:is\s*)?[:=\-\u2013]?"
    rf"{_DECOR}({_WORDS})\b", re.IGNORECASE)
_SCORED = re.compile(
    rf"\b(?:score|rating|grade)\s*(?:is|of)?\s*[:=\-\u2013]?{_DECOR}(\d+(?:\.\d+)?)"
    r"(?:\s*(?:/|out\s+of)\s*(\d+))?", re.IGNORECASE)
_FRACTION = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*(?:/|out\s+of)\s*(\d+)\b", re.IGNORECASE)
_BARE_WORD = re.compile(rf"^{_DECOR}({_WORDS})\b", re.IGNORECASE)
_BARE_NUMBER = re.compile(r"^\W*(\d+(?:\.\d+)?)\W*$")


@dataclass(frozen=True)
class Verdict:
    """A parsed judge reply: value in [0, 1]; score is the raw 1-5 score on that scale."""

    value: float
    passed: bool
    score: float | None = None
    form: str = ""  # which form was recognised: json, labelled, score, fraction, bare


def normalize_scale(scale: str) -> str:
    key = str(scale).strip().lower().replace(" ", "")
    if key not in _SCALES:
        raise ScorerError(f"judge: scale {scale!r} is not one of 'pass/fail', '1-5'")
    return _SCALES[key]


def _from_word(word: str) -> bool | None:
    w = word.strip().lower()
    return True if w in _PASS else False if w in _FAIL else None


def _from_number(num: float, out_of: float | None, scale: str, pass_at: float) -> Verdict | None:
    if scale == "pass/fail":
        if out_of not in (None, 1) or num not in (0, 1):
            return None
        return Verdict(float(num), bool(num))
    if out_of not in (None, 5) or not 1 <= num <= 5:
        return None
    return Verdict((num - 1) / 4, num >= pass_at, score=num)


def _from_json_value(value: Any, scale: str, pass_at: float) -> Verdict | None:
    if isinstance(value, bool):
        return Verdict(1.0 if value else 0.0, value) if scale == "pass/fail" else None
    if isinstance(value, (int, float)):
        return _from_number(float(value), None, scale, pass_at)
    if isinstance(value, str):
        word = _from_word(value)
        if word is not None:
            return Verdict(1.0 if word else 0.0, word) if scale == "pass/fail" else None
        m = _FRACTION.search(value) or _BARE_NUMBER.match(value)
        if m:
            out_of = float(m.group(2)) if m.re is _FRACTION else None
            return _from_number(float(m.group(1)), out_of, scale, pass_at)
    return None


def parse_verdict(text: str, scale: str = "pass/fail", pass_at: float = 4) -> Verdict | None:
    """The verdict in a judge's reply (see the module doc), or None when there is none."""
    scale = normalize_scale(scale)
    t = (text or "").strip()
    if not t:
        return None
    if "{" in t:
        try:
            obj = extract_json(t)
        except JSONExtractError:
            obj = None
        if isinstance(obj, dict):
            lowered = {str(k).lower(): v for k, v in obj.items()}
            for key in ("verdict", "pass", "passed", "result", "decision", "correct", "score", "rating", "grade"):
                if key in lowered:
                    v = _from_json_value(lowered[key], scale, pass_at)
                    if v is not None:
                        return Verdict(v.value, v.passed, v.score, "json")
    if scale == "pass/fail":
        labelled = _LABELLED.findall(t)
        if labelled:
            ok = _from_word(labelled[-1])
            return Verdict(1.0 if ok else 0.0, bool(ok), form="labelled")
    for m in reversed(list(_SCORED.finditer(t))):
        v = _from_number(float(m.group(1)), float(m.group(2)) if m.group(2) else None, scale, pass_at)
        if v is not None:
            return Verdict(v.value, v.passed, v.score, "score")
    if scale == "1-5":
        for m in reversed(list(_FRACTION.finditer(t))):
            v = _from_number(float(m.group(1)), float(m.group(2)), scale, pass_at)
            if v is not None:
                return Verdict(v.value, v.passed, v.score, "fraction")
    first_line = t.splitlines()[0]
    if scale == "pass/fail":
        m = _BARE_WORD.match(first_line)
        if m:
            ok = _from_word(m.group(1))
            return Verdict(1.0 if ok else 0.0, bool(ok), form="bare")
    m = _BARE_NUMBER.match(first_line)
    if m and len(t.splitlines()) == 1:
        v = _from_number(float(m.group(1)), None, scale, pass_at)
        if v is not None:
            return Verdict(v.value, v.passed, v.score, "bare")
    return None


# ---------------------------------------------------------------- prompting


@dataclass
class JudgeReply:
    text: str | None  # None when the call failed
    error: str | None = None
    truncated: bool = False


def ask_judge(judge: Any, conversations: Sequence[list[Message]], max_new_tokens: int,
              progress: ProgressCallback | None = None) -> list[JudgeReply]:
    """One greedy generate call for all conversations; failures become JudgeReply.error."""
    params = GenerationParams(max_new_tokens=max_new_tokens, temperature=0.0)
    requests = [GenRequest.chat(list(c), params) for c in conversations]
    try:
        completions = judge.generate(requests, progress=progress)
    except Exception as e:  # noqa: BLE001 - a failing judge makes scores "not measured", not a crash
        reason = f"judge failed: {type(e).__name__}: {e}".splitlines()[0]
        return [JudgeReply(None, reason) for _ in requests]
    if len(completions) != len(requests):
        return [JudgeReply(None, f"judge returned {len(completions)} completions for {len(requests)} requests")
                for _ in requests]
    out = []
    for c in completions:
        if c.error or c.finish_reason == "error":
            out.append(JudgeReply(None, f"judge error: {c.error or 'unknown error'}".splitlines()[0]))
        else:
            out.append(JudgeReply(c.text, truncated=c.finish_reason == "length"))
    return out


def _block(title: str, body: str) -> str:
    return f"{title}:\n<<<\n{body.strip()}\n>>>"


def judge_messages(case: Case, answer: Answer, rubric: str, scale: str) -> list[Message]:
    """The judge's conversation for one answer."""
    system = ("You are an impartial, strict grader. You judge one answer of an AI assistant "
              "against a rubric and reply in the exact format you are asked for.")
    parts = [_block("Question", case.question)]
    if case.reference:
        parts.append(_block("Reference answer (what a good answer says)", case.reference))
    parts.append(_block("Answer to grade", answer.text or "(empty answer)"))
    parts.append(_block("Rubric", rubric))
    if normalize_scale(scale) == "pass/fail":
        parts.append("Write one short sentence of reasoning. Then write a last line that is exactly "
                     "VERDICT: PASS or VERDICT: FAIL.")
    else:
        parts.append("Write one short sentence of reasoning. Then write a last line that is exactly "
                     "SCORE: n, where n is a whole number from 1 (fails the rubric) to 5 (fully meets it).")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


# ---------------------------------------------------------------- scorer


@register("judge")
@dataclass
class JudgeScorer:
    """task_success (or `name`) from an LLM judge's verdict on the rubric."""

    rubric: str
    name: str = "task_success"
    scale: str = "pass/fail"
    pass_at: float = 4
    max_new_tokens: int = 200
    higher_is_better: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.rubric, str) or not self.rubric.strip():
            raise ScorerError("judge: parameter rubric must be a non-empty string")
        self.scale = normalize_scale(self.scale)
        self.pass_at = number_param(self.pass_at, "judge: pass_at")
        if not 1 <= self.pass_at <= 5:
            raise ScorerError(f"judge: pass_at {self.pass_at!r} is not between 1 and 5")
        self.max_new_tokens = int(number_param(self.max_new_tokens, "judge: max_new_tokens"))
        if self.max_new_tokens < 1:
            raise ScorerError(f"judge: max_new_tokens {self.max_new_tokens!r} must be at least 1")

    def score(self, case: Case, answer: Answer, ctx: ScoreContext) -> list[Score]:
        return self.score_batch([case], [answer], ctx)[0]

    def score_batch(self, cases: Sequence[Case], answers: Sequence[Answer], ctx: ScoreContext,
                    progress: ProgressCallback | None = None) -> list[list[Score]]:
        """Scores for many answers with a single judge.generate call."""
        if ctx.judge is None:
            return [[Score.not_measured(self.name, NO_JUDGE, self.higher_is_better)] for _ in cases]
        convs = [judge_messages(c, a, self.rubric, self.scale) for c, a in zip(cases, answers)]
        replies = ask_judge(ctx.judge, convs, self.max_new_tokens, progress)
        return [[self._to_score(r, ctx)] for r in replies]

    def _to_score(self, reply: JudgeReply, ctx: ScoreContext) -> Score:
        if reply.text is None:
            return Score.not_measured(self.name, reply.error or "judge gave no reply", self.higher_is_better)
        verdict = parse_verdict(reply.text, self.scale, self.pass_at)
        details: dict[str, Any] = {"method": "judge", "judge": ctx.judge_id, "scale": self.scale,
                                   "reply": reply.text[:1000]}
        if verdict is None:
            why = " (the judge hit max_new_tokens)" if reply.truncated else ""
            s = Score.not_measured(self.name, f"unparsable judge verdict{why}: {reply.text.strip()[:80]!r}",
                                   self.higher_is_better)
            s.details = details
            return s
        details.update({"passed": verdict.passed, "form": verdict.form})
        if verdict.score is not None:
            details["score"] = verdict.score
        reason = "" if verdict.passed else f"judge: {_last_line(reply.text)[:120]}"
        return Score(self.name, verdict.value, self.higher_is_better, reason=reason, details=details)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[0] if len(lines) == 1 else " / ".join(lines[-2:])
