"""The framework's decision checklist, walked item by item over the assessed candidates.

1. readiness: can you evaluate it? If not, stop and build the harness.
2. data sensitivity: candidates on models that are not self-hosted are excluded when data may
   not leave the network. 3. change velocity: what a policy change costs at each level.
4. level 0: retrieval + prompting + tools reach the targets within the budgets -> ship the
   simplest passing candidate. 5. hallucination above the bound at level 0 -> fix retrieval and
   prompting first, not weights (failing tags and retrieval metrics named).
6. level 1: style/format or latency/cost gaps level 0 cannot close -> adapters, with the measured
   gain over the level-0 counterpart. 7. level 2: a capability missing at levels 0 and 1, with
   enough data and evals -> full fine-tune (when allowed). 8. otherwise no level meets the targets:
   the closest candidate and its gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rung.decide.targets import (
    BUDGET,
    FORMAT,
    QUALITY,
    Assessment,
    gain_lines,
    gain_short,
    margin_sentence,
    straddle_notes,
)
from rung.pipeline.candidate import complexity

if TYPE_CHECKING:
    from rung.config import Constraints
    from rung.decide.readiness import Readiness

PASS, FAIL, STOP, SKIP, INFO = "pass", "fail", "stop", "skip", "info"
SHIP, FIX_LEVEL0, NONE, CANNOT = "ship", "fix-level0", "none", "cannot-evaluate"
RETRIEVAL_METRICS = ("context_recall", "hit_at_k")


@dataclass
class EvidenceRef:
    metric: str
    value: float | None
    ci: tuple[float, float] | None = None
    run_id: str = ""
    candidate: str = ""
    n: int | None = None


@dataclass
class ChecklistItem:
    id: str
    question: str
    verdict: str  # pass | fail | stop | skip | info
    finding: str  # one sentence with the numbers
    constraint: str = ""  # the constraint(s) it used, "name = value"
    evidence: list[EvidenceRef] = field(default_factory=list)
    what_would_change: str = ""
    details: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    action: str  # ship | fix-level0 | none | cannot-evaluate
    chosen: Assessment | None
    headline: str


def refs(a: Assessment, metrics: tuple[str, ...] | None = None) -> list[EvidenceRef]:
    """The candidate's checks (or the named metrics of its run) as evidence lines."""
    out = [EvidenceRef(c.metric, c.value, c.ci, a.evidence.run_id, a.candidate, c.n)
           for c in a.checks if metrics is None or c.metric in metrics]
    have = {r.metric for r in out}
    for name in metrics or ():
        m = a.evidence.metric(name)
        if name not in have and m is not None:
            ci = (m.ci_low, m.ci_high) if m.ci_low is not None and m.ci_high is not None else None
            out.append(EvidenceRef(name, m.mean, ci, a.evidence.run_id, a.candidate, m.n))
    return out


