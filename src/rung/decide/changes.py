"""What would change the decision: one line per distinct change, most decisive first.

Candidates that miss the same targets need the same change (say, task_success up to its target
and hallucination down to its bound): they make one line, named after the closest of them (the
smallest gap), with the others listed as further off, instead of one line per candidate. A
checklist item's own change is kept when no candidate line says it already (the level-0 and
"none" items name the closest candidate's change, which the candidate line carries).

Order (the top three are what the report's first screen shows):
- ship: what would make the chosen candidate fail (its thinnest margin), then the rest;
- fix level 0: bringing hallucination within the bound first;
- otherwise: an excluded candidate that would pass if data could leave the network, then the
  candidate lines by their gap (closest first), then the items' advice (train an adapter, a
  full fine-tune), and the change-velocity note last.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rung.decide.checklist import ChecklistItem
    from rung.decide.targets import Assessment

_ITEM_RANK = {"readiness": 0, "data-sensitivity": 2, "hallucination": 3, "level-1": 4,
              "level-2": 5, "change-velocity": 9}


@dataclass
class Change:
    """One distinct change that would alter the decision."""

    text: str
    kind: str  # margin | candidates | item
    source: str  # the checklist item id, or "candidates"
    candidates: list[str] = field(default_factory=list)  # labels it concerns, closest first
    targets: list[str] = field(default_factory=list)  # the constraints it moves
    gap: float | None = None  # the closest candidate's summed relative shortfall


def distinct_changes(action: str, items: list[ChecklistItem], assessments: list[Assessment],
                     chosen: Assessment | None) -> list[Change]:
    """The deduplicated, ordered changes (see the module docstring)."""
    from rung.decide.checklist import CANNOT, FIX_LEVEL0, SHIP, SKIP

    groups: dict[tuple[str, ...], list[Assessment]] = {}
    if action != CANNOT:  # until the harness is ready, candidate numbers change nothing
        for a in assessments:
            if a.eligible and a.failing and not (action == SHIP and a is chosen):
                key = tuple(sorted(c.metric for c in a.failing))
                groups.setdefault(key, []).append(a)
    candidate_lines: list[Change] = []
    for key, members in groups.items():
        members.sort(key=lambda a: a.distance)
        best, others = members[0], members[1:]
        text = best.what_would_change()
        if others:
            text += (" (also short on these targets, further off: "
                     + ", ".join(o.label for o in others) + ")")
        candidate_lines.append(Change(text, "candidates", "candidates",
                                      [m.label for m in members], list(key), best.distance[0]))
    candidate_lines.sort(key=lambda c: c.gap if c.gap is not None else float("inf"))
    covered = {a.what_would_change() for ms in groups.values() for a in ms}

    margin: list[Change] = []
    first: list[Change] = []
    rest: list[tuple[int, Change]] = []
    said: set[str] = set()
    for item in items:
        text = item.what_would_change
        if not text or item.verdict == SKIP or text in said or text in covered:
            continue
        said.add(text)
        if action == SHIP and item.id.startswith("level-") and item.verdict == "pass":
            margin.append(Change(text, "margin", item.id,
                                 [chosen.label] if chosen is not None else []))
        elif (action == FIX_LEVEL0 and item.id == "hallucination") or \
                (item.id == "data-sensitivity" and "would pass" in text) or item.id == "readiness":
            first.append(Change(text, "item", item.id))
        else:
            rest.append((_ITEM_RANK.get(item.id, 6), Change(text, "item", item.id)))
    rest.sort(key=lambda r: r[0])
    tail = [c for r, c in rest if r >= 9]
    middle = [c for r, c in rest if r < 9]
    return margin + first + candidate_lines + middle + tail
