"""Task-success scorers: exact, contains, regex, json_match, python.

Each emits one Score named "task_success" (override with the `name` parameter when a suite uses
two of them) with details["method"] naming the scorer. A case that gives the scorer nothing to
compare with (no reference, no key facts) is "not measured", never a fail.

- exact: the answer equals the reference (normalised by default: case, whitespace,
  punctuation and number formatting do not matter; see rung.text.textnorm).
- contains: key facts occur in the answer. Facts come from, first match wins:
  case.metadata["must_include"] (all required) and/or case.metadata["any_of"] (one required);
  the `all_of` / `any_of` parameters; the case's reference (required whole).
- regex: every `pattern` matches (re.search) and no `must_not_match` pattern does (the
  parameter's and case.metadata["must_not_match"]). With `from_reference: true` the case's
  reference is a pattern too. Case-insensitive unless `ignore_case: false`.
- json_match: the answer's JSON (answer.parsed when set, else rung.text.jsonx.extract_json of
  the text) compared field by field with the expected JSON (case.metadata["expected"], else
  case.reference parsed as JSON). value = share of fields matching; details["passed"] says
  whether it reaches `threshold` (default 1.0).
- python: `function: "module:fn"`, fn(case, answer) -> bool | float | Score | list[Score] | None.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rung.core import Answer, Case, Score
from rung.errors import ScorerError
from rung.evals.scorers.base import ScoreContext, register
from rung.text import textnorm
from rung.text.jsonx import JSONExtractError, extract_json, to_jsonable

TASK_SUCCESS = "task_success"
_MODES = ("exact", "contains")


def _str_list(value: Any, what: str) -> list[str]:
    """A string or a list of strings as a list; anything else is a ScorerError naming `what`."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ScorerError(f"{what}: expected a string or a list of strings, got {value!r}")


