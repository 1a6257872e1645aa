"""The run report: one self-contained HTML page (inline CSS and SVG, works offline) and a
Markdown summary for pull-request comments.

`write_report(runs, out_dir)` writes `report.html` and `report.md`. All user text (answers,
prompts, chunks, case ids, candidate names) is escaped by Jinja2's autoescape in the page and by
`md_escape` in the Markdown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rung.core import Score
from rung.evals.aggregate import RUN_AGGREGATES, USAGE_METRICS, RunSummary, aggregate
from rung.evals.compare import Comparison
from rung.evals.gate import GateResult
from rung.evals.plots import colour, latency_boxes, metric_bars, quality_scatter, run_label
from rung.evals.types import CaseResult, RunResult

MAX_TEXT = 5000  # characters of one prompt message / chunk / answer shown in a trace


@dataclass
class ReportPaths:
    html: Path
    markdown: Path


def write_report(runs: list[RunResult], out_dir: Path, *, comparison: Comparison | None = None,
                 gate: GateResult | None = None, title: str | None = None,
                 summaries: list[RunSummary] | None = None, max_failures: int = 50
                 ) -> ReportPaths:
    """Write report.html and report.md for `runs` into `out_dir` (created if missing).

    `summaries` (one per run, same order) avoids aggregating again when the caller has them.
    """
    if not runs:
        raise ValueError("write_report needs at least one run")
    summaries = summaries or [aggregate(r) for r in runs]
    title = title or default_title(summaries)
    from rung.fileio import output_dir

    out_dir = output_dir(out_dir, "report folder")  # OutputError naming it when it cannot be
    paths = ReportPaths(out_dir / "report.html", out_dir / "report.md")
    html = render_html(runs, summaries, comparison=comparison, gate=gate, title=title,
                       max_failures=max_failures)
    paths.html.write_text(html, encoding="utf-8")
    paths.markdown.write_text(render_markdown(summaries, comparison=comparison, gate=gate,
                                              title=title), encoding="utf-8")
    return paths


def default_title(summaries: list[RunSummary]) -> str:
    suites = sorted({s.suite for s in summaries})
    return f"rung report: {', '.join(s.candidate for s in summaries)} on {', '.join(suites)}"


# ---- HTML ------------------------------------------------------------------------------------


def template_env(*packages: str) -> Any:
    """A Jinja environment over the `templates` folders of these packages (first wins), with
    autoescaping, strict undefined variables and the `num` and `tojson_pretty` filters."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.PackageLoader(p, "templates") for p in packages]),
        autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["num"] = fmt_num
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, default=str)
    return env


def render_html(runs: list[RunResult], summaries: list[RunSummary], *,
                comparison: Comparison | None = None, gate: GateResult | None = None,
                title: str = "rung report", max_failures: int = 50) -> str:
    env = template_env("rung.evals")
    names = metric_names(summaries)
    rate_names = [n for n in names if any(s.metrics[n].is_rate for s in summaries
                                          if n in s.metrics)]
    quality = "task_success" if "task_success" in names else (rate_names or ["task_success"])[0]
    plots = [metric_bars(summaries, n) for n in rate_names]
    return env.get_template("report.html.j2").render(
        title=title,
        generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        runs=[_run_view(i, r, s) for i, (r, s) in enumerate(zip(runs, summaries))],
        metric_names=names,
        aggregate_names=list(RUN_AGGREGATES),
        summaries=summaries,
        metric_plots=plots,
        latency_plot=latency_boxes(summaries),
        scatter_plot=quality_scatter(summaries, quality),
        comparison=comparison,
        gate=gate,
        failures=[failing_cases(r, max_failures) for r in runs],
        max_text=MAX_TEXT,
    )


def metric_names(summaries: list[RunSummary]) -> list[str]:
    """Score names over all runs: rates first (in order seen), usage metrics last."""
    seen = list(dict.fromkeys(n for s in summaries for n in s.metrics))
    return [n for n in seen if n not in USAGE_METRICS] + [n for n in seen if n in USAGE_METRICS]


