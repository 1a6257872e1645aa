"""The recommendation: constraints + evidence -> which level to ship, and why.

`decide(config, store, suite=..., runs=...)` gathers the evidence (IO: the suite file and the run
store) and calls `decide_from_evidence`, a pure function of the evidence, the readiness and the
constraints, so that every branch can be tested with synthetic evidence.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rung.decide.checklist import CANNOT, ChecklistItem, walk
from rung.decide.cost import candidate_cost
from rung.decide.evidence import Evidence, Gathered, gather_evidence
from rung.decide.readiness import Readiness, assess_readiness
from rung.decide.targets import Assessment, assess

if TYPE_CHECKING:
    from rung.config import Constraints, RungConfig
    from rung.evals.store import RunStore


@dataclass
class Decision:
    action: str  # ship | fix-level0 | none | cannot-evaluate
    level: int | None
    candidate: str | None
    headline: str
    items: list[ChecklistItem]
    assessments: list[Assessment]
    readiness: Readiness
    constraints: dict[str, Any]
    what_would_change: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0: a decision was made (ship, fix level 0, or none meets the targets); 2: cannot
        evaluate."""
        return 2 if self.action == CANNOT else 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the decision, the checklist, costs and per-candidate numbers."""
        return {
            "action": self.action, "level": self.level, "candidate": self.candidate,
            "headline": self.headline, "exit_code": self.exit_code,
            "items": [dataclasses.asdict(i) for i in self.items],
            "candidates": [_assessment_dict(a) for a in self.assessments],
            "readiness": {**dataclasses.asdict(self.readiness), "ready": self.readiness.ready},
            "what_would_change": self.what_would_change,
            "constraints": self.constraints,
            "notes": self.notes,
        }


def decide_from_evidence(evidence: list[Evidence], readiness: Readiness,
                         constraints: Constraints, *, notes: list[str] | None = None) -> Decision:
    """The decision for this evidence: walk the checklist and say what would change it."""
    assessments = []
    for e in evidence:
        a = assess(e, candidate_cost(e, constraints), constraints)
        if not constraints.data_may_leave_network and not e.self_hosted:
            a.excluded = (f"model {e.model or e.model_id!r} is not self-hosted and data may not "
                          "leave the network")
        assessments.append(a)
    items, outcome = walk(assessments, readiness, constraints)
    chosen = outcome.chosen
    decision = Decision(
        action=outcome.action,
        level=chosen.level if chosen is not None else None,
        candidate=chosen.candidate if chosen is not None else None,
        headline=outcome.headline,
        items=items,
        assessments=assessments,
        readiness=readiness,
        constraints=constraints.model_dump(),
        notes=list(notes or []) + [n for e in evidence for n in (f"{e.candidate}: {x}" for x in e.notes)],
    )
    decision.what_would_change = _what_would_change(decision, chosen)
    return decision


def decide(config: RungConfig, store: RunStore, *, suite: str | None = None,
           runs: list[str] | None = None) -> tuple[Decision, Gathered]:
    """Gather the evidence of the suite's runs (or of `runs`) and decide. Returns the decision and
    the gathered evidence (with the runs, for the report's failing cases)."""
    from rung.evals.suite import load_suite

    suite_name, suite_cfg = config.suite(suite)
    s = load_suite(config.resolve(suite_cfg.path), name=suite_name)
    gathered = gather_evidence(config, store, suite=None if runs else suite_name,
                               suite_hash=s.hash, run_ids=runs)
    readiness = assess_readiness(suite_name, s.cases, [sc.type for sc in suite_cfg.scorers],
                                 config.constraints, gathered.evidence)
    notes = list(gathered.notes)
    if gathered.missing:
        notes.append("no finished run on the suite for: " + ", ".join(gathered.missing)
                     + " (run `rung eval` to include them)")
    return decide_from_evidence(gathered.evidence, readiness, config.constraints,
                                notes=notes), gathered


def _what_would_change(d: Decision, chosen: Assessment | None) -> list[str]:
    out: list[str] = []
    said: set[str] = set()
    for item in d.items:
        # two items can name the same change (level-0 and none, both about the closest candidate)
        if item.what_would_change and item.verdict != "skip" and item.what_would_change not in said:
            said.add(item.what_would_change)
            out.append(f"[{item.id}] {item.what_would_change}")
    if d.action == CANNOT:
        return out  # until the harness is ready, candidate numbers change nothing
    for a in d.assessments:
        if a is chosen or not a.eligible:
            continue
        text = a.what_would_change()
        if text and all(text not in line for line in out):
            out.append(text)
    return out


def _assessment_dict(a: Assessment) -> dict[str, Any]:
    e = a.evidence
    return {
        "candidate": a.candidate, "level": a.level, "run_id": e.run_id, "model": e.model,
        "self_hosted": e.self_hosted, "eligible": a.eligible, "excluded": a.excluded,
        "passed": a.passed, "parts": e.parts,
        "checks": [{"metric": c.metric, "op": c.op, "target": c.target, "value": c.value,
                    "ci": c.ci, "n": c.n, "passed": c.passed, "straddles": c.straddles}
                   for c in a.checks],
        "p50_latency_ms": e.p50_ms, "p95_latency_ms": e.p95_ms,
        "tokens_in_mean": e.summary.tokens_in_mean, "tokens_out_mean": e.summary.tokens_out_mean,
        "cost": {"per_1M": a.cost.total_per_million, "per_1k": a.cost.per_1k,
                 "complete": a.cost.complete, "assumptions": a.cost.assumptions,
                 "figures": [dataclasses.asdict(f) for f in a.cost.figures]},
        "gain": dataclasses.asdict(e.gain) if e.gain else None,
        "artifact": ({k: v for k, v in dataclasses.asdict(e.artifact).items() if k != "raw"}
                     if e.artifact else None),
        "tags": {t: {"n": ts.n, "means": ts.means} for t, ts in e.summary.tags.items()},
        "notes": e.notes,
    }
