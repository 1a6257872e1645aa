"""Why level 0 fails, not only that it fails: the cause, read from the runs' traces and scores.

`diagnose_run(run)` walks one run's cases and gives every failing case one cause:

- **format**: the answer fails its schema (`schema_valid` 0);
- **over-refusal**: a request that must be answered was refused (`answered_when_should` 0), by
  the model, the refusal gate or an extractive abstention (counted apart);
- **under-refusal**: a request that must be refused was answered (`refused_when_should` 0);
- for a wrong or hallucinated answer (`task_success` below 1, or `hallucination` 1):
  - **no-retrieval**: the candidate retrieves nothing, so the model answers from its weights;
  - **retrieval**: the text the answer needed was not retrieved: the facts the answer misses
    (the `contains` scorer's `missing`) are absent from the retrieved chunks, or, without
    such facts, none of the case's `sources` was retrieved (`hit_at_k` 0);
  - **ignored**: the model was given what it needed and did not use it: the missing facts are
    in the retrieved text, or a source was retrieved (`hit_at_k` 1);
  - **unexplained**: no signal to tell (no facts, no sources).

It also counts the retrieval funnel over answerable cases that name sources: how often the
retriever finds a source, and how often the answer is right when it does.

`diagnose_level0(assessments)` (pure: Evidence carries each run's `RunDiagnosis`) picks the
level-0 candidate closest to the targets (among those that retrieve, when any does), names its
dominant cause among those that explain the targets it misses (a latency or cost budget is
explained by none: the cause is then "budget") in one sentence with the numbers, compares
retrieval with no retrieval (is rag better than bare?), and gives the advice that follows from
the cause, e.g. "the retriever finds the source in 83% of answerable cases but the answer is
right in 0% of those: try a stronger base model or extractive answers, not weights".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rung.decide.targets import Assessment
    from rung.evals.types import CaseResult, RunResult

FORMAT, OVER, UNDER = "format", "over-refusal", "under-refusal"
NO_RETRIEVAL, RETRIEVAL, IGNORED, UNEXPLAINED = "no-retrieval", "retrieval", "ignored", "unexplained"
CAUSES = (RETRIEVAL, IGNORED, NO_RETRIEVAL, OVER, UNDER, FORMAT, UNEXPLAINED)
TITLES = {
    RETRIEVAL: "retrieval missed the source",
    IGNORED: "the model ignored what it was given",
    NO_RETRIEVAL: "nothing is retrieved: the model answers from its weights",
    OVER: "refused when it should answer",
    UNDER: "answered when it should refuse",
    FORMAT: "the format failed",
    UNEXPLAINED: "no signal to tell why",
}
EXAMPLES = 3  # case ids kept per cause
# a failing target -> the causes that can explain it (a budget is explained by none of them)
RELEVANT = {
    "task_success": set(CAUSES),
    "hallucination": {RETRIEVAL, IGNORED, NO_RETRIEVAL, UNEXPLAINED},
    "refusal_correct": {OVER, UNDER},
    "schema_valid": {FORMAT},
}


@dataclass
class RunDiagnosis:
    """One run's failing cases by cause, and its retrieval funnel."""

    candidate: str
    level: int
    run_id: str
    n_cases: int
    failing: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # cause -> failing cases
    examples: dict[str, list[str]] = field(default_factory=dict)  # cause -> a few case ids
    retrieves: bool = False  # the candidate retrieved for at least one case
    extractive: bool = False  # answers quoted from the sources (answer.mode: extractive)
    # retrieval funnel, over answerable cases that name sources and were measured
    with_sources: int = 0
    hit: int = 0  # a source was retrieved
    hit_right: int = 0  # ... and the answer was right (task_success 1)
    # facts check, over wrong answers whose missing facts are known
    facts_checked: int = 0
    facts_in_context: int = 0  # every missing fact was in the retrieved text
    # refusals and format
    answerable: int = 0
    over_refused: int = 0
    over_by: dict[str, int] = field(default_factory=dict)  # model | refusal gate | extractive abstention
    must_refuse: int = 0
    under_refused: int = 0
    schema_cases: int = 0
    schema_invalid: int = 0

    def share(self, cause: str) -> float:
        return self.counts.get(cause, 0) / self.failing if self.failing else 0.0

    @property
    def dominant(self) -> str | None:
        """The cause of the most failing cases (ties: the order of CAUSES)."""
        if not self.failing:
            return None
        return max(CAUSES, key=lambda c: (self.counts.get(c, 0), -CAUSES.index(c)))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "dominant": self.dominant}


