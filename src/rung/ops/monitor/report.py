"""`rung monitor --report`: one self-contained HTML page (inline CSS and SVG, no JavaScript) of
live traffic over time, per release and channel: request rate, P50 / P95 latency, refusal rate,
hallucination-flag rate, guardrail blocks and cost per 1k requests, with alert events (red:
firing, green: resolved) and rollout steps (blue) marked on every plot.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from rung.ops.records import TraceRecord, costs, latencies, percentile, rate

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
W, H, PAD_L, PAD_R, PAD_T, PAD_B = 860, 190, 64, 16, 22, 34


@dataclass
class Marker:
    ts: float
    label: str
    kind: str  # alert-firing | alert-resolved | rollout


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%m-%d %H:%M")


def series(records: Sequence[TraceRecord], bucket_s: float) -> dict[str, dict[str, list[tuple[float, float | None]]]]:
    """metric -> "release@channel" -> [(bucket start, value)]."""
    groups: dict[str, list[TraceRecord]] = {}
    for r in records:
        groups.setdefault(f"{r.release[:12] or '-'} @ {r.channel or '-'}"
                          + (f" ({r.arm})" if r.arm not in ("stable", "", None) else ""), []).append(r)
    metrics: dict[str, dict[str, list[tuple[float, float | None]]]] = {
        k: {} for k in ("requests per minute", "P50 latency (ms)", "P95 latency (ms)", "refusal rate",
                        "hallucination-flag rate", "guardrail blocks", "cost per 1k requests")}
    for name, recs in sorted(groups.items()):
        buckets: dict[int, list[TraceRecord]] = {}
        for r in recs:
            buckets.setdefault(int(r.ts // bucket_s), []).append(r)
        for b in sorted(buckets):
            rs, t = buckets[b], b * bucket_s
            lat = latencies(rs)
            k_ref, n_ref = rate(rs, "refused")
            k_h, n_h = rate(rs, "hallucination")
            c = costs(rs)
            vals = {"requests per minute": len(rs) / (bucket_s / 60.0),
                    "P50 latency (ms)": percentile(lat, 50), "P95 latency (ms)": percentile(lat, 95),
                    "refusal rate": k_ref / n_ref if n_ref else None,
                    "hallucination-flag rate": k_h / n_h if n_h else None,
                    "guardrail blocks": float(sum(r.blocked for r in rs)),
                    "cost per 1k requests": (sum(c) / len(c) * 1000.0) if c else None}
            for k, v in vals.items():
                metrics[k].setdefault(name, []).append((t, v))
    return metrics


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = math.floor(lo / step) * step
    out, v = [], start
    while v <= hi + step * 1e-9:
        out.append(round(v, 10))
        v += step
    return out


def _fmt(v: float) -> str:
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    return f"{v:.3f}".rstrip("0").rstrip(".") or "0"


def chart(title: str, data: dict[str, list[tuple[float, float | None]]], t0: float, t1: float,
          markers: Sequence[Marker], colours: dict[str, str]) -> str:
    """An SVG line chart of several series over [t0, t1] with vertical markers."""
    vals = [v for pts in data.values() for _, v in pts if v is not None]
    hi = max(vals) if vals else 1.0
    ticks = _ticks(0.0, hi * 1.1 if hi > 0 else 1.0)
    top = ticks[-1]
    iw, ih = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    span = max(t1 - t0, 1.0)

    def x(t: float) -> float:
        return PAD_L + (t - t0) / span * iw

    def y(v: float) -> float:
        return PAD_T + ih - (v / top) * ih if top else PAD_T + ih

    out = [f'<svg class="chart" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" '
           f'aria-label="{html.escape(title)}"><title>{html.escape(title)}</title>',
           f'<text x="{PAD_L}" y="14" class="ct">{html.escape(title)}</text>',
           f'<rect x="{PAD_L}" y="{PAD_T}" width="{iw}" height="{ih}" class="plot"/>']
    for tv in ticks:
        out.append(f'<line x1="{PAD_L}" x2="{PAD_L + iw}" y1="{y(tv):.1f}" y2="{y(tv):.1f}" class="grid"/>'
                   f'<text x="{PAD_L - 6}" y="{y(tv) + 4:.1f}" class="yl">{_fmt(tv)}</text>')
    for tt in _ticks(t0, t1, 6):
        if t0 <= tt <= t1:
            out.append(f'<text x="{x(tt):.1f}" y="{H - 14}" class="xl">{_when(tt)}</text>')
    for m in markers:
        if t0 <= m.ts <= t1:
            out.append(f'<line x1="{x(m.ts):.1f}" x2="{x(m.ts):.1f}" y1="{PAD_T}" y2="{PAD_T + ih}" '
                       f'class="mk {m.kind}"><title>{html.escape(m.label)}</title></line>')
    for name, pts in data.items():
        col = colours.get(name, "#333")
        path, segs = [], []
        for t, v in pts:
            if v is None:
                if path:
                    segs.append(path)
                path = []
                continue
            path.append(f"{x(t):.1f},{y(v):.1f}")
        if path:
            segs.append(path)
        for seg in segs:
            if len(seg) == 1:
                cx, cy = seg[0].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{col}"/>')
            else:
                out.append(f'<polyline points="{" ".join(seg)}" fill="none" stroke="{col}" stroke-width="1.8"/>')
    if not vals:
        out.append(f'<text x="{PAD_L + iw / 2}" y="{PAD_T + ih / 2}" class="empty">not measured</text>')
    out.append("</svg>")
    return "".join(out)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1b1b1b;background:#fafafa}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:22px 0 8px}
.meta{color:#555;font-size:13px}
.chart{display:block;margin:8px 0;background:#fff;border:1px solid #ddd;border-radius:4px}
.ct{font-size:13px;font-weight:600;fill:#222} .plot{fill:#fff;stroke:#ccc}
.grid{stroke:#eee} .yl{font-size:10px;fill:#666;text-anchor:end} .xl{font-size:10px;fill:#666;text-anchor:middle}
.empty{font-size:12px;fill:#999;text-anchor:middle}
.mk{stroke-width:2} .alert-firing{stroke:#d62728} .alert-resolved{stroke:#2ca02c;stroke-dasharray:4 3}
.rollout{stroke:#1f5fbf;stroke-dasharray:6 3}
.legend span{display:inline-block;margin-right:16px;font-size:13px}
.legend i{display:inline-block;width:14px;height:4px;margin-right:5px;vertical-align:middle}
table{border-collapse:collapse;font-size:13px;background:#fff} td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}
th{background:#f0f0f0} .firing{color:#b00000;font-weight:600} .resolved{color:#1a7f1a}
"""