def walk(assessments: list[Assessment], readiness: Readiness,
         c: Constraints) -> tuple[list[ChecklistItem], Outcome]:
    items = [_readiness_item(readiness, c)]
    if not readiness.ready:
        gaps = "; ".join(g.message for g in readiness.blocking)
        return items, Outcome(CANNOT, None, f"Cannot decide: the evaluation harness is not ready "
                                            f"({gaps}). Build it first: you can't ship what you "
                                            f"can't evaluate.")
    if not assessments:
        items.append(ChecklistItem("runs", "Is there a finished run of any candidate on the suite?",
                                   STOP, "no finished run of any candidate on this suite",
                                   what_would_change="run `rung eval -c rung.yaml --candidate NAME` "
                                                     "for each candidate"))
        return items, Outcome(CANNOT, None, "Cannot decide: no candidate has a finished run on the "
                                            "suite. Run `rung eval` for each candidate first.")
    items.append(_sensitivity_item(assessments, c))
    items.append(_velocity_item(assessments, c))
    eligible = [a for a in assessments if a.eligible]
    l0 = [a for a in eligible if a.level == 0]
    l1 = [a for a in eligible if a.level == 1]
    l2 = [a for a in eligible if a.level >= 2]

    l0_pass = sorted((a for a in l0 if a.passed), key=_simplicity)
    items.append(_level0_item(l0, l0_pass, c))
    hall_item, blocked = _hallucination_item(l0, c)
    items.append(hall_item)
    if l0_pass:
        chosen = l0_pass[0]
        why = "level 0 meets the targets: do not touch weights"
        items += [_skip("level-1", why), _skip("level-2", why), _skip("none", "a level was chosen")]
        return items, Outcome(SHIP, chosen, f"Ship level 0: {chosen.label} ({_parts(chosen)}) "
                                            f"meets every target: {_summary(chosen)}.")
    if blocked:
        best = min(l0, key=lambda a: a.distance)
        passing_up = [a.label for a in l1 + l2 if a.passed]
        why = "fix retrieval and prompting at level 0 first (hallucination above the bound)"
        if passing_up:
            why += f"; note: {', '.join(passing_up)} meet the targets, but weights do not remove " \
                   "the need for grounding"
        items += [_skip("level-1", why), _skip("level-2", why),
                  _skip("none", "the decision is to fix level 0")]
        return items, Outcome(FIX_LEVEL0, best, f"Fix retrieval and prompting before touching "
                                                f"weights: {hall_item.finding}")
    l0_best = min(l0, key=lambda a: a.distance) if l0 else None
    item1, chosen1 = _level1_item(l0_best, l1, c)
    items.append(item1)
    if chosen1 is not None:
        items += [_skip("level-2", "level 1 meets the targets"),
                  _skip("none", "a level was chosen")]
        return items, Outcome(SHIP, chosen1, f"Ship level 1: {chosen1.label} (adapter) "
                                             f"{item1.finding}")
    item2, chosen2 = _level2_item(l0_best, l1, l2, c)
    items.append(item2)
    if chosen2 is not None:
        items.append(_skip("none", "a level was chosen"))
        return items, Outcome(SHIP, chosen2, f"Ship level 2: {chosen2.label} (full fine-tune) "
                                             f"{item2.finding}")
    pool = eligible or assessments
    closest = min(pool, key=lambda a: a.distance)
    note = "" if closest.eligible else f" (excluded: {closest.excluded})"
    gap = "; ".join(ch.describe() for ch in closest.failing) or "excluded"
    items.append(ChecklistItem(
        "none", "Does any level meet the targets?", FAIL,
        f"no candidate meets every target; closest: {closest.label}{note}: {gap}",
        evidence=refs(closest), what_would_change=closest.what_would_change()))
    return items, Outcome(NONE, closest, f"No level meets the targets. Closest: {closest.label}"
                                         f"{note}, missing {gap}.")


# ---- items ------------------------------------------------------------------------------------


def _readiness_item(r: Readiness, c: Constraints) -> ChecklistItem:
    constraint = f"min_cases_per_tag = {c.min_cases_per_tag}"
    ev = [EvidenceRef("cases", r.n_cases), EvidenceRef("cases_with_expectation", r.with_expectation),
          EvidenceRef("should_refuse_true", r.refusal_labels[0]),
          EvidenceRef("cases_with_sources", r.with_sources)]
    advice = [g.message for g in r.gaps if not g.blocking]
    if not r.ready:
        return ChecklistItem(
            "readiness", "Can you evaluate it (task success, groundedness, safety on enough "
            "cases per tag)?", STOP, "; ".join(g.message for g in r.blocking), constraint, ev,
            "build the missing parts of the harness: " + "; ".join(g.message for g in r.blocking),
            details=advice)
    checked = [t for t in r.tags if t.checked]
    return ChecklistItem(
        "readiness", "Can you evaluate it (task success, groundedness, safety on enough cases "
        "per tag)?", PASS, f"suite {r.suite!r}: {r.n_cases} cases, {len(checked)} tag(s) with at "
        f"least {c.min_cases_per_tag} cases each, scorers: {', '.join(r.scorers)}", constraint, ev,
        details=advice)


