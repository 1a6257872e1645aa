"""The recommendation: constraints + evidence -> which level to ship, and why.

`decide(config, store, suite=..., runs=...)` gathers the evidence (IO: the suite file and the run
store) and calls `decide_from_evidence`, a pure function of the evidence, the readiness and the
constraints, so that every branch can be tested with synthetic evidence.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rung.decide.changes import Change, distinct_changes
from rung.decide.checklist import CANNOT, SHIP, ChecklistItem, walk
from rung.decide.cost import candidate_cost
from rung.decide.diagnose import Diagnosis, diagnose_level0
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
    what_would_change: list[str] = field(default_factory=list)  # one line per distinct change
    notes: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)  # what_would_change, with what each moves
    diagnosis: Diagnosis | None = None  # why level 0 fails (None when it passes or cannot tell)

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
            "changes": [dataclasses.asdict(c) for c in self.changes],
            "diagnosis": self.diagnosis.to_dict() if self.diagnosis else None,
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
    decision.changes = distinct_changes(decision.action, items, assessments, chosen)
    decision.what_would_change = [c.text for c in decision.changes]
    level0_passes = decision.action == SHIP and decision.level == 0
    if decision.action != CANNOT and not level0_passes:
        decision.diagnosis = diagnose_level0(assessments)
        item = next((i for i in items if i.id == "level-0"), None)
        if decision.diagnosis is not None and item is not None:
            item.details.insert(0, f"why: {decision.diagnosis.sentence}; advice: "
                                   f"{decision.diagnosis.advice}")
    return decision


def decide(config: RungConfig, store: RunStore, *, suite: str | None = None,
           runs: list[str] | None = None) -> tuple[Decision, Gathered]:
    """Gather the evidence of the suite's runs (or of `runs`) and decide. Returns the decision and
    the gathered evidence (with the runs, for the report's failing cases)."""
    from rung.evals.suite import load_suite

    suite_name, suite_cfg = config.suite(suite)
    s = load_suite(config.existing_path("suites", suite_name, "path", what="suite file or folder"),
                   name=suite_name)
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
        "latency": {"basis": "served" if e.served else "batched", "describe": e.latency_basis,
                    "served_p50_ms": e.summary.served_p50_latency_ms,
                    "served_p95_ms": e.summary.served_p95_latency_ms,
                    "served_n": len(e.summary.served_latencies_ms),
                    "served_concurrency": e.summary.served_concurrency,
                    "batched_p50_ms": e.summary.p50_latency_ms,
                    "batched_p95_ms": e.summary.p95_latency_ms,
                    "throughput_rps": e.summary.throughput_rps,
                    "throughput_batch_size": e.summary.throughput_batch_size,
                    "throughput_cached": e.summary.throughput_cached},
        "diagnosis": e.diagnosis.to_dict() if e.diagnosis else None,
        "cost": {"per_1M": a.cost.total_per_million, "per_1k": a.cost.per_1k,
                 "complete": a.cost.complete, "assumptions": a.cost.assumptions,
                 "figures": [dataclasses.asdict(f) for f in a.cost.figures]},
        "gain": dataclasses.asdict(e.gain) if e.gain else None,
        "artifact": ({k: v for k, v in dataclasses.asdict(e.artifact).items() if k != "raw"}
                     if e.artifact else None),
        "tags": {t: {"n": ts.n, "means": ts.means} for t, ts in e.summary.tags.items()},
        "notes": e.notes,
    }