def diagnose_run(run: RunResult, candidate: str | None = None, level: int | None = None) -> RunDiagnosis:
    """Every case of the run (its first epoch) with one cause when it fails."""
    first: dict[str, CaseResult] = {}
    for r in run.results:
        if r.case.id not in first or r.epoch < first[r.case.id].epoch:
            first[r.case.id] = r
    d = RunDiagnosis(candidate or run.info.candidate, run.info.level if level is None else level,
                     run.info.id, len(first))
    for r in first.values():
        if _retrieved(r):
            d.retrieves = True
        if any(e.get("type") == "extractive" for e in r.answer.trace.events):
            d.extractive = True
    for r in first.values():
        cause = _case_cause(r, d)
        if cause is not None:
            d.failing += 1
            d.counts[cause] = d.counts.get(cause, 0) + 1
            ids = d.examples.setdefault(cause, [])
            if len(ids) < EXAMPLES:
                ids.append(r.case.id)
    return d


def _value(r: CaseResult, name: str) -> float | None:
    s = r.score(name)
    return None if s is None or s.value is None else float(s.value)


def _retrieved(r: CaseResult) -> bool:
    t = r.answer.trace
    return bool(t.retrieved) or any(e.get("type") == "retrieval" for e in t.events)


def _case_cause(r: CaseResult, d: RunDiagnosis) -> str | None:
    case = r.case
    ts, hall = _value(r, "task_success"), _value(r, "hallucination")
    hit = _value(r, "hit_at_k")
    if case.should_refuse:
        d.must_refuse += 1
        if _value(r, "refused_when_should") == 0.0:
            d.under_refused += 1
            return UNDER
        return None
    schema = _value(r, "schema_valid")
    if schema is not None:
        d.schema_cases += 1
    answered = _value(r, "answered_when_should")
    if answered is not None:
        d.answerable += 1
    if hit is not None and case.sources:
        d.with_sources += 1
        if hit > 0:
            d.hit += 1
            d.hit_right += 1 if ts == 1.0 else 0
    if schema == 0.0:
        d.schema_invalid += 1
        return FORMAT
    if answered == 0.0:
        d.over_refused += 1
        by = _refused_by(r)
        d.over_by[by] = d.over_by.get(by, 0) + 1
        return OVER
    wrong = ts is not None and ts < 1.0
    if not wrong and hall != 1.0:
        return None
    if not _retrieved(r):
        return NO_RETRIEVAL if not d.retrieves else RETRIEVAL
    facts = _missing_facts(r)
    if facts:
        from rung.text.textnorm import contains

        text = "\n".join(c.text for c in r.answer.trace.retrieved)
        d.facts_checked += 1
        if all(contains(text, f) for f in facts):
            d.facts_in_context += 1
            return IGNORED
        return RETRIEVAL
    if hit is not None and case.sources:
        return IGNORED if hit > 0 else RETRIEVAL
    return UNEXPLAINED


def _missing_facts(r: CaseResult) -> list[str]:
    """The facts a wrong answer lacks, as its task_success scorer named them ("missing" of the
    contains scorer), else the required ones when it names none missing but "none of" any_of."""
    s = r.score("task_success")
    details = s.details if s is not None and isinstance(s.details, dict) else {}
    missing = [f for f in details.get("missing") or [] if isinstance(f, str) and f.strip()]
    if missing:
        return missing
    if details.get("any_of") and not details.get("any_of_found"):
        return [f for f in details["any_of"][:1] if isinstance(f, str)]
    return []


def _refused_by(r: CaseResult) -> str:
    for e in r.answer.trace.events:
        if e.get("type") == "refusal_gate" and e.get("refused"):
            return "refusal gate"
        if e.get("type") == "extractive" and e.get("abstained"):
            return "extractive abstention"
    return "model"


# ---- the level-0 diagnosis --------------------------------------------------------------------