def _run_view(i: int, run: RunResult, s: RunSummary) -> dict[str, Any]:
    info = run.info
    return {
        "index": i + 1, "label": run_label(s), "colour": colour(i), "id": info.id,
        "candidate": info.candidate, "candidate_hash": info.candidate_hash[:12],
        "suite": info.suite, "suite_hash": info.suite_hash[:12], "level": info.level,
        "model_id": info.model_id, "status": info.status, "created_at": info.created_at,
        "epochs": s.epochs, "n_cases": s.n_cases, "n_results": s.n_results,
        "git_commit": (info.git_commit or "")[:12],
    }


def failing_scores(r: CaseResult) -> list[Score]:
    """Scores of a result on the bad side: a rate or share in [0, 1] short of its best value."""
    bad = []
    for s in r.scores:
        if s.value is None or s.name in USAGE_METRICS or not 0.0 <= s.value <= 1.0:
            continue
        if (s.higher_is_better and s.value < 1.0) or (not s.higher_is_better and s.value > 0.0):
            bad.append(s)
    return bad


def severity(r: CaseResult) -> float:
    """How badly a result failed: the distance of each failing score from its best, summed,
    plus 1 when the pipeline errored."""
    total = sum((1.0 - s.value) if s.higher_is_better else s.value for s in failing_scores(r))
    return total + (1.0 if getattr(r.answer, "error", None) else 0.0)


def failing_cases(run: RunResult, limit: int = 50) -> dict[str, Any]:
    """The failing results of a run, worst first, as a view for the template."""
    scored = [(severity(r), i, r) for i, r in enumerate(run.results)]
    failed = [r for sev, _, r in sorted(scored, key=lambda t: (-t[0], t[1])) if sev > 0]
    return {"run_id": run.info.id, "total": len(failed),
            "items": [_failure_view(r) for r in failed[:limit]]}


def _failure_view(r: CaseResult) -> dict[str, Any]:
    a = r.answer
    trace = getattr(a, "trace", None)
    return {
        "case_id": r.case.id, "epoch": r.epoch, "tags": r.case.tags,
        "question": _clip(r.case.question), "reference": _clip(r.case.reference or ""),
        "severity": severity(r),
        "scores": [{"name": s.name, "value": s.value, "reason": s.reason, "details": s.details}
                   for s in failing_scores(r)],
        "answer": _clip(getattr(a, "text", "") or ""),
        "citations": list(getattr(a, "citations", []) or []),
        "error": getattr(a, "error", None),
        "prompt": [{"role": m.get("role", ""), "content": _clip(m.get("content", ""))}
                   for m in (trace.prompt if trace else [])],
        "retrieved": [{"id": c.id, "doc_id": c.doc_id, "score": c.score, "text": _clip(c.text)}
                      for c in (trace.retrieved if trace else [])],
        "tool_calls": [{"name": t.name, "arguments": t.arguments, "result": _clip(t.result),
                        "error": t.error} for t in (trace.tool_calls if trace else [])],
        "events": list(trace.events) if trace else [],
    }


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + f"... ({len(text)} chars)"


def fmt_num(v: float | int | None, digits: int = 3) -> str:
    """A number for display: integers as such, others to `digits` significant digits;
    '-' for not measured."""
    if v is None:
        return "-"
    v = float(v)
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    if abs(v) >= 1000:
        return f"{v:.0f}"
    return f"{v:.{digits}g}"


# ---- Markdown --------------------------------------------------------------------------------


def md_escape(text: str) -> str:
    """User text made safe for a Markdown table cell (no pipes, newlines or raw HTML)."""
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("|", "\\|").replace("\r", " ").replace("\n", " "))


def _interval(s: RunSummary, name: str) -> str:
    m = s.metrics.get(name)
    if m is None:
        return ""
    if m.mean is None:
        return f"not measured ({m.not_measured})"
    text = f"{fmt_num(m.mean)} [{fmt_num(m.ci_low)}, {fmt_num(m.ci_high)}] n={m.n}"
    return text + (f", {m.not_measured} n/m" if m.not_measured else "")


