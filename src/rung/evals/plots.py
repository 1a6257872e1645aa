"""Inline SVG plots for the report, drawn in plain python (no matplotlib, no JavaScript).

Every function returns an `<svg>` element as a string; all text placed in it is escaped, so it
can be put in the page as-is. Runs are told apart by colour (`PALETTE`, in run order) and label.
"""

from __future__ import annotations

import math
from html import escape

import numpy as np

from rung.evals.aggregate import RunSummary

PALETTE = ["#3566b5", "#d9822b", "#2e9e6a", "#b53561", "#7b5cc4", "#8a8a2e", "#2a9bb5", "#6b6b6b"]
FONT = 'font-family="system-ui, sans-serif"'


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def run_label(s: RunSummary) -> str:
    return f"{s.candidate} ({s.run_id})" if s.candidate else s.run_id


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round tick values covering [lo, hi]."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    v = start
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 10))
        v += step
    if ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}"


def _text(x: float, y: float, s: str, size: int = 11, anchor: str = "middle",
          extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'{FONT} {extra}>{escape(s)}</text>')


def _open(width: int, height: int, title: str, cls: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot {cls}" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
            f'<rect width="{width}" height="{height}" fill="#fff"/>'
            + _text(width / 2, 16, title, 13, extra='font-weight="600"'))


def metric_bars(summaries: list[RunSummary], name: str, width: int = 300,
                height: int = 200) -> str:
    """One metric: a bar per run (its mean) with the 95% bootstrap interval as an error bar."""
    ms = [s.metrics.get(name) for s in summaries]
    arrow = "higher is better" if next((m.higher_is_better for m in ms if m), True) \
        else "lower is better"
    out = [_open(width, height, f"{name} ({arrow})", "metric-bars")]
    left, right, top, bottom = 44, 10, 28, 26
    ph, pw = height - top - bottom, width - left - right
    unit = all(m is None or m.unit_interval for m in ms)
    top_v = 1.0 if unit else max([m.ci_high or m.mean or 0.0 for m in ms if m] + [1e-9])
    ticks = nice_ticks(0.0, top_v, 4)
    vmax = ticks[-1]

    def y(v: float) -> float:
        return top + ph * (1.0 - v / vmax)

    for t in ticks:
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
                   f'stroke="#e3e3e3"/>')
        out.append(_text(left - 4, y(t) + 4, _fmt(t), 10, "end"))
    slot = pw / max(len(ms), 1)
    bw = min(48.0, slot * 0.6)
    for i, m in enumerate(ms):
        cx = left + slot * (i + 0.5)
        out.append(_text(cx, height - 8, f"run {i + 1}", 10))
        if m is None or m.mean is None:
            out.append(_text(cx, y(0) - 6, "not measured", 10, extra='fill="#888"'))
            continue
        out.append(f'<rect class="bar" x="{cx - bw / 2:.1f}" y="{y(m.mean):.1f}" '
                   f'width="{bw:.1f}" height="{max(y(0) - y(m.mean), 0.5):.1f}" '
                   f'fill="{colour(i)}" opacity="0.85"><title>{escape(run_label(summaries[i]))}: '
                   f'{m.mean:.4g} [{m.ci_low:.4g}, {m.ci_high:.4g}] n={m.n}</title></rect>')
        lo, hi = y(m.ci_low), y(m.ci_high)
        out.append(f'<g class="ci" stroke="#222" stroke-width="1.3">'
                   f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{lo:.1f}" y2="{hi:.1f}"/>'
                   f'<line x1="{cx - 6:.1f}" x2="{cx + 6:.1f}" y1="{lo:.1f}" y2="{lo:.1f}"/>'
                   f'<line x1="{cx - 6:.1f}" x2="{cx + 6:.1f}" y1="{hi:.1f}" y2="{hi:.1f}"/></g>')
        out.append(_text(cx + bw / 2 + 2, y(m.mean) + 4, _fmt(m.mean), 10, "start"))
    out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(0):.1f}" y2="{y(0):.1f}" '
               f'stroke="#555"/></svg>')
    return "".join(out)