def _sensitivity_item(assessments: list[Assessment], c: Constraints) -> ChecklistItem:
    constraint = f"data_may_leave_network = {str(c.data_may_leave_network).lower()}"
    q = "Can data leave your network?"
    if c.data_may_leave_network:
        return ChecklistItem("data-sensitivity", q, INFO, "data may leave the network: endpoint "
                             "and self-hosted candidates are all eligible", constraint)
    excluded = [a for a in assessments if not a.eligible]
    if not excluded:
        return ChecklistItem("data-sensitivity", q, PASS, "data may not leave the network; every "
                             "candidate runs on a self-hosted model", constraint)
    names = ", ".join(f"{a.label} on {a.evidence.model or a.evidence.model_id!r}" for a in excluded)
    verdict = FAIL if len(excluded) == len(assessments) else INFO
    would = [f"{a.label} would {'pass' if all(ch.passed for ch in a.checks) else 'be eligible'}"
             for a in excluded]
    return ChecklistItem(
        "data-sensitivity", q, verdict, f"excluded {len(excluded)} candidate(s) on models that are "
        f"not self-hosted: {names}", constraint, [r for a in excluded for r in refs(a, QUALITY)],
        "if data could leave the network (or the model were self-hosted: models.NAME.self_hosted),"
        f" {', '.join(would)}")


def _velocity_item(assessments: list[Assessment], c: Constraints) -> ChecklistItem:
    constraint = f"policy_changes_per_month = {c.policy_changes_per_month:g}"
    trained = [a for a in assessments if a.cost.training is not None]
    q = "How often do instructions or policies change (and what does each change cost)?"
    if not trained:
        return ChecklistItem("change-velocity", q, INFO, f"{c.policy_changes_per_month:g} policy "
                             "change(s) per month; no level 1/2 candidate: prompts and retrieval "
                             "change without training", constraint)
    parts = []
    for a in trained:
        tr = a.cost.training
        assert tr is not None
        once = tr.inputs.get("training_cost")
        parts.append(f"{a.label}: {c.policy_changes_per_month:g} x {_money(once)} re-training "
                     f"+ amortised training = {_money(tr.per_month)}/month")
    return ChecklistItem("change-velocity", q, INFO, f"{c.policy_changes_per_month:g} policy "
                         "change(s) per month; each re-trains the adapters and weights: "
                         + "; ".join(parts), constraint,
                         what_would_change="frequent change favours prompts + retrieval: a "
                                           "level-0 candidate changes with no training cost")


def _level0_item(l0: list[Assessment], passing: list[Assessment], c: Constraints) -> ChecklistItem:
    q = "Can retrieval + prompting + tools reach the target within the budgets?"
    constraint = _constraints_text(c)
    if not l0:
        return ChecklistItem("level-0", q, FAIL, "no eligible level-0 candidate was evaluated: the "
                             "ladder starts at level 0", constraint,
                             what_would_change="evaluate a level-0 candidate (`rung eval`)")
    if passing:
        a = passing[0]
        others = [x.label for x in passing[1:]]
        details = straddle_notes(a)
        if others:
            details.append(f"also passing (less simple or dearer): {', '.join(others)}")
        return ChecklistItem("level-0", q, PASS, f"{a.label} passes: {_summary(a)}", constraint,
                             refs(a), margin_sentence(a, c), details)
    best = min(l0, key=lambda a: a.distance)
    return ChecklistItem("level-0", q, FAIL, f"no level-0 candidate passes; closest {best.label}: "
                         + "; ".join(ch.describe() for ch in best.failing), constraint, refs(best),
                         best.what_would_change(),
                         [f"{a.label}: " + "; ".join(ch.describe() for ch in a.failing)
                          for a in l0 if a is not best])


def _hallucination_item(l0: list[Assessment], c: Constraints) -> tuple[ChecklistItem, bool]:
    q = "Is hallucination within the bound at level 0 (else fix retrieval and prompting first)?"
    constraint = f"hallucination_bound = {c.hallucination_bound:g}"
    if not l0:
        return _skip("hallucination", "no eligible level-0 candidate", q), False
    checks = [(a, a.check("hallucination")) for a in l0]
    within = [a for a, ch in checks if ch is not None and ch.passed]
    ev = [r for a in l0 for r in refs(a, ("hallucination", *RETRIEVAL_METRICS))]
    if within:
        return ChecklistItem("hallucination", q, PASS, "within the bound: " + ", ".join(
            f"{a.label} {a.check('hallucination').value:.3f}" for a in within),  # type: ignore[union-attr]
            constraint, ev), False
    best = min(l0, key=lambda a: _hall(a))
    tags = _failing_tags(l0, c.hallucination_bound)
    retrieval = []
    for a in l0:
        ms = [f"{n} {a.evidence.metric(n).mean:.2f}"  # type: ignore[union-attr]
              for n in RETRIEVAL_METRICS if a.evidence.metric(n) is not None]
        retrieval.append(f"{a.label}: " + (", ".join(ms) if ms else "retrieval not measured"))
    value = best.check("hallucination")
    shown = "not measured" if value is None or value.value is None else f"{value.value:.3f}"
    finding = (f"hallucination is above the bound {c.hallucination_bound:g} in every level-0 "
               f"candidate (best {best.label}: {shown}); failing tags: "
               f"{', '.join(tags) if tags else 'none stand out'}; retrieval: {'; '.join(retrieval)}")
    return ChecklistItem("hallucination", q, FAIL, finding, constraint, ev,
                         f"if hallucination fell to {c.hallucination_bound:g} or below (better "
                         "retrieval: filters, reranker, top-k; stricter prompts; required "
                         "citations), level 0 could be judged on its other targets",
                         [f"tag {t}" for t in tags]), True