def number_param(value: Any, what: str) -> float:
    """A numeric scorer parameter as float; ScorerError naming `what` otherwise."""
    if isinstance(value, bool):
        raise ScorerError(f"{what}: expected a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ScorerError(f"{what}: expected a number, got {value!r}") from None


def _where(case: Case) -> str:
    return f"{case.file}:{case.line}: case {case.id!r}" if case.file else f"case {case.id!r}"


def _short(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(i) for i in items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


# ---------------------------------------------------------------- exact


@register("exact")
@dataclass
class ExactScorer:
    """task_success = 1 when the answer equals the reference (normalised unless normalize=False)."""

    name: str = TASK_SUCCESS
    normalize: bool = True

    def score(self, case: Case, answer: Answer, ctx: ScoreContext) -> list[Score]:
        if case.reference is None:
            return [Score.not_measured(self.name, "case has no reference")]
        if self.normalize:
            got, want = textnorm.normalize(answer.text), textnorm.normalize(case.reference)
        else:
            got, want = answer.text.strip(), case.reference.strip()
        ok = got == want
        reason = "" if ok else f"expected {case.reference[:80]!r}, got {answer.text[:80]!r}"
        return [Score(self.name, 1.0 if ok else 0.0, reason=reason,
                      details={"method": "exact", "normalized": self.normalize})]


# ---------------------------------------------------------------- contains


@register("contains")
@dataclass
class ContainsScorer:
    """task_success = 1 when every required fact (and one of the alternatives) is in the answer."""

    name: str = TASK_SUCCESS
    all_of: list[str] | str | None = None
    any_of: list[str] | str | None = None

    def __post_init__(self) -> None:
        self.all_of = _str_list(self.all_of, "contains: parameter all_of")
        self.any_of = _str_list(self.any_of, "contains: parameter any_of")

    def _facts(self, case: Case) -> tuple[list[str], list[str], str] | None:
        md = case.metadata or {}
        if "must_include" in md or "any_of" in md:
            return (_str_list(md.get("must_include"), f"{_where(case)}: metadata.must_include"),
                    _str_list(md.get("any_of"), f"{_where(case)}: metadata.any_of"), "case metadata")
        if self.all_of or self.any_of:
            return list(self.all_of), list(self.any_of), "scorer parameters"  # type: ignore[arg-type]
        if case.reference is not None:
            return [case.reference], [], "reference"
        return None

    def score(self, case: Case, answer: Answer, ctx: ScoreContext) -> list[Score]:
        try:
            facts = self._facts(case)
        except ScorerError as e:
            return [Score.not_measured(self.name, str(e))]
        if facts is None or not (facts[0] or facts[1]):
            return [Score.not_measured(self.name, "case has no reference, must_include or any_of")]
        all_of, any_of, source = facts
        missing = [f for f in all_of if not textnorm.contains(answer.text, f)]
        found_any = [f for f in any_of if textnorm.contains(answer.text, f)]
        any_ok = not any_of or bool(found_any)
        ok = not missing and any_ok
        reasons = []
        if missing:
            reasons.append(f"missing: {_short(missing)}")
        if not any_ok:
            reasons.append(f"none of: {_short(any_of)}")
        details = {"method": "contains", "facts_from": source, "missing": missing,
                   "required": all_of, "any_of": any_of, "any_of_found": found_any}
        return [Score(self.name, 1.0 if ok else 0.0, reason="; ".join(reasons), details=details)]


# ---------------------------------------------------------------- regex


def _compile(pattern: str, flags: int, what: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, flags)
    except re.error as e:
        raise ScorerError(f"{what}: invalid regular expression {pattern!r}: {e}") from None


@register("regex")
@dataclass
class RegexScorer:
    """task_success = 1 when all patterns match and no must_not_match pattern does."""

    name: str = TASK_SUCCESS
    pattern: list[str] | str | None = None
    must_not_match: list[str] | str | None = None
    from_reference: bool = False
    ignore_case: bool = True
    _flags: int = field(default=0, init=False, repr=False)
    _must: list[re.Pattern[str]] = field(default_factory=list, init=False, repr=False)
    _must_not: list[re.Pattern[str]] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self._flags = re.IGNORECASE if self.ignore_case else 0
        self._must = [_compile(p, self._flags, "regex: pattern")
                      for p in _str_list(self.pattern, "regex: parameter pattern")]
        self._must_not = [_compile(p, self._flags, "regex: must_not_match")
                          for p in _str_list(self.must_not_match, "regex: parameter must_not_match")]

    def score(self, case: Case, answer: Answer, ctx: ScoreContext) -> list[Score]:
        must, must_not = list(self._must), list(self._must_not)
        try:
            if self.from_reference and case.reference is not None:
                must.append(_compile(case.reference, self._flags, f"{_where(case)}: reference"))
            extra = _str_list((case.metadata or {}).get("must_not_match"),
                              f"{_where(case)}: metadata.must_not_match")
            must_not += [_compile(p, self._flags, f"{_where(case)}: metadata.must_not_match") for p in extra]
        except ScorerError as e:
            return [Score.not_measured(self.name, str(e))]
        if not must and not must_not:
            return [Score.not_measured(self.name, "no pattern for this case (reference is empty)")]
        text = answer.text
        unmatched = [p.pattern for p in must if not p.search(text)]
        forbidden = [p.pattern for p in must_not if p.search(text)]
        ok = not unmatched and not forbidden
        reasons = []
        if unmatched:
            reasons.append(f"no match for {_short(unmatched)}")
        if forbidden:
            reasons.append(f"forbidden pattern matched: {_short(forbidden)}")
        details = {"method": "regex", "unmatched": unmatched, "forbidden_matched": forbidden,
                   "patterns": [p.pattern for p in must], "must_not_match": [p.pattern for p in must_not]}
        return [Score(self.name, 1.0 if ok else 0.0, reason="; ".join(reasons), details=details)]


# ---------------------------------------------------------------- json_match


_MISSING = object()


def _get_path(data: Any, path: str) -> Any:
    """data["a"]["b"][0] for "a.b.0"; _MISSING when any step is absent."""
    current = data
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.lstrip("-").isdigit() and -len(current) <= int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def values_equal(expected: Any, got: Any) -> bool:
    """Structural equality; strings compare normalised, numbers numerically, "30" == 30."""
    if _is_number(expected) and _is_number(got):
        return math.isclose(float(expected), float(got), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(expected, dict) and isinstance(got, dict):
        return expected.keys() == got.keys() and all(values_equal(v, got[k]) for k, v in expected.items())
    if isinstance(expected, list) and isinstance(got, list):
        return len(expected) == len(got) and all(values_equal(a, b) for a, b in zip(expected, got))
    if isinstance(expected, (str, int, float)) and isinstance(got, (str, int, float)) \
            and not isinstance(expected, bool) and not isinstance(got, bool):
        return textnorm.normalize(str(expected)) == textnorm.normalize(str(got))
    return bool(expected == got)


def value_contains(expected: Any, got: Any) -> bool:
    """Lists: every expected item equals some item of got; otherwise normalised text containment."""
    if isinstance(expected, list) and isinstance(got, list):
        return all(any(values_equal(e, g) for g in got) for e in expected)
    return textnorm.contains(_as_text(got), _as_text(expected))


@register("json_match")
@dataclass
class JsonMatchScorer:
    """task_success = share of expected fields whose value matches the answer's JSON."""

    name: str = TASK_SUCCESS
    fields: list[str] | dict[str, str] | None = None
    mode: str = "exact"
    threshold: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ScorerError(f"json_match: mode {self.mode!r} is not one of {', '.join(_MODES)}")
        if isinstance(self.fields, dict):
            for f, m in self.fields.items():
                if m not in _MODES:
                    raise ScorerError(f"json_match: fields.{f}: mode {m!r} is not one of {', '.join(_MODES)}")
        elif self.fields is not None:
            self.fields = _str_list(self.fields, "json_match: parameter fields")
        self.threshold = number_param(self.threshold, "json_match: threshold")
        if not 0.0 <= self.threshold <= 1.0:
            raise ScorerError(f"json_match: threshold {self.threshold!r} is not between 0 and 1")

    def _expected(self, case: Case) -> Any:
        md = case.metadata or {}
        if "expected" in md:
            return md["expected"]
        if case.reference is None:
            return _MISSING
        try:
            return extract_json(case.reference)
        except JSONExtractError as e:
            raise ScorerError(f"{_where(case)}: reference is not JSON: {e}") from None

    def _field_modes(self, expected: Any) -> dict[str, str]:
        if isinstance(self.fields, dict):
            return dict(self.fields)
        if self.fields:
            return {f: self.mode for f in self.fields}
        if isinstance(expected, dict):
            return {str(k): self.mode for k in expected}
        return {}

    def score(self, case: Case, answer: Answer, ctx: ScoreContext) -> list[Score]:
        try:
            expected = self._expected(case)
        except ScorerError as e:
            return [Score.not_measured(self.name, str(e))]
        if expected is _MISSING:
            return [Score.not_measured(self.name, "case has no reference JSON or metadata.expected")]
        base = {"method": "json_match", "threshold": self.threshold}
        if answer.parsed is not None:
            got = to_jsonable(answer.parsed)
        else:
            try:
                got = extract_json(answer.text)
            except JSONExtractError as e:
                return [Score(self.name, 0.0, reason=f"not JSON: {e}", details={**base, "passed": False})]
        modes = self._field_modes(expected)
        if not modes:  # a non-object reference: compare the whole value
            ok = values_equal(expected, got) if self.mode == "exact" else value_contains(expected, got)
            return [Score(self.name, 1.0 if ok else 0.0, reason="" if ok else "JSON value differs",
                          details={**base, "passed": ok})]
        per_field: dict[str, dict[str, Any]] = {}
        for path, mode in modes.items():
            want, have = _get_path(expected, path), _get_path(got, path)
            if want is _MISSING:
                per_field[path] = {"match": False, "mode": mode, "error": "not in the expected JSON"}
                continue
            if have is _MISSING:
                per_field[path] = {"match": False, "mode": mode, "expected": want, "error": "missing"}
                continue
            match = values_equal(want, have) if mode == "exact" else value_contains(want, have)
            per_field[path] = {"match": match, "mode": mode, "expected": want, "got": have}
        matched = sum(1 for d in per_field.values() if d["match"])
        share = matched / len(per_field)
        passed = share >= self.threshold - 1e-12
        wrong = [p for p, d in per_field.items() if not d["match"]]
        reason = "" if not wrong else f"{matched}/{len(per_field)} fields match; wrong: {_short(wrong)}"
        return [Score(self.name, share, reason=reason, details={**base, "passed": passed, "fields": per_field})]


# ---------------------------------------------------------------- python


def load_function(spec: str) -> Callable[..., Any]:
    """The callable named by "package.module:function"; ScorerError when it cannot be imported."""
    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        raise ScorerError(f"python: function {spec!r} is not of the form 'module.path:function'")
    try:
        fn = getattr(importlib.import_module(mod_name), attr)
    except ImportError as e:
        raise ScorerError(f"python: cannot import module {mod_name!r} for {spec!r}: {e}") from None
    except AttributeError:
        raise ScorerError(f"python: module {mod_name!r} has no attribute {attr!r}") from None
    if not callable(fn):
        raise ScorerError(f"python: {spec!r} is not callable")
    return fn


@register("python")
@dataclass
class PythonScorer:
    """task_success from a user function fn(case, answer)."""

    function: str
    name: str = TASK_SUCCESS
    higher_is_better: bool = True
    _fn: Callable[..., Any] = field(default=None, init=False, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self._fn = load_function(self.function)

    def score(self, case: Case, answer: Answer, ctx: ScoreContext) -> list[Score]:
        out = self._fn(case, answer)
        details = {"method": "python", "function": self.function}
        if isinstance(out, Score):
            return [out]
        if isinstance(out, list) and out and all(isinstance(s, Score) for s in out):
            return out
        if out is None:
            return [Score.not_measured(self.name, f"{self.function} returned None", self.higher_is_better)]
        if isinstance(out, bool):
            return [Score(self.name, 1.0 if out else 0.0, self.higher_is_better, details=details)]
        if _is_number(out):
            if not math.isfinite(float(out)):
                return [Score.not_measured(self.name, f"{self.function} returned {out!r}", self.higher_is_better)]
            return [Score(self.name, float(out), self.higher_is_better, details=details)]
        raise ScorerError(f"python: {self.function} returned {type(out).__name__}; "
                          "expected bool, float, Score, list of Score or None")