def latency_boxes(summaries: list[RunSummary], width: int = 640) -> str:
    """Latency per run: box = P25..P75, line = median, whiskers = min..max, diamond = P95."""
    row = 34
    left, right, top, bottom = 80, 20, 30, 36
    height = top + bottom + row * max(len(summaries), 1)
    out = [_open(width, height, "latency per request (ms)", "latency-boxes")]
    all_lat = [v for s in summaries for v in s.latencies_ms]
    if not all_lat:
        out.append(_text(width / 2, height / 2, "no latency measured", 12, extra='fill="#888"'))
        return "".join(out) + "</svg>"
    ticks = nice_ticks(0.0, max(all_lat), 6)
    pw = width - left - right

    def x(v: float) -> float:
        return left + pw * v / ticks[-1]

    for t in ticks:
        out.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top - 4}" '
                   f'y2="{height - bottom + 4}" stroke="#e3e3e3"/>')
        out.append(_text(x(t), height - bottom + 18, _fmt(t), 10))
    for i, s in enumerate(summaries):
        cy = top + row * (i + 0.5)
        out.append(_text(left - 8, cy + 4, f"run {i + 1}", 11, "end"))
        if not s.latencies_ms:
            out.append(_text(left + 4, cy + 4, "not measured", 10, "start", 'fill="#888"'))
            continue
        lo, q1, med, q3, p95, hi = np.percentile(s.latencies_ms, [0, 25, 50, 75, 95, 100])
        c = colour(i)
        out.append(f'<g class="box"><title>{escape(run_label(s))}: median {med:.0f} ms, '
                   f'P95 {p95:.0f} ms, n={len(s.latencies_ms)}</title>'
                   f'<line x1="{x(lo):.1f}" x2="{x(hi):.1f}" y1="{cy:.1f}" y2="{cy:.1f}" '
                   f'stroke="{c}"/>'
                   f'<rect x="{x(q1):.1f}" y="{cy - 10:.1f}" width="{max(x(q3) - x(q1), 1):.1f}" '
                   f'height="20" fill="{c}" fill-opacity="0.3" stroke="{c}"/>'
                   f'<line x1="{x(med):.1f}" x2="{x(med):.1f}" y1="{cy - 10:.1f}" '
                   f'y2="{cy + 10:.1f}" stroke="{c}" stroke-width="2.5"/>'
                   f'<path d="M{x(p95):.1f},{cy - 7:.1f} l6,7 l-6,7 l-6,-7 z" fill="#222"/></g>')
    out.append(_text(left + pw / 2, height - 4, "ms (diamond: P95)", 10))
    return "".join(out) + "</svg>"