def _level1_item(l0_best: Assessment | None, l1: list[Assessment],
                 c: Constraints) -> tuple[ChecklistItem, Assessment | None]:
    q = "Do style/format or latency/cost gaps that level 0 cannot close call for adapters?"
    constraint = f"allow_level1 = {str(c.allow_level1).lower()}; {_constraints_text(c)}"
    gaps = _gap_kinds(l0_best)
    if not c.allow_level1:
        return _skip("level-1", "level 1 is not allowed (constraints.allow_level1: false)", q), None
    passing = sorted((a for a in l1 if a.passed), key=_cheapest)
    if passing:
        a = passing[0]
        details = gain_lines(a) + straddle_notes(a)
        closes = f"closes the level-0 gap ({gaps})" if gaps else "meets the targets"
        return ChecklistItem("level-1", q, PASS, f"{closes}: {_summary(a)}; {gain_short(a)}",
                             constraint, refs(a), margin_sentence(a, c), details), a
    if not l1:
        return ChecklistItem("level-1", q, FAIL, f"no level-1 candidate was evaluated (level-0 gap: "
                             f"{gaps or 'none measured'})", constraint,
                             what_would_change="train an adapter (`rung tune --method lora`), add "
                             "it as a candidate and `rung eval` it"), None
    best = min(l1, key=lambda a: a.distance)
    return ChecklistItem("level-1", q, FAIL, f"no level-1 candidate passes; closest {best.label}: "
                         + "; ".join(ch.describe() for ch in best.failing), constraint, refs(best),
                         best.what_would_change(), gain_lines(best)), None


def _level2_item(l0_best: Assessment | None, l1: list[Assessment], l2: list[Assessment],
                 c: Constraints) -> tuple[ChecklistItem, Assessment | None]:
    q = "Is a capability missing at levels 0 and 1, with enough data and evals for a full fine-tune?"
    constraint = (f"allow_level2 = {str(c.allow_level2).lower()}; min_train_examples_level2 = "
                  f"{c.min_train_examples_level2}; {_constraints_text(c)}")
    if not c.allow_level2:
        return _skip("level-2", "level 2 is not allowed (constraints.allow_level2: false)", q), None
    lower = [a for a in ([l0_best] if l0_best else []) + l1]
    missing = [f"{a.label} task_success {_val(a, 'task_success')}" for a in lower
               if not (a.check("task_success") and a.check("task_success").passed)]  # type: ignore[union-attr]
    capability = ("capability missing below level 2: " + ", ".join(missing)) if missing else \
        "levels 0 and 1 reach task success but miss other targets"
    ok, thin = [], []
    for a in sorted((a for a in l2 if a.passed), key=_cheapest):
        n = a.evidence.artifact.train_examples if a.evidence.artifact else None
        (thin if n is not None and n < c.min_train_examples_level2 else ok).append(a)
    if ok:
        a = ok[0]
        n = a.evidence.artifact.train_examples if a.evidence.artifact else None
        data = f"trained on {n} examples" if n is not None else \
            "training data size unknown (no rung-lineage.json): check it"
        return ChecklistItem("level-2", q, PASS, f"{capability}; {_summary(a)}; {data}; "
                             f"{gain_short(a)}", constraint, refs(a), margin_sentence(a, c),
                             gain_lines(a) + straddle_notes(a)), a
    if thin:
        a = thin[0]
        n = a.evidence.artifact.train_examples  # type: ignore[union-attr]
        return ChecklistItem("level-2", q, FAIL, f"{a.label} meets the targets but was trained on "
                             f"only {n} examples (< {c.min_train_examples_level2}): too little data "
                             "to trust a full fine-tune", constraint, refs(a),
                             f"if the training set had {c.min_train_examples_level2} examples or "
                             f"more, {a.label} would be shipped"), None
    if not l2:
        return ChecklistItem("level-2", q, FAIL, f"{capability}; no level-2 candidate was evaluated",
                             constraint, what_would_change="a full fine-tune (`rung tune --method "
                             "full`) evaluated with `rung eval`"), None
    best = min(l2, key=lambda a: a.distance)
    return ChecklistItem("level-2", q, FAIL, f"{capability}; closest level-2 {best.label}: "
                         + "; ".join(ch.describe() for ch in best.failing), constraint, refs(best),
                         best.what_would_change()), None


