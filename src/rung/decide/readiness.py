"""Evaluation readiness, measured by rung: can this suite tell a good candidate from a bad one?

"If you can't evaluate it, you can't ship it." The suite must have enough cases per tag
(`constraints.min_cases_per_tag`), cases that say what a good answer is, and scorers that measure
the targets the decision uses: task success, hallucination (groundedness) and safety. Refusal
labels (`should_refuse`) and retrieval sources are recommended: without them over-refusal and
retrieval misses go unseen, which the report says with counts. When runs exist, a target metric
that no run measured (every case "not measured") is a blocking gap too.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rung.config import Constraints
    from rung.core import Case
    from rung.decide.evidence import Evidence

SUCCESS_SCORERS = frozenset({"exact", "contains", "regex", "json_match", "python", "judge"})
# target metric -> (scorer types that measure it, what to add)
REQUIRED_METRICS: dict[str, tuple[frozenset[str], str]] = {
    "task_success": (SUCCESS_SCORERS, "a task-success scorer (contains, exact, regex, json_match, "
                                      "python or judge)"),
    "hallucination": (frozenset({"groundedness"}), "the groundedness scorer"),
    "safety_violation": (frozenset({"safety"}), "the safety scorer"),
}
_EXPECTATION_KEYS = ("must_include", "any_of", "expected", "pattern", "patterns")


@dataclass
class TagCount:
    tag: str
    n: int
    needed: int
    checked: bool = True  # False: the tag is exempt (constraints.readiness_exempt_tags)

    @property
    def short_by(self) -> int:
        return max(self.needed - self.n, 0)


@dataclass
class Gap:
    """Something the suite lacks. blocking gaps stop the decision; the others are advice."""

    what: str  # short id: cases-per-tag, references, scorer:hallucination, refusal-labels, ...
    message: str  # a sentence with counts
    count: int = 0  # how many cases (or scorers) are missing
    blocking: bool = True


@dataclass
class Readiness:
    suite: str
    n_cases: int
    tags: list[TagCount] = field(default_factory=list)
    with_expectation: int = 0  # cases with a reference, must_include, expected, ... (or a judge)
    refusal_labels: tuple[int, int] = (0, 0)  # (should_refuse true, false)
    with_sources: int = 0
    scorers: list[str] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not any(g.blocking for g in self.gaps)

    @property
    def blocking(self) -> list[Gap]:
        return [g for g in self.gaps if g.blocking]


def assess_readiness(suite: str, cases: Sequence[Case], scorer_types: Iterable[str],
                     constraints: Constraints, evidence: Sequence[Evidence] = ()) -> Readiness:
    """Readiness of `cases` scored by `scorer_types` (as the runner builds them) for the targets."""
    from rung.evals.runner import implied_scorers

    need = constraints.min_cases_per_tag
    types = list(dict.fromkeys(scorer_types))
    cases = list(cases)
    types += implied_scorers(types, cases)  # as the runner adds them
    r = Readiness(suite=suite, n_cases=len(cases), scorers=types)
    if not cases:
        r.gaps.append(Gap("cases", f"suite {suite!r} has no cases: write at least {need} per tag",
                          need))
        return r

    counts: dict[str, int] = {}
    for c in cases:
        for t in c.tags:
            counts[t] = counts.get(t, 0) + 1
    for tag, n in sorted(counts.items(), key=lambda kv: (kv[1], kv[0])):
        exempt = any(fnmatch.fnmatchcase(tag, p) for p in constraints.readiness_exempt_tags)
        r.tags.append(TagCount(tag, n, need, checked=not exempt))
    short = [t for t in r.tags if t.checked and t.short_by]
    if short:
        listed = ", ".join(f"{t.tag!r} {t.n}/{t.needed} (+{t.short_by})" for t in short[:12])
        more = f" and {len(short) - 12} more" if len(short) > 12 else ""
        r.gaps.append(Gap("cases-per-tag",
                          f"{len(short)} tag(s) below {need} cases: {listed}{more}; add "
                          f"{sum(t.short_by for t in short)} cases (or exempt the tags in "
                          f"constraints.readiness_exempt_tags)", sum(t.short_by for t in short)))
    if not counts and len(cases) < need:
        r.gaps.append(Gap("cases", f"{len(cases)} untagged cases, need at least {need}",
                          need - len(cases)))

    judge = "judge" in types
    r.with_expectation = sum(1 for c in cases if judge or c.reference is not None
                             or any(k in (c.metadata or {}) for k in _EXPECTATION_KEYS))
    missing_ref = len(cases) - r.with_expectation
    if r.with_expectation < need:
        r.gaps.append(Gap("references", f"only {r.with_expectation} of {len(cases)} cases say what "
                          f"a good answer is (reference or metadata.must_include); need {need}",
                          need - r.with_expectation))
    elif missing_ref:
        r.gaps.append(Gap("references", f"{missing_ref} of {len(cases)} cases have no reference: "
                          "task success is not measured on them", missing_ref, blocking=False))

    for metric, (scorers, what) in REQUIRED_METRICS.items():
        if not scorers & set(types):
            r.gaps.append(Gap(f"scorer:{metric}", f"no scorer measures {metric}: add {what} to the "
                              f"suite's scorers", 1))
        elif evidence and all(_measured(e, metric) == 0 for e in evidence):
            nm = sum(_not_measured(e, metric) for e in evidence)
            r.gaps.append(Gap(f"measured:{metric}", f"{metric} was measured on no case of any run "
                              f"({nm} case-results not measured): fix the scorer's setup "
                              "(a judge model? sources?) and re-run", nm))

    yes = sum(1 for c in cases if c.should_refuse is True)
    no = sum(1 for c in cases if c.should_refuse is False)
    r.refusal_labels = (yes, no)
    if yes < need:
        r.gaps.append(Gap("refusal-labels", f"{yes} cases labelled should_refuse: true (need {need} "
                          f"to measure refusal correctness; {no} labelled false)", need - yes,
                          blocking=False))
    r.with_sources = sum(1 for c in cases if c.sources)
    if "retrieval" not in types:
        r.gaps.append(Gap("scorer:retrieval", "no retrieval scorer: context_recall and hit_at_k "
                          "will not show whether hallucinations come from retrieval misses", 1,
                          blocking=False))
    elif r.with_sources < need:
        r.gaps.append(Gap("sources", f"{r.with_sources} cases name their sources (need {need} for "
                          "retrieval metrics)", need - r.with_sources, blocking=False))
    return r


def _measured(e: Evidence, metric: str) -> int:
    m = e.summary.metrics.get(metric)
    return m.n if m is not None else 0


def _not_measured(e: Evidence, metric: str) -> int:
    m = e.summary.metrics.get(metric)
    return m.not_measured if m is not None else 0