def quality_scatter(summaries: list[RunSummary], quality: str = "task_success",
                    width: int = 640, height: int = 340, *, labels: list[str] | None = None,
                    costs: list[float | None] | None = None, cost_unit: str = "1k") -> str:
    """Each run as a point: x = P95 latency, y = quality (with its CI), area ~ cost per 1k.

    `labels` replace "run i: candidate"; `costs` (one per summary) replace the runs' measured
    cost per 1k requests, e.g. by the decision's cost model per `cost_unit` requests."""
    out = [_open(width, height, f"{quality} vs P95 latency (area: cost per {cost_unit} requests)",
                 "quality-scatter")]

    def cost_of(i: int, s: RunSummary) -> float | None:
        return costs[i] if costs is not None else s.cost_per_1k_requests

    pts = []
    for i, s in enumerate(summaries):
        m = s.metrics.get(quality)
        if m is not None and m.mean is not None and s.p95_latency_ms is not None:
            pts.append((i, s, m))
    if not pts:
        out.append(_text(width / 2, height / 2, f"needs {quality} and latency", 12,
                         extra='fill="#888"'))
        return "".join(out) + "</svg>"
    left, right, top, bottom = 52, 24, 30, 40
    pw, ph = width - left - right, height - top - bottom
    xt = nice_ticks(0.0, max(s.p95_latency_ms for _, s, _ in pts), 6)
    unit = all(m.unit_interval for _, _, m in pts)
    yt = nice_ticks(0.0, 1.0 if unit else max(m.ci_high for _, _, m in pts), 5)

    def x(v: float) -> float:
        return left + pw * v / xt[-1]

    def y(v: float) -> float:
        return top + ph * (1.0 - v / yt[-1])

    for t in xt:
        out.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{top + ph}" '
                   f'stroke="#eee"/>' + _text(x(t), top + ph + 16, _fmt(t), 10))
    for t in yt:
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
                   f'stroke="#eee"/>' + _text(left - 4, y(t) + 4, _fmt(t), 10, "end"))
    out.append(_text(left + pw / 2, height - 6, "P95 latency (ms)", 11))
    out.append(_text(14, top + ph / 2, quality, 11,
                     extra=f'transform="rotate(-90 14 {top + ph / 2:.1f})"'))
    max_cost = max([cost_of(i, s) or 0.0 for i, s, _ in pts] + [1e-12])
    for i, s, m in pts:
        cost = cost_of(i, s) or 0.0
        r = 5.0 + 13.0 * math.sqrt(cost / max_cost)
        cx, cy = x(s.p95_latency_ms), y(m.mean)
        cost_text = "cost n/a" if cost_of(i, s) is None else f"{cost:.4g}/{cost_unit}"
        out.append(f'<g class="point"><title>{escape(run_label(s))}: {quality} {m.mean:.3g} '
                   f'[{m.ci_low:.3g}, {m.ci_high:.3g}], P95 {s.p95_latency_ms:.0f} ms, '
                   f'{escape(cost_text)}</title>'
                   f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(m.ci_low):.1f}" '
                   f'y2="{y(m.ci_high):.1f}" stroke="{colour(i)}" stroke-width="1.5"/>'
                   f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{r:.1f}" fill="{colour(i)}" '
                   f'fill-opacity="0.6" stroke="{colour(i)}"/></g>')
        anchor = "end" if cx > left + pw * 0.75 else "start"
        dx = -(r + 4) if anchor == "end" else r + 4
        label = labels[i] if labels is not None else f"run {i + 1}: {s.candidate}"
        out.append(_text(cx + dx, cy - 2, label, 11, anchor))
        out.append(_text(cx + dx, cy + 11, cost_text, 10, anchor, 'fill="#555"'))
    return "".join(out) + "</svg>"


def line_chart(title: str, series: dict[str, list[tuple[float, float]]], x_label: str = "step",
               width: int = 420, height: int = 220) -> str:
    """Lines of (x, y) points sharing one pair of axes, e.g. a training curve (loss per step)."""
    out = [_open(width, height, title, "line-chart")]
    pts = [p for ps in series.values() for p in ps]
    if not pts:
        out.append(_text(width / 2, height / 2, "no points", 12, extra='fill="#888"'))
        return "".join(out) + "</svg>"
    left, right, top, bottom = 52, 16, 30, 44
    pw, ph = width - left - right, height - top - bottom
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    xt = nice_ticks(min(0.0, min(xs)), max(xs), 5)
    yt = nice_ticks(min(0.0, min(ys)), max(ys), 4)

    def x(v: float) -> float:
        return left + pw * (v - xt[0]) / (xt[-1] - xt[0])

    def y(v: float) -> float:
        return top + ph * (1.0 - (v - yt[0]) / (yt[-1] - yt[0]))

    for t in xt:
        out.append(_text(x(t), top + ph + 16, _fmt(t), 10))
    for t in yt:
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
                   f'stroke="#eee"/>' + _text(left - 4, y(t) + 4, _fmt(t), 10, "end"))
    out.append(_text(left + pw / 2, height - 18, x_label, 11))
    for i, (name, ps) in enumerate(series.items()):
        ps = sorted(ps)
        path = " ".join(f"{'M' if j == 0 else 'L'}{x(a):.1f},{y(b):.1f}" for j, (a, b) in enumerate(ps))
        out.append(f'<path class="series" d="{path}" fill="none" stroke="{colour(i)}" '
                   f'stroke-width="1.8"><title>{escape(name)}</title></path>')
        out.append(f'<rect x="{left + 110 * i:.0f}" y="{height - 11}" width="10" height="10" '
                   f'fill="{colour(i)}"/>' + _text(left + 110 * i + 14, height - 2, name, 10, "start"))
    return "".join(out) + "</svg>"
