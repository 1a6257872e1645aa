"""The decision's two pictures, as inline SVG (plain python, no script, every text escaped).

- `ladder_svg`: the ladder itself. Levels are rungs (level 2 on top, level 0 at the bottom); each
  candidate stands on its rung as one row, with one mark per target: the value as a dot on a
  small axis, its 95% interval as a bar, the target as a tick, green when met and red when
  missed (grey: not measured). The chosen (or closest) candidate is marked.
- `decision_scatter`: quality vs P95 latency vs cost: task success (with its interval) against
  P95 latency, the point's area the cost model's cost per 1M requests. A filled point's P95 is
  latency as served (the latency probe); a hollow one's is the batched evaluation's (no probe).
  The budget and the target are drawn as lines; the corner that meets both is shaded.
"""

from __future__ import annotations

import math
from html import escape
from typing import TYPE_CHECKING

from rung.evals.plots import colour, nice_ticks

if TYPE_CHECKING:
    from rung.decide.recommend import Decision
    from rung.decide.targets import Assessment, Check

FONT = 'font-family="system-ui, sans-serif"'
OK, BAD, GREY, INK = "#1f7a4a", "#b3261e", "#9a9a9a", "#1d1d1f"
COLUMNS = {  # target -> column heading
    "task_success": "task success", "hallucination": "hallucination",
    "safety_violations": "safety", "schema_valid": "schema", "refusal_correct": "refusals",
    "p95_latency_ms": "P95 latency", "cost_per_1k": "cost / 1k",
}
LEVELS = {0: "L0 prompt + retrieval + tools", 1: "L1 adapters", 2: "L2 full fine-tune"}


def _text(x: float, y: float, s: str, size: float = 11, anchor: str = "start",
          extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" {FONT} '
            f'{extra}>{escape(s)}</text>')


def _open(width: float, height: float, title: str, cls: str, elem_id: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" id="{elem_id}" class="plot {cls}" '
            f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
            f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
            f'<rect width="{width:.0f}" height="{height:.0f}" fill="#fff"/>')


def short_value(metric: str, v: float | None) -> str:
    if v is None:
        return "n/m"
    if metric == "p95_latency_ms":
        return f"{v / 1000:.2g} s" if v >= 1000 else f"{v:.0f} ms"
    if metric == "safety_violations":
        return f"{v:.0f}"
    if metric == "cost_per_1k":
        return f"{v:.2g}"
    return f"{v:.2f}"


# ---- the ladder ----------------------------------------------------------------------------


def ladder_svg(d: Decision, *, cell: int = 78, row: int = 30) -> str:
    """The ladder with every candidate's marks (see the module docstring)."""
    metrics = [m for m in COLUMNS if any(a.check(m) for a in d.assessments)]
    label_w, rail_w = 226, 18
    width = label_w + cell * max(len(metrics), 1) + 8
    levels = sorted({0, 1, 2} | {a.level for a in d.assessments}, reverse=True)
    head = 34
    height = head + 6
    for lv in levels:
        n = sum(1 for a in d.assessments if a.level == lv)
        height += 18 + (row * n if n else 22)
    out = [_open(width, height, "the ladder: each candidate's targets, met or missed",
                 "ladder", "ladder-svg")]
    out.append(_text(8, 15, "the ladder", 13, extra='font-weight="600"'))
    out.append(_text(96, 15, "● value  ▬ 95% interval  | target  (green: met, red: missed)", 10,
                     "start", 'fill="#666"'))
    for j, m in enumerate(metrics):
        out.append(_text(label_w + cell * j + cell / 2, 28, COLUMNS[m], 10.5, "middle",
                         'fill="#444" font-weight="600"'))
    rail_top, y = head, float(head)
    for lv in levels:
        members = [a for a in d.assessments if a.level == lv]
        # the rung: a bar between the rails, with the level's name
        out.append(f'<rect x="4" y="{y + 4:.1f}" width="{rail_w + 6}" height="5" rx="2" '
                   f'fill="#8a6d3b"/>')
        out.append(_text(rail_w + 16, y + 12, LEVELS.get(lv, f"L{lv}"), 11.5, "start",
                         'font-weight="700" fill="#5b4420"'))
        y += 18
        if not members:
            out.append(_text(rail_w + 26, y + 10, "not evaluated", 10.5, "start", 'fill="#888"'))
            y += 22
            continue
        for a in members:
            out.append(_candidate_row(d, a, metrics, y, row, label_w, cell, rail_w))
            y += row
    # the rails, drawn last so they frame the rungs
    for x in (4, rail_w + 10):
        out.append(f'<line x1="{x}" x2="{x}" y1="{rail_top}" y2="{y:.1f}" stroke="#8a6d3b" '
                   f'stroke-width="3"/>')
    return "".join(out) + "</svg>"


