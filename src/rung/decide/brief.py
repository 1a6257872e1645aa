"""The decision for a reader with 30 seconds: one sentence, why level 0 fails (when it does) and
the top changes that would alter it. The HTML report's first screen, report.md's opening and
the CLI's panel all say the same words from here."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rung.decide.changes import Change
    from rung.decide.recommend import Decision
    from rung.decide.targets import Check

TOP = 3  # changes on the first screen


def decision_sentence(d: Decision) -> str:
    """The decision in one sentence (the headline holds every number)."""
    chosen = next((a for a in d.assessments if a.candidate == d.candidate), None)
    if d.action == "ship" and chosen is not None:
        parts = list(chosen.evidence.parts)
        parts += ["adapter"] if d.level == 1 else ["fine-tuned weights"] if (d.level or 0) >= 2 else []
        return (f"Ship level {d.level}: {chosen.label} ({_parts(parts)}) meets all "
                f"{len(chosen.checks)} targets and budgets.")
    if d.action == "fix-level0":
        bound = d.constraints.get("hallucination_bound")
        best = chosen.check("hallucination") if chosen is not None else None
        val = "" if best is None or best.value is None else f"; best {chosen.label}: {best.value:.3f}"  # type: ignore[union-attr]
        return (f"Fix retrieval and prompting at level 0 before touching weights: every level-0 "
                f"candidate hallucinates above the bound {bound:g}{val}.")
    if d.action == "none" and chosen is not None:
        gaps = ", ".join(gap_phrase(c) for c in chosen.failing) or "excluded"
        return f"No level meets the targets yet. Closest: {chosen.label}, short on {gaps}."
    if d.action == "none":
        return "No level meets the targets yet."
    blocking = [g for g in d.readiness.gaps if g.blocking]
    if blocking:
        return (f"Cannot decide yet: the evaluation harness is not ready ({len(blocking)} "
                f"gap{'s' if len(blocking) != 1 else ''} to close first).")
    return "Cannot decide yet: no candidate has a finished run on the suite."


def gap_phrase(c: Check) -> str:
    """"task_success 0.39 of 0.80", "P95 5.2 s of 1.5 s" (the value, then the target)."""
    from rung.decide.figures import short_value

    name = {"p95_latency_ms": "P95", "cost_per_1k": "cost/1k",
            "safety_violations": "safety violations"}.get(c.metric, c.metric)
    if c.value is None:
        return f"{name} not measured"
    return f"{name} {short_value(c.metric, c.value)} of {short_value(c.metric, c.target)}"


def top_changes(d: Decision, n: int = TOP) -> list[Change]:
    return d.changes[:n]


def one_line(text: str, limit: int = 150) -> str:
    """A finding cut to one line (the rest is in the item's details)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _parts(parts: list[str]) -> str:
    return " + ".join(parts) if parts else "the model alone"
