"""Examples from the scored answers of runs in the run store (labelled traces).

The harness's scores label each answer (scores that were not measured are ignored):

- bad when any measured check failed: `hallucination` = 1, `safety_violation` = 1,
  `refusal_correct` = 0, `schema_valid` = 0, or, for a case that should be answered,
  `task_success` below 1 (the exact / contains / regex / json_match / judge scorers all write
  `task_success`);
- good when nothing failed and the case's own goal was met: `refusal_correct` = 1 for a case
  that must be refused, `task_success` = 1 for one that must be answered;
- otherwise (the goal was not measured) the answer is skipped and counted as "no verdict".

A good answer becomes a positive example (the case's conversation, then the model's answer). A
bad one becomes a counter-example: the target is the case's reference (or the refusal target
when the case must be refused) and `rejected` is the model's answer; a bad answer with no
reference to correct it is skipped and counted. Only epoch 0 of a run is used (later epochs
repeat the same cases). The prompt is the case's conversation, not the candidate's full prompt
(system prompt, retrieved sources): the trace's prompt is summarised in metadata.

Lineage: source "trace", ref "<run id>/<case id>", created_at = the run's creation time,
annotator "rung-scorers" (the harness labelled it) unless rung.yaml names an annotator.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rung.evals.types import CaseResult, RunResult
from rung.tune.data.cases import case_target
from rung.tune.data.sources import LineageDefaults, Skipped, with_target
from rung.tune.example import Example

if TYPE_CHECKING:
    from rung.evals.store import RunStore

SCORER_ANNOTATOR = "rung-scorers"
TASK_SUCCESS, HALLUCINATION, SAFETY = "task_success", "hallucination", "safety_violation"
REFUSAL, SCHEMA = "refusal_correct", "schema_valid"


@dataclass
class Verdict:
    """good: True / False, or None when the scores do not decide; reasons explain it."""

    good: bool | None
    reasons: list[str]


def judge_result(r: CaseResult) -> Verdict:
    """Good / bad / undecided from the measured scores of one answer (see the module doc)."""
    measured = {s.name: float(s.value) for s in r.scores if s.value is not None}
    failures = []
    if measured.get(HALLUCINATION, 0.0) >= 1.0:
        failures.append("hallucination")
    if measured.get(SAFETY, 0.0) >= 1.0:
        failures.append("safety violation")
    if measured.get(REFUSAL, 1.0) < 1.0:
        failures.append("refusal incorrect")
    if measured.get(SCHEMA, 1.0) < 1.0:
        failures.append("schema invalid")
    if not r.case.should_refuse and measured.get(TASK_SUCCESS, 1.0) < 1.0:
        failures.append(f"task_success {measured[TASK_SUCCESS]:.2f}")
    if failures:
        return Verdict(False, failures)
    if r.case.should_refuse:
        if measured.get(REFUSAL) == 1.0:
            return Verdict(True, ["refused as expected"])
        return Verdict(None, ["refusal not measured"])
    if measured.get(TASK_SUCCESS) == 1.0:
        return Verdict(True, ["task_success 1"])
    return Verdict(None, ["task_success not measured"])


def examples_from_run(run: RunResult, defaults: LineageDefaults, refusal_target: str,
                      skipped: Skipped) -> list[Example]:
    """Positive and counter examples from one stored run (see the module doc)."""
    run_id = run.info.id
    annotator = defaults.annotator or SCORER_ANNOTATOR
    out: list[Example] = []
    for r in run.results:
        ref = f"{run_id}/{r.case.id}"
        if r.epoch != 0:
            skipped.add("trace: epoch > 0 (only epoch 0 is used)", f"{ref}@{r.epoch}")
            continue
        text = (r.answer.text or "").strip()
        if r.answer.error and not text:
            skipped.add("trace: the pipeline failed (no answer)", ref)
            continue
        verdict = judge_result(r)
        if verdict.good is None:
            skipped.add("trace: no verdict (goal not measured)", ref)
            continue
        metadata = {"run": run_id, "candidate": run.info.candidate, "verdict": verdict.reasons,
                    "scores": {s.name: s.value for s in r.scores},
                    "trace_prompt_messages": len(r.answer.trace.prompt),
                    "retrieved": [c.doc_id for c in r.answer.trace.retrieved]}
        if r.case.should_refuse is not None:
            metadata["should_refuse"] = r.case.should_refuse
        lineage = defaults.lineage("trace", ref, run.info.created_at, annotator=annotator)
        if verdict.good:
            out.append(Example(id=f"trace:{ref}", messages=with_target(r.case.chat(), r.answer.text),
                               lineage=lineage, label="positive", tags=list(r.case.tags),
                               metadata=metadata))
            continue
        target = case_target(r.case, refusal_target)
        if target is None:
            skipped.add("trace: bad answer without a reference to correct it", ref)
            continue
        out.append(Example(id=f"trace:{ref}", messages=with_target(r.case.chat(), target),
                           lineage=lineage, label="counter", rejected=r.answer.text,
                           tags=list(r.case.tags), metadata=metadata))
    return out


def examples_from_runs(store: RunStore, run_ids: Iterable[str], defaults: LineageDefaults,
                       refusal_target: str, skipped: Skipped) -> list[Example]:
    """Examples from every named run (ids or unique prefixes), in the order given."""
    out: list[Example] = []
    for run_id in run_ids:
        out.extend(examples_from_run(store.get_run(run_id), defaults, refusal_target, skipped))
    return out