def render_markdown(summaries: list[RunSummary], *, comparison: Comparison | None = None,
                    gate: GateResult | None = None, title: str = "rung report",
                    top: int = 10) -> str:
    """A compact summary for a PR comment: metrics with intervals, gate, top regressions."""
    out = [f"## {md_escape(title)}", ""]
    out += ["| # | run | candidate | level | suite | cases | epochs |",
            "|---|---|---|---|---|---|---|"]
    for i, s in enumerate(summaries):
        out.append(f"| {i + 1} | `{md_escape(s.run_id)}` | {md_escape(s.candidate)} | {s.level} "
                   f"| {md_escape(s.suite)} | {s.n_cases} | {s.epochs} |")
    out += ["", "### Metrics (mean [95% CI])", "",
            "| metric | " + " | ".join(f"run {i + 1}" for i in range(len(summaries))) + " |",
            "|---" * (len(summaries) + 1) + "|"]
    for name in metric_names(summaries):
        arrow = "↑" if summaries[0].higher_is_better(name) else "↓"
        cells = " | ".join(_interval(s, name) for s in summaries)
        out.append(f"| {md_escape(name)} {arrow} | {cells} |")
    for name in RUN_AGGREGATES:
        out.append(f"| {name} | " + " | ".join(fmt_num(s.value(name)) for s in summaries) + " |")
    if gate is not None:
        out += ["", f"### Gate: {'PASS' if gate.passed else 'FAIL'} (`{md_escape(gate.run_id)}`)",
                ""]
        out += [f"- {md_escape(line.message)}" for line in gate.lines] or ["- no thresholds"]
    if comparison is not None:
        out += _markdown_comparison(comparison, top)
    return "\n".join(out) + "\n"


def _markdown_comparison(c: Comparison, top: int) -> list[str]:
    out = ["", f"### Comparison `{md_escape(c.run_a)}` → `{md_escape(c.run_b)}` "
               f"(alpha={c.alpha:g})", ""]
    regs = c.regressions
    if regs:
        out += ["| regression | A | B | delta [95% CI] | p | pairs |", "|---|---|---|---|---|---|"]
        for d in regs[:top]:
            out.append(f"| {md_escape(d.name)} | {fmt_num(d.mean_a)} | {fmt_num(d.mean_b)} | "
                       f"{fmt_num(d.delta)} [{fmt_num(d.ci_low)}, {fmt_num(d.ci_high)}] | "
                       f"{d.p_value:.3g} ({d.test}) | {d.n_pairs} |")
    else:
        out.append("No significant regressions.")
    if c.improvements:
        out += ["", "Improved: " + ", ".join(
            f"{md_escape(d.name)} ({fmt_num(d.delta)}, p={d.p_value:.3g})"
            for d in c.improvements)]
    if c.latency_p95 is not None:
        lat = c.latency_p95
        out += ["", f"P95 latency: {fmt_num(lat.p95_a)} → {fmt_num(lat.p95_b)} ms "
                    f"(delta {fmt_num(lat.delta)} [{fmt_num(lat.ci_low)}, {fmt_num(lat.ci_high)}])"]
    if c.flipped_to_fail:
        ids = c.flipped_cases
        more = f" and {len(ids) - top} more" if len(ids) > top else ""
        out += ["", f"Flipped pass → fail ({len(ids)}): "
                + ", ".join(f"`{md_escape(i)}`" for i in ids[:top]) + more]
    for label, ids in (("only in A", c.only_in_a), ("only in B", c.only_in_b)):
        if ids:
            out += ["", f"Cases {label} ({len(ids)}): "
                    + ", ".join(f"`{md_escape(i)}`" for i in ids[:top])
                    + (" ..." if len(ids) > top else "")]
    if c.notes:
        out += ["", *[f"> {md_escape(n)}" for n in c.notes]]
    return out