def _candidate_row(d: Decision, a: Assessment, metrics: list[str], y: float, row: int,
                   label_w: int, cell: int, rail_w: int) -> str:
    chosen = a.candidate == d.candidate
    tag = ""
    if chosen:
        tag = "ship" if d.action == "ship" else "closest"
    out = [f'<g class="ladder-row" data-candidate="{escape(a.candidate)}" '
           f'data-passed="{str(a.passed).lower()}">']
    if chosen:
        out.append(f'<rect x="{rail_w + 20}" y="{y + 1:.1f}" width="{label_w + cell * len(metrics) - rail_w - 22}" '
                   f'height="{row - 2}" rx="4" fill="#fff7e0" stroke="#e0c070"/>')
    name = a.candidate if len(a.candidate) <= 24 else a.candidate[:23] + "…"
    colour_ = GREY if not a.eligible else (OK if a.passed else INK)
    out.append(_text(rail_w + 26, y + 13, name, 12, "start",
                     f'fill="{colour_}"' + (' font-weight="700"' if chosen else "")))
    sub = "excluded: data may not leave" if not a.eligible else \
        ("meets every target" if a.passed else f"misses {len(a.failing)} of {len(a.checks)}")
    if tag:
        sub = f"{tag} · {sub}"
    out.append(_text(rail_w + 26, y + 25, sub, 9.5, "start", 'fill="#666"'))
    for j, m in enumerate(metrics):
        ch = a.check(m)
        x0 = label_w + cell * j
        out.append(_mark(ch, x0 + 6, y, cell - 12, row, dim=not a.eligible))
    out.append("</g>")
    return "".join(out)


def _domain(ch: Check) -> tuple[float, float]:
    if ch.metric in ("task_success", "hallucination", "schema_valid", "refusal_correct"):
        return 0.0, 1.0
    hi = max([ch.target * 2, ch.value or 0.0] + ([ch.ci[1]] if ch.ci else []))
    return 0.0, max(hi, 1.0 if ch.metric == "safety_violations" else 1e-9)


def _mark(ch: Check | None, x0: float, y: float, w: float, row: int, *, dim: bool) -> str:
    if ch is None:
        return _text(x0 + w / 2, y + 17, "–", 11, "middle", 'fill="#bbb"')
    met = ch.passed
    col = GREY if dim or ch.value is None else (OK if met else BAD)
    lo, hi = _domain(ch)

    def x(v: float) -> float:
        v = min(max(v, lo), hi)
        return x0 + w * (v - lo) / (hi - lo)

    ay = y + 10
    parts = [f'<g class="mark {"met" if met else "missed"}" data-metric="{ch.metric}">'
             f'<title>{escape(ch.describe())}</title>',
             f'<line x1="{x0:.1f}" x2="{x0 + w:.1f}" y1="{ay:.1f}" y2="{ay:.1f}" stroke="#ddd" '
             f'stroke-width="1"/>',
             f'<line x1="{x(ch.target):.1f}" x2="{x(ch.target):.1f}" y1="{ay - 6:.1f}" '
             f'y2="{ay + 6:.1f}" stroke="#333" stroke-width="1.5"/>']
    if ch.value is None:
        parts.append(_text(x0 + w / 2, y + 25, "not measured", 9, "middle", 'fill="#888"'))
        return "".join(parts) + "</g>"
    if ch.ci is not None:
        parts.append(f'<line x1="{x(ch.ci[0]):.1f}" x2="{x(ch.ci[1]):.1f}" y1="{ay:.1f}" '
                     f'y2="{ay:.1f}" stroke="{col}" stroke-width="4" stroke-opacity="0.45" '
                     f'stroke-linecap="round"/>')
    beyond = ch.value > hi
    cx = x(ch.value)
    parts.append(f'<circle cx="{cx:.1f}" cy="{ay:.1f}" r="3.6" fill="{col}"/>')
    if beyond:  # off the scale: an arrow at the end
        parts.append(f'<path d="M{cx + 4:.1f},{ay - 4:.1f} L{cx + 9:.1f},{ay:.1f} '
                     f'L{cx + 4:.1f},{ay + 4:.1f}" fill="{col}"/>')
    glyph = "✓" if met else "✗"
    parts.append(_text(x0 + w / 2, y + 25, f"{glyph} {short_value(ch.metric, ch.value)}", 10,
                       "middle", f'fill="{col}" font-weight="600"'))
    return "".join(parts) + "</g>"