def render_monitor_report(records: Sequence[TraceRecord], *, alerts: Sequence[dict[str, Any]] = (),
                          rollout_events: Sequence[dict[str, Any]] = (), bucket_minutes: float = 5.0,
                          title: str = "rung monitor", generated_at: float | None = None) -> str:
    """The page. `alerts`: alert-log entries (AlertEvent.to_dict); `rollout_events`: dicts with
    at (unix seconds), channel, action, weight, reason."""
    bucket_s = bucket_minutes * 60.0
    ts = [r.ts for r in records]
    t0 = min(ts) if ts else 0.0
    t1 = max(ts) if ts else 1.0
    t0 = math.floor(t0 / bucket_s) * bucket_s
    t1 = max(t1, t0 + bucket_s)
    markers = [Marker(a["at"], f"{a['status']} {a['rule']}: {a.get('detail', '')}",
                      "alert-firing" if a["status"] == "firing" else "alert-resolved") for a in alerts]
    markers += [Marker(e["at"], f"rollout {e.get('action')} {e.get('weight')}% on {e.get('channel')}: "
                       f"{e.get('reason', '')}", "rollout") for e in rollout_events]
    data = series(records, bucket_s)
    names = sorted({n for d in data.values() for n in d})
    colours = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}
    body = [f"<h1>{html.escape(title)}</h1>",
            f'<p class="meta">{len(records)} requests from {_when(t0)} to {_when(t1)} UTC, '
            f"{bucket_minutes:g}-minute buckets; generated {_when(generated_at or t1)} UTC. "
            "Red lines: alerts firing; green dashed: resolved; blue dashed: rollout steps.</p>",
            '<div class="legend">' + "".join(
                f'<span><i style="background:{colours[n]}"></i>{html.escape(n)}</span>' for n in names)
            + "</div>"]
    for metric, d in data.items():
        body.append(chart(metric, d, t0, t1, markers, colours))
    body.append("<h2>Alert events</h2>")
    if alerts:
        rows = "".join(
            f'<tr><td>{_when(a["at"])}</td><td class="{html.escape(a["status"])}">{html.escape(a["status"])}'
            f'{" (repeat)" if a.get("repeat") else ""}</td><td>{html.escape(a["rule"])}</td>'
            f'<td>{html.escape(a.get("severity", ""))}</td><td>{html.escape(str(a.get("release", ""))[:12])}</td>'
            f'<td>{html.escape(a.get("channel", ""))}</td><td>{html.escape(a.get("detail", ""))}</td></tr>'
            for a in alerts)
        body.append("<table><tr><th>at (UTC)</th><th>status</th><th>rule</th><th>severity</th>"
                    f"<th>release</th><th>channel</th><th>detail</th></tr>{rows}</table>")
    else:
        body.append('<p class="meta">none</p>')
    body.append("<h2>Rollout events</h2>")
    if rollout_events:
        rows = "".join(
            f'<tr><td>{_when(e["at"])}</td><td>{html.escape(str(e.get("channel", "")))}</td>'
            f'<td>{html.escape(str(e.get("action", "")))}</td><td>{html.escape(str(e.get("weight", "")))}%</td>'
            f'<td>{html.escape(str(e.get("reason", "")))}</td></tr>' for e in rollout_events)
        body.append("<table><tr><th>at (UTC)</th><th>channel</th><th>action</th><th>weight</th>"
                    f"<th>reason</th></tr>{rows}</table>")
    else:
        body.append('<p class="meta">none</p>')
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>")