# ---- helpers -----------------------------------------------------------------------------------


def _skip(item_id: str, why: str, question: str = "") -> ChecklistItem:
    questions = {"level-1": "Do style/format or latency/cost gaps call for adapters?",
                 "level-2": "Is a full fine-tune justified?",
                 "none": "Does any level meet the targets?"}
    return ChecklistItem(item_id, question or questions.get(item_id, item_id), SKIP, why)


def _simplicity(a: Assessment) -> tuple[int, int, float, float]:
    """Simplest first: the complexity order the ladder runs candidates in
    (rung.pipeline.candidate.complexity), then the cheapest, then the fastest."""
    return (*complexity(a.evidence.parts), *_cheapest(a))


def _cheapest(a: Assessment) -> tuple[float, float]:
    cost = a.cost.total_per_million
    return (cost if cost is not None else float("inf"),
            a.evidence.p95_ms if a.evidence.p95_ms is not None else float("inf"))


def _parts(a: Assessment) -> str:
    return " + ".join(a.evidence.parts) if a.evidence.parts else "the model alone"


def _summary(a: Assessment) -> str:
    return ", ".join(ch.describe().replace(" ✓", "") for ch in a.checks)


def _val(a: Assessment, metric: str) -> str:
    ch = a.check(metric)
    return "not measured" if ch is None or ch.value is None else f"{ch.value:.3f}"


def _hall(a: Assessment) -> float:
    ch = a.check("hallucination")
    return ch.value if ch is not None and ch.value is not None else float("inf")


def _money(v: object) -> str:
    return "-" if not isinstance(v, (int, float)) else f"{v:.4g}"


def _constraints_text(c: Constraints) -> str:
    parts = [f"task_success_target = {c.task_success_target:g}",
             f"hallucination_bound = {c.hallucination_bound:g}",
             f"max_safety_violations = {c.max_safety_violations}",
             f"format_target = {c.format_target:g}"]
    if c.p95_latency_ms is not None:
        parts.append(f"p95_latency_ms = {c.p95_latency_ms:g}")
    if c.cost_per_1k_requests is not None:
        parts.append(f"cost_per_1k_requests = {c.cost_per_1k_requests:g}")
    return ", ".join(parts)


def _gap_kinds(a: Assessment | None) -> str:
    if a is None:
        return ""
    kinds = []
    for name, group in (("quality", QUALITY), ("style/format", FORMAT),
                        ("latency/cost", BUDGET)):
        failing = [ch.describe() for ch in a.failing if ch.metric in group]
        if failing:
            kinds.append(f"{name}: " + "; ".join(failing))
    return f"{a.label} " + " | ".join(kinds) if kinds else ""


def _failing_tags(l0: list[Assessment], bound: float, top: int = 8) -> list[str]:
    """Tags where even the best level-0 candidate hallucinates above the bound, worst first."""
    best: dict[str, tuple[float, int, str]] = {}
    for a in l0:
        for tag, ts in a.evidence.summary.tags.items():
            v = ts.means.get("hallucination")
            if v is not None and (tag not in best or v < best[tag][0]):
                best[tag] = (v, ts.measured.get("hallucination", ts.n), a.candidate)
    bad = sorted(((t, *x) for t, x in best.items() if x[0] > bound), key=lambda r: (-r[1], -r[2]))
    out = [f"{t} ({v:.2f} over {n} cases in {c!r})" for t, v, n, c in bad[:top]]
    if len(bad) > top:
        out.append(f"{len(bad) - top} more")
    return out