# ---- quality vs P95 vs cost ---------------------------------------------------------------------


def decision_scatter(d: Decision, width: int = 560, height: int = 300) -> str:
    """Task success vs P95 latency (as served when probed), point area = cost per 1M requests."""
    title = "task success vs P95 latency (area: cost per 1M requests)"
    out = [_open(width, height, title, "decision-scatter", "scatter-svg"),
           _text(8, 15, "quality vs P95 latency vs cost", 13, extra='font-weight="600"')]
    pts = []
    for i, a in enumerate(d.assessments):
        m = a.evidence.metric("task_success")
        if m is not None and m.mean is not None and a.evidence.p95_ms is not None:
            pts.append((i, a, m))
    if not pts:
        out.append(_text(width / 2, height / 2, "needs task_success and latency", 12, "middle",
                         'fill="#888"'))
        return "".join(out) + "</svg>"
    c = d.constraints
    budget, target = c.get("p95_latency_ms"), c.get("task_success_target")
    left, right, top, bottom = 48, 16, 26, 52
    pw, ph = width - left - right, height - top - bottom
    xs = [a.evidence.p95_ms for _, a, _ in pts] + ([budget] if budget else [])
    x_max, x_min = max(xs), max(min(xs), 1e-3)
    log = x_max / x_min > 8  # latencies a decade apart: a log axis keeps the fast ones apart
    if log:
        lo_e, hi_e = math.floor(math.log10(x_min)) - 1, math.ceil(math.log10(x_max)) + 1
        ladder = [m * 10.0 ** e for e in range(lo_e, hi_e + 1) for m in (1, 2, 5)]
        first = max(t for t in ladder if t <= x_min * 0.85)
        last = min(t for t in ladder if t >= x_max * 1.15)
        xt = [t for t in ladder if first <= t <= last]
    else:
        xt = nice_ticks(0.0, x_max * 1.04, 5)
    seconds = xt[-1] >= 5000

    def x(v: float) -> float:
        if log:
            v = max(v, xt[0])
            return left + pw * (math.log10(v) - math.log10(xt[0])) / \
                (math.log10(xt[-1]) - math.log10(xt[0]))
        return left + pw * v / xt[-1]

    def y(v: float) -> float:
        return top + ph * (1.0 - v)

    if budget and target is not None:  # the corner that meets both
        out.append(f'<rect class="meets" x="{left}" y="{top}" width="{x(budget) - left:.1f}" '
                   f'height="{y(target) - top:.1f}" fill="{OK}" fill-opacity="0.07"/>')
    for t in xt:
        lab = f"{t / 1000:g} s" if seconds else f"{t:g}"
        if log and len(xt) > 7 and t not in (xt[0], xt[-1]) and f"{t:g}".lstrip("0.")[:1] == "5":
            lab = ""  # many 1-2-5 ticks: the 5s unlabelled to keep the axis readable
        out.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{top + ph}" '
                   f'stroke="#eee"/>' + _text(x(t), top + ph + 14, lab, 10, "middle"))
    for t in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
                   f'stroke="#eee"/>' + _text(left - 4, y(t) + 4, f"{t:g}", 10, "end"))
    if budget:
        out.append(f'<line class="budget" x1="{x(budget):.1f}" x2="{x(budget):.1f}" y1="{top}" '
                   f'y2="{top + ph}" stroke="#555" stroke-dasharray="4 3"/>'
                   + _text(x(budget) + 3, top + 10, f"budget {short_value('p95_latency_ms', budget)}",
                           9.5, "start", 'fill="#555"'))
    if target is not None:
        out.append(f'<line class="target" x1="{left}" x2="{left + pw}" y1="{y(target):.1f}" '
                   f'y2="{y(target):.1f}" stroke="#555" stroke-dasharray="4 3"/>'
                   + _text(left + pw - 2, y(target) - 3, f"target {target:g}", 9.5, "end",
                           'fill="#555"'))
    served = all(a.evidence.served for _, a, _ in pts)
    any_served = any(a.evidence.served for _, a, _ in pts)
    axis = "P95 latency as served" if served else ("P95 latency (filled: as served; hollow: "
                                                   "batched evaluation)" if any_served
                                                   else "P95 latency (batched evaluation, no probe)")
    out.append(_text(left + pw / 2, height - 22, axis + (" (s" if seconds else " (ms")
                     + (", log scale)" if log else ")"), 10.5, "middle"))
    out.append(_text(12, top + ph / 2, "task success", 10.5, "middle",
                     f'transform="rotate(-90 12 {top + ph / 2:.1f})"'))
    costs = [a.cost.total_per_million for _, a, _ in pts]
    max_cost = max([v for v in costs if v is not None] + [1e-12])
    placed: list[tuple[float, float, float]] = []  # label spans (x0, x1, y)
    for i, a, m in pts:
        e, col = a.evidence, colour(i)
        cost = a.cost.total_per_million
        r = 4.5 + 11.0 * math.sqrt((cost or 0.0) / max_cost)
        cx, cy = x(e.p95_ms), y(m.mean)  # type: ignore[arg-type]
        fill = f'fill="{col}" fill-opacity="0.55"' if e.served else 'fill="#fff" fill-opacity="0"'
        cost_text = "cost n/a" if cost is None else f"{cost:.3g}/1M"
        out.append(f'<g class="point" data-candidate="{escape(a.candidate)}" '
                   f'data-served="{str(e.served).lower()}"><title>{escape(a.label)}: task_success '
                   f'{m.mean:.3f} [{m.ci_low:.3f}, {m.ci_high:.3f}], P95 {e.p95_ms:.0f} ms '
                   f'({escape(e.latency_basis)}), {escape(cost_text)}</title>'
                   f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(m.ci_low):.1f}" y2="{y(m.ci_high):.1f}" '
                   f'stroke="{col}" stroke-width="1.6"/>'
                   f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{r:.1f}" {fill} stroke="{col}" '
                   f'stroke-width="1.8"/></g>')
        anchor = "end" if cx > left + pw * 0.7 else "start"
        dx = -(r + 3) if anchor == "end" else r + 3
        lx = cx + dx
        width_ = 6.0 * len(a.candidate)
        span = (lx - width_, lx) if anchor == "end" else (lx, lx + width_)
        ly = cy + 4
        for step in (0, -12, 12, -24, 24, -36, 36, 48):  # the nearest free line for the label
            ly = cy + 4 + step
            if not any(abs(ly - py) < 11 and span[0] < b and a_ < span[1]
                       for a_, b, py in placed):
                break
        placed.append((span[0], span[1], ly))
        out.append(_text(lx, ly, a.candidate, 10, anchor, f'fill="{col}" font-weight="600"'))
    out.append(_text(left, height - 6, "point area: cost per 1M requests · bar: 95% interval"
                     + ("" if served else " · hollow: P95 from the batched evaluation"), 9.5,
                     "start", 'fill="#666"'))
    return "".join(out) + "</svg>"