@dataclass
class MonitorPage:
    """What `write_monitor_page` wrote: the page and what it shows."""

    path: Any  # pathlib.Path
    requests: int
    alerts: int
    release_events: int


def write_monitor_page(config: Any, store: Any, path: Any, since: float, *, traces: Any = None,
                       channel: str | None = None) -> MonitorPage:
    """The monitor page of a project (`rung monitor --report`, `rung demo`): its traces since
    `since` (the gateway's store, or the JSONL file `traces`), the alert log's events and the
    channels' promotions, rollbacks and rollout steps, written to `path`. `config` is a
    RungConfig, `store` a ReleaseStore."""
    from pathlib import Path

    from rung.ops.monitor.notify import read_log
    from rung.ops.rollout.state import ROLLOUT_KIND, iso_seconds
    from rung.ops.tracesource import load_records

    records = load_records(config, since=since, file=traces, channel=channel)
    alerts = [a for a in (read_log(config.resolve(config.monitor.log)) if config.monitor.log else [])
              if a.get("at", 0) >= since and (channel is None or str(a.get("channel", "")).split("@")[0] == channel)]
    rollout_events = []
    for e in store.events():
        if e.kind in (ROLLOUT_KIND, "promote", "rollback") and (channel is None or e.channel.split("@")[0] == channel):
            at_s = iso_seconds(e.at)
            if at_s >= since:
                rollout_events.append({"at": at_s, "channel": e.channel,
                                       "action": e.flag if e.kind == ROLLOUT_KIND else e.kind,
                                       "weight": e.value if e.kind == ROLLOUT_KIND else "100",
                                       "reason": e.reason})
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_monitor_report(records, alerts=alerts, rollout_events=rollout_events,
                                         bucket_minutes=config.monitor.bucket_minutes,
                                         title=f"rung monitor: {config.project}"), encoding="utf-8")
    return MonitorPage(out, len(records), len(alerts), len(rollout_events))
