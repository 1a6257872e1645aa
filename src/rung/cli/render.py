"""Rich renderings of run summaries, comparisons and gate results (CLI only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from rung.evals.aggregate import RunSummary
    from rung.evals.compare import Comparison
    from rung.evals.gate import GateResult
    from rung.evals.types import RunInfo


def _num(v: float | None, digits: int = 3) -> str:
    if v is None:
        return "[dim]not measured[/]"
    return f"{v:.{digits}f}"


def level_label(level: int) -> str:
    """A run's level; "?" for outputs made elsewhere (`rung score`: level unknown, stored as -1)."""
    return "?" if level < 0 else str(level)


def summary_table(s: RunSummary) -> Table:
    t = Table(title=f"run {s.run_id} · {s.candidate} (level {level_label(s.level)}) on {s.suite} · "
                    f"{s.n_cases} cases × {s.epochs} epoch(s)", title_justify="left")
    t.add_column("metric", no_wrap=True)
    t.add_column("mean", justify="right")
    t.add_column("95% interval", justify="right")
    t.add_column("n", justify="right")
    t.add_column("not measured", justify="right")
    for name, m in sorted(s.metrics.items(), key=lambda kv: (not kv[1].is_rate, kv[0])):
        arrow = "↑" if m.higher_is_better else "↓"
        interval = "" if m.ci_low is None else f"[{m.ci_low:.3f}, {m.ci_high:.3f}]"
        digits = 3 if m.is_rate else 1
        t.add_row(f"{name} {arrow}", _num(m.mean, digits), interval, str(m.n),
                  str(m.not_measured) if m.not_measured else "")
    t.add_section()
    if s.served_p95_latency_ms is not None:  # the latency probe: one request as it is served
        at = f"{s.served_concurrency} at a time" if s.served_concurrency else ""
        for label, v in (("p50 latency ms, as served", s.served_p50_latency_ms),
                         ("p95 latency ms, as served", s.served_p95_latency_ms)):
            t.add_row(label, _num(v, 0), at, str(len(s.served_latencies_ms)), "")
    batched = f"batch {s.throughput_batch_size}" if s.throughput_batch_size else ""
    for label, v, d in (("p50 latency ms, batched", s.p50_latency_ms, 0),
                        ("p95 latency ms, batched", s.p95_latency_ms, 0),
                        ("p99 latency ms, batched", s.p99_latency_ms, 0)):
        t.add_row(label, _num(v, d), batched, "", "")
    if s.throughput_rps is not None:
        t.add_row("requests/s, batched", _num(s.throughput_rps, 2), batched, "", "")
    t.add_row("cost per 1k requests", _num(s.cost_per_1k_requests, 4), "", "", "")
    if s.errors:
        t.add_row("[red]errors[/]", str(s.errors), "", "", "")
    return t


KEY_METRICS = ("task_success", "hallucination", "refusal_correct", "schema_valid", "safety_violation",
               "hit_at_k")


def tags_table(s: RunSummary, metrics: list[str] | None = None, min_cases: int = 5) -> Table | None:
    """Key rates per tag, for tags with at least min_cases cases (all of them in the report)."""
    tags = {k: v for k, v in s.tags.items() if v.n >= min_cases}
    if not tags:
        return None
    names = metrics or [n for n in KEY_METRICS if n in s.metrics and s.metrics[n].n]
    t = Table(title=f"by tag (tags with ≥ {min_cases} cases)", title_justify="left")
    t.add_column("tag", no_wrap=True)
    t.add_column("n", justify="right")
    for n in names:
        t.add_column(n, justify="right", no_wrap=True)
    for tag, ts in sorted(tags.items()):
        t.add_row(tag, str(ts.n), *[_num(ts.means.get(n), 2) for n in names])
    return t


def runs_table(infos: list[RunInfo]) -> Table:
    t = Table(title="runs", title_justify="left")
    for col in ("id", "candidate", "level", "suite", "status", "created", "model", "git"):
        t.add_column(col, overflow="fold")
    for i in infos:
        status = {"finished": "[green]finished[/]", "failed": "[red]failed[/]"}.get(i.status,
                                                                                  f"[yellow]{i.status}[/]")
        t.add_row(i.id, i.candidate, level_label(i.level), i.suite, status, i.created_at[:19].replace("T", " "),
                  i.model_id, (i.git_commit or "")[:8])
    return t


def comparison_table(c: Comparison) -> Table:
    t = Table(title=f"{c.run_a} ({c.candidate_a}) → {c.run_b} ({c.candidate_b}), paired by case",
              title_justify="left")
    for col in ("metric", "A", "B", "Δ (B−A)", "95% interval", "p", "test", "n", "verdict"):
        t.add_column(col, justify="right" if col not in ("metric", "verdict", "test") else "left")
    for name, d in sorted(c.metrics.items()):
        verdict = {"improved": "[green]improved[/]", "regressed": "[bold red]REGRESSED[/]"}.get(
            d.direction, f"[dim]{d.direction}[/]")
        interval = "" if d.ci_low is None else f"[{d.ci_low:+.3f}, {d.ci_high:+.3f}]"
        t.add_row(name, _num(d.mean_a), _num(d.mean_b),
                  "" if d.delta is None else f"{d.delta:+.3f}", interval,
                  "" if d.p_value is None else f"{d.p_value:.3g}", d.test, str(d.n_pairs), verdict)
    if c.latency_p95 is not None:
        lat = c.latency_p95
        verdict = "[bold red]REGRESSED[/]" if lat.regressed else "[dim]ok[/]"
        t.add_row("p95 latency ms", f"{lat.p95_a:.0f}", f"{lat.p95_b:.0f}", f"{lat.delta:+.0f}",
                  f"[{lat.ci_low:+.0f}, {lat.ci_high:+.0f}]", "", "bootstrap", str(lat.n_pairs), verdict)
    return t


def gate_lines(g: GateResult) -> list[str]:
    out = []
    for line in g.lines:
        color = "green" if line.passed else "red"
        out.append(f"[{color}]{escape(line.message)}[/]")
    verdict = "[bold green]gate passed[/]" if g.passed else "[bold red]gate failed[/]"
    out.append(verdict)
    return out