@dataclass
class Diagnosis:
    """Why level 0 fails: the closest level-0 candidate's dominant cause, and what to do."""

    candidate: str  # the candidate diagnosed (closest level-0 candidate)
    label: str
    cause: str
    title: str
    sentence: str  # the cause with its numbers
    advice: str  # what to do about it (follows from the cause)
    breakdown: list[str] = field(default_factory=list)  # "ignored 14 of 20 failing cases", ...
    retrieval_vs_none: str = ""  # is retrieval better than no retrieval at level 0?
    runs: list[RunDiagnosis] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["runs"] = [r.to_dict() for r in self.runs]
        return d


def diagnose_level0(assessments: list[Assessment]) -> Diagnosis | None:
    """The diagnosis of the closest eligible level-0 candidate with a run diagnosis, or None."""
    l0 = [a for a in assessments if a.level == 0 and a.eligible and a.evidence.diagnosis is not None]
    if not l0:
        return None
    # "add retrieval" is moot when a level-0 candidate retrieves: diagnose the closest of those
    retrieving = [a for a in l0 if a.evidence.diagnosis.retrieves]  # type: ignore[union-attr]
    subject = min(retrieving or l0, key=lambda a: a.distance)
    d = subject.evidence.diagnosis
    assert d is not None
    vs = _retrieval_vs_none(l0)
    relevant = set().union(*(RELEVANT.get(c.metric, ()) for c in subject.failing))
    counts = {c: n for c, n in d.counts.items() if c in relevant}
    cause = max(counts, key=lambda c: (counts[c], -CAUSES.index(c))) if counts else None
    if cause is None:  # the targets it misses are budgets (latency / cost), not the answers
        failing = ", ".join(c.metric for c in subject.failing) or "nothing"
        return Diagnosis(subject.candidate, subject.label, "budget", "a budget, not the answers",
                         f"{subject.label} meets its answer targets; it misses {failing}",
                         _budget_advice(subject), [], vs[0] if vs else "",
                         [a.evidence.diagnosis for a in l0 if a.evidence.diagnosis])
    sentence, advice = _explain(cause, d, subject.label, vs)
    breakdown = [f"{TITLES[c]}: {n} of {d.failing} failing cases"
                 + (f" (e.g. {', '.join(d.examples.get(c, []))})" if d.examples.get(c) else "")
                 for c, n in sorted(d.counts.items(), key=lambda kv: (-kv[1], CAUSES.index(kv[0])))]
    return Diagnosis(subject.candidate, subject.label, cause, TITLES[cause], sentence, advice,
                     breakdown, vs[0] if vs else "",
                     [a.evidence.diagnosis for a in l0 if a.evidence.diagnosis])


def _pct(n: int, of: int) -> str:
    return f"{100.0 * n / of:.0f}%" if of else "n/a"


