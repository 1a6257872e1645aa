"""Each candidate against the targets and budgets: one `Check` per constraint.

A check passes when the point estimate (the mean over cases; P95 latency; the cost model's cost
per 1k requests) meets the target. The 95% interval is reported with it: when it straddles the
target the check says so (more cases would settle it), but the verdict follows the mean.
A target metric that was not measured fails its check ("not measured" is never a pass).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rung.config import Constraints
    from rung.decide.cost import CandidateCost
    from rung.decide.evidence import Evidence

QUALITY = ("task_success", "hallucination", "safety_violations")
FORMAT = ("schema_valid", "refusal_correct")
BUDGET = ("p95_latency_ms", "cost_per_1k")


@dataclass
class Check:
    """One constraint on one candidate."""

    metric: str
    op: str  # ">=" or "<="
    target: float
    value: float | None  # None: not measured
    ci: tuple[float, float] | None = None
    n: int | None = None
    note: str = ""

    @property
    def passed(self) -> bool:
        if self.value is None:
            return False
        return self.value >= self.target if self.op == ">=" else self.value <= self.target

    @property
    def straddles(self) -> bool:
        """The 95% interval contains the target: the verdict could flip with more cases."""
        return self.ci is not None and self.ci[0] <= self.target <= self.ci[1] \
            and self.ci[0] != self.ci[1]

    @property
    def shortfall(self) -> float:
        """How far from passing, relative to the target (0 when it passes, 1 when unmeasured)."""
        if self.value is None:
            return 1.0
        if self.passed:
            return 0.0
        scale = max(abs(self.target), 0.01)
        return abs(self.value - self.target) / scale

    def describe(self) -> str:
        if self.value is None:
            return f"{self.metric} not measured{': ' + self.note if self.note else ''}"
        text = f"{self.metric} {_fmt(self.value, self.metric)} {self.op} {_fmt(self.target, self.metric)}"
        if self.ci is not None:
            text += f" (95% CI {_fmt(self.ci[0], self.metric)}–{_fmt(self.ci[1], self.metric)}"
            text += f", n={self.n})" if self.n is not None else ")"
        text += " ✓" if self.passed else " ✗"
        if self.straddles:
            text += " [CI straddles the target]"
        if self.note:
            text += f" ({self.note})"
        return text

    def fix(self) -> str:
        """What change of this number (or of its budget) would make it pass, in words."""
        if self.value is None:
            return f"{self.metric} were measured"
        if self.metric == "p95_latency_ms":
            return (f"the P95 budget were {self.value / self.target:.1f}x looser "
                    f"({self.value:.0f} ms instead of {self.target:.0f} ms)")
        if self.metric == "cost_per_1k":
            ratio = self.value / self.target if self.target else float("inf")
            return (f"the cost budget were {ratio:.1f}x higher ({self.value:.4g} instead of "
                    f"{self.target:.4g} per 1k requests)")
        if self.metric == "safety_violations":
            return (f"safety violations fell from {self.value:.0f} to {self.target:.0f} "
                    f"or fewer cases")
        verb = "rose" if self.op == ">=" else "fell"
        return (f"{self.metric} {verb} from {self.value:.3f} to {self.target:.3f} "
                f"({self.target - self.value:+.3f})")


@dataclass
class Assessment:
    """A candidate's evidence, cost and checks."""

    evidence: Evidence
    cost: CandidateCost
    checks: list[Check] = field(default_factory=list)
    excluded: str = ""  # why it may not be shipped at all (data sensitivity), "" if eligible

    @property
    def candidate(self) -> str:
        return self.evidence.candidate

    @property
    def level(self) -> int:
        return self.evidence.level

    @property
    def label(self) -> str:
        return self.evidence.label

    @property
    def eligible(self) -> bool:
        return not self.excluded

    @property
    def passed(self) -> bool:
        return self.eligible and all(c.passed for c in self.checks)

    @property
    def failing(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def check(self, metric: str) -> Check | None:
        return next((c for c in self.checks if c.metric == metric), None)

    @property
    def distance(self) -> tuple[float, int]:
        """How far from passing: the sum of the failing checks' relative shortfalls (an
        unmeasured target counts 1), then how many checks fail."""
        return sum(c.shortfall for c in self.failing), len(self.failing)

    def what_would_change(self) -> str:
        """"if A and B, L0 'rag' passes", or "" when it already passes."""
        if not self.failing:
            return ""
        return f"if {_join([c.fix() for c in self.failing])}, {self.label} would pass"


def assess(e: Evidence, cost: CandidateCost, c: Constraints) -> Assessment:
    a = Assessment(e, cost)
    a.checks.append(_metric_check(e, "task_success", ">=", c.task_success_target))
    a.checks.append(_metric_check(e, "hallucination", "<=", c.hallucination_bound))
    sv = e.summary.safety_violations
    a.checks.append(Check("safety_violations", "<=", float(c.max_safety_violations),
                          None if sv is None else float(sv), n=e.summary.n_cases,
                          note="" if sv is not None else "no safety scorer result"))
    for name in FORMAT:
        m = e.metric(name)
        if m is not None:
            a.checks.append(_metric_check(e, name, ">=", c.format_target))
    if c.p95_latency_ms is not None:
        n_lat = len(e.summary.served_latencies_ms if e.served else e.summary.latencies_ms)
        a.checks.append(Check("p95_latency_ms", "<=", c.p95_latency_ms, e.p95_ms, n=n_lat or None,
                              note="as served" if e.served else "batched evaluation, no probe"))
    if c.cost_per_1k_requests is not None:
        a.checks.append(Check("cost_per_1k", "<=", c.cost_per_1k_requests, cost.per_1k,
                              note="" if cost.complete else "inference only"))
    return a


def _metric_check(e: Evidence, name: str, op: str, target: float) -> Check:
    m = e.summary.metrics.get(name)
    if m is None or m.mean is None:
        why = f"{m.not_measured} cases not measured" if m is not None else "no scorer result"
        return Check(name, op, target, None, note=why)
    ci = (m.ci_low, m.ci_high) if m.ci_low is not None and m.ci_high is not None else None
    return Check(name, op, target, m.mean, ci, m.n)


def _fmt(v: float, metric: str) -> str:
    if metric == "p95_latency_ms":
        return f"{v:.0f} ms"
    if metric == "safety_violations":
        return f"{v:.0f}"
    if metric == "cost_per_1k":
        return f"{v:.4g}"
    return f"{v:.3f}"


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


# ---- sentences about one assessment ---------------------------------------------------------


def gain_short(a: Assessment) -> str:
    g = a.evidence.gain
    if g is None:
        return "no paired level-0 run to measure the gain against"
    parts = [f"{name} {d[0]:+.3f}" for name, d in g.deltas.items()]
    if g.p95_delta_ms is not None:
        parts.append(f"P95 {g.p95_delta_ms:+.0f} ms")
    return f"vs {g.baseline_candidate!r} over {g.n_pairs} paired cases: " + ", ".join(parts)


def gain_lines(a: Assessment) -> list[str]:
    g = a.evidence.gain
    if g is None:
        return []
    out = [f"paired with {g.baseline_candidate!r} (run {g.baseline_run}, {g.how}), {g.n_pairs} cases"]
    for name, (d, lo, hi, p) in g.deltas.items():
        out.append(f"{name}: {d:+.3f} (95% CI {lo:+.3f} to {hi:+.3f}"
                   + (f", p={p:.3g})" if p is not None else ")"))
    if g.p95_delta_ms is not None and g.p95_ci_ms is not None:
        out.append(f"P95 latency change: {g.p95_delta_ms:+.0f} ms (95% CI {g.p95_ci_ms[0]:+.0f} to "
                   f"{g.p95_ci_ms[1]:+.0f})")
    return out


def straddle_notes(a: Assessment) -> list[str]:
    return [f"{ch.metric}: the 95% CI {ch.ci[0]:.3f}–{ch.ci[1]:.3f} straddles the target "  # type: ignore[index]
            f"{ch.target:g}; the pass rests on the mean, more cases would settle it"
            for ch in a.checks if ch.passed and ch.straddles]


def margin_sentence(a: Assessment, c: Constraints) -> str:
    """The constraint closest to flipping the chosen candidate, as a sentence."""
    best: tuple[float, str] | None = None
    for ch in a.checks:
        if ch.value is None:
            continue
        scale = max(abs(ch.target), 0.01)
        margin = abs(ch.target - ch.value) / scale
        if ch.metric == "p95_latency_ms":
            text = f"if the P95 budget were below {ch.value:.0f} ms ({ch.value / ch.target:.2f}x " \
                   f"the budget), {a.label} would fail"
        elif ch.metric == "cost_per_1k":
            text = f"if the cost budget were below {ch.value:.4g} per 1k requests, {a.label} " \
                   "would fail"
        elif ch.metric == "safety_violations":
            continue
        else:
            text = f"if the {ch.metric} target were {'above' if ch.op == '>=' else 'below'} " \
                   f"{ch.value:.3f} (now {ch.target:g}), {a.label} would fail"
        if best is None or margin < best[0]:
            best = (margin, text)
    return best[1] if best else ""