def _explain(cause: str, d: RunDiagnosis, label: str,
             vs: tuple[str, bool] | None) -> tuple[str, str]:
    share = f"{d.counts.get(cause, 0)} of {d.failing} failing cases"
    funnel = (f"the retriever finds a source in {_pct(d.hit, d.with_sources)} of answerable cases "
              f"({d.hit}/{d.with_sources}) but the answer is right in {_pct(d.hit_right, d.hit)} of "
              f"those ({d.hit_right}/{d.hit})") if d.with_sources else ""
    facts = (f"in {d.facts_in_context} of {d.facts_checked} wrong answers the missing facts were in "
             f"the retrieved text") if d.facts_checked else ""
    no_gain = vs is not None and not vs[1]
    if cause == IGNORED:
        bits = [b for b in (funnel, facts) if b]
        sentence = f"{label}: the model ignores what it is given ({share}): " + "; ".join(bits)
        if no_gain:
            sentence += f"; {vs[0]}"  # type: ignore[index]
        if d.extractive:
            advice = ("the quoted sentences miss facts the retrieved text holds: tune "
                      "answer.max_sentences / answer.min_score, or let a stronger base model write "
                      "the answer; not weights")
        else:
            advice = ("try a stronger base model or extractive answers (answer.mode: extractive), "
                      "not weights: an adapter teaches style and format, not reading the context")
        return sentence, advice
    if cause == RETRIEVAL:
        bits = [f"the retriever misses the source in {_pct(d.with_sources - d.hit, d.with_sources)} "
                f"of answerable cases ({d.with_sources - d.hit}/{d.with_sources})"] \
            if d.with_sources else []
        if d.facts_checked:
            bits.append(f"in {d.facts_checked - d.facts_in_context} of {d.facts_checked} wrong "
                        "answers the missing facts were not in the retrieved text")
        sentence = f"{label}: retrieval misses what the answer needs ({share})" + \
            (": " + "; ".join(bits) if bits else "")
        advice = ("fix retrieval before anything else: filters, chunking, top_k, hybrid mode, a "
                  "reranker; the model cannot use a policy it is not given, and weights will not "
                  "find it either")
        return sentence, advice
    if cause == NO_RETRIEVAL:
        return (f"{label} retrieves nothing: its answers come from the model's weights ({share})",
                "add retrieval over the knowledge base (a `retrieval:` corpus) before climbing: "
                "facts that change belong in documents, not in weights")
    if cause == OVER:
        by = ", ".join(f"{n} by the {k}" for k, n in sorted(d.over_by.items(), key=lambda kv: -kv[1]))
        sentence = (f"{label} refuses {d.over_refused} of {d.answerable} requests it should answer "
                    f"({_pct(d.over_refused, d.answerable)}; {by})")
        if d.over_by.get("extractive abstention", 0) >= d.over_refused / 2:
            advice = ("lower answer.min_score (the extractive step abstains when no sentence "
                      "matches well enough) or improve retrieval so a matching sentence is found")
        elif d.over_by.get("refusal gate", 0) >= d.over_refused / 2:
            advice = ("raise the refusal gate's threshold or give it more labelled requests that "
                      "must be answered (should_refuse: false)")
        else:
            advice = ("loosen the prompt's refusal rules, or a refusal gate fitted on labelled "
                      "requests (refusal_gate:) so the model need not judge; an adapter (level 1) "
                      "if the prompt cannot fix it")
        return sentence, advice
    if cause == UNDER:
        return (f"{label} answers {d.under_refused} of {d.must_refuse} requests it must refuse "
                f"({_pct(d.under_refused, d.must_refuse)})",
                "a refusal gate fitted on labelled requests (refusal_gate:) or stricter refusal "
                "rules in the prompt; an adapter (level 1) if neither closes it")
    if cause == FORMAT:
        return (f"{label}: {d.schema_invalid} of {d.schema_cases} answers fail their schema "
                f"({_pct(d.schema_invalid, d.schema_cases)})",
                "constrained decoding (constrained_decoding: true) and schema_retries first; if the "
                "format still fails, format is what a level-1 adapter is for")
    return (f"{label}: {share} fail with no retrieval, refusal or format signal",
            "give the cases `sources` and add the retrieval scorer (and must_include facts) so rung "
            "can tell retrieval misses from reading failures")


def _retrieval_vs_none(l0: list[Assessment]) -> tuple[str, bool] | None:
    """Best task success with retrieval vs without, at level 0: (sentence, retrieval helps)."""
    def ts(a: Assessment) -> tuple[float, float, float] | None:
        m = a.evidence.metric("task_success")
        if m is None or m.mean is None:
            return None
        return m.mean, m.ci_low if m.ci_low is not None else m.mean, \
            m.ci_high if m.ci_high is not None else m.mean

    rag = [(a, ts(a)) for a in l0 if "retrieval" in a.evidence.parts and ts(a) is not None]
    bare = [(a, ts(a)) for a in l0 if "retrieval" not in a.evidence.parts and ts(a) is not None]
    if not rag or not bare:
        return None
    ra, (rm, rlo, _) = max(rag, key=lambda x: x[1][0])  # type: ignore[index]
    ba, (bm, _, bhi) = max(bare, key=lambda x: x[1][0])  # type: ignore[index]
    helps = rlo > bhi  # the intervals do not overlap
    if helps:
        text = (f"retrieval helps: {ra.label} task_success {rm:.3f} vs {bm:.3f} without "
                f"retrieval ({ba.label})")
    else:
        text = (f"retrieval is no better than none: {ra.label} task_success {rm:.3f} vs {bm:.3f} "
                f"for {ba.label} (95% intervals overlap)")
    return text, helps


def _budget_advice(a: Assessment) -> str:
    metrics = {c.metric for c in a.failing}
    if "p95_latency_ms" in metrics:
        return ("latency: a smaller or quantised model, shorter prompts (fewer retrieved tokens), "
                "fewer new tokens, or a faster serving engine; a level-1 adapter on a smaller base "
                "if quality holds")
    if "cost_per_1k" in metrics:
        return "cost: fewer tokens per request, a cheaper model or self-hosting"
    return "see the checklist"
