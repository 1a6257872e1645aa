"""The decision report: `decision.html` (self-contained: inline CSS and SVG, no script, nothing
fetched) and `decision.md` (for a pull request).

The page opens with the decision in plain words, then the checklist with the numbers behind each
item, the candidates (quality, latency, cost per level) as a table and plots, the cost model's
formulas, the per-tag breakdown, training curves of tuned artifacts (their `metrics.jsonl`) and
the worst failing cases with their traces. It reuses the run report's pieces (styles, failure
view, plots, number format) from rung.evals.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rung.evals.plots import colour, latency_boxes, line_chart, metric_bars, quality_scatter
from rung.evals.report import failing_cases, fmt_num, md_escape, template_env
from rung.text.jsonx import json_objects

if TYPE_CHECKING:
    from rung.decide.evidence import Evidence
    from rung.decide.recommend import Decision
    from rung.evals.types import RunResult

TAG_METRICS = ("task_success", "hallucination", "refusal_correct", "schema_valid")
_STEP_KEYS = ("step", "global_step")
_NOT_SERIES = frozenset({"step", "global_step", "epoch", "time", "timestamp", "elapsed_s",
                         "tokens_per_s", "lr", "learning_rate"})


@dataclass
class DecisionPaths:
    html: Path
    markdown: Path
    json: Path


def write_decision_report(decision: Decision, out_dir: Path, *,
                          runs: dict[str, RunResult] | None = None, title: str | None = None,
                          max_failures: int = 10, stem: str = "decision") -> DecisionPaths:
    """Write <stem>.html, <stem>.md and <stem>.json (default decision.*) into `out_dir`
    (created if missing)."""
    from rung.fileio import output_dir

    out_dir = output_dir(out_dir, "report folder")  # OutputError naming it when it cannot be
    paths = DecisionPaths(out_dir / f"{stem}.html", out_dir / f"{stem}.md",
                          out_dir / f"{stem}.json")
    title = title or "rung decision"
    paths.html.write_text(render_html(decision, runs or {}, title=title,
                                      max_failures=max_failures), encoding="utf-8")
    paths.markdown.write_text(render_markdown(decision, title=title), encoding="utf-8")
    paths.json.write_text(json.dumps(decision.to_dict(), indent=2, ensure_ascii=False,
                                     default=str) + "\n", encoding="utf-8")
    return paths


# ---- HTML ------------------------------------------------------------------------------------


def render_html(decision: Decision, runs: dict[str, RunResult], *, title: str,
                max_failures: int = 10) -> str:
    env = template_env("rung.decide", "rung.evals")
    summaries = [a.evidence.summary for a in decision.assessments]
    labels = [a.label for a in decision.assessments]
    costs = [a.cost.total_per_million for a in decision.assessments]
    plots = []
    if summaries:
        plots.append(quality_scatter(summaries, labels=labels, costs=costs, cost_unit="1M"))
        plots += [metric_bars(summaries, n) for n in ("task_success", "hallucination")
                  if any(n in s.metrics for s in summaries)]
        plots.append(latency_boxes(summaries))
    return env.get_template("decision.html.j2").render(
        title=title,
        generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        d=decision,
        candidates=[_candidate_view(i, a) for i, a in enumerate(decision.assessments)],
        plots=plots,
        tags=_tag_rows(decision),
        tag_metrics=[m for m in TAG_METRICS if any(m in s.metrics for s in summaries)],
        curves=[c for c in (_training_curve(a.evidence) for a in decision.assessments) if c],
        failures=_failures(decision, runs, max_failures),
    )


def _candidate_view(i: int, a: Any) -> dict[str, Any]:
    e = a.evidence
    chosen_metrics = {}
    for name in ("task_success", "hallucination", "schema_valid", "refusal_correct",
                 "context_recall"):
        m = e.metric(name)
        chosen_metrics[name] = None if m is None else {"mean": m.mean, "lo": m.ci_low,
                                                       "hi": m.ci_high, "n": m.n}
    return {"index": i + 1, "colour": colour(i), "label": a.label, "candidate": a.candidate,
            "level": a.level, "run_id": e.run_id, "model": e.model or e.model_id,
            "self_hosted": e.self_hosted, "excluded": a.excluded, "passed": a.passed,
            "parts": " + ".join(e.parts) or "model only", "metrics": chosen_metrics,
            "p50": e.p50_ms, "p95": e.p95_ms, "tokens_in": e.summary.tokens_in_mean,
            "tokens_out": e.summary.tokens_out_mean, "cost": a.cost,
            "checks": a.checks, "notes": e.notes,
            "artifact": e.artifact, "gain": e.gain, "safety": e.summary.safety_violations}


def _tag_rows(decision: Decision) -> list[dict[str, Any]]:
    tags = sorted({t for a in decision.assessments for t in a.evidence.summary.tags})
    rows = []
    for tag in tags:
        cells = []
        for a in decision.assessments:
            ts = a.evidence.summary.tags.get(tag)
            cells.append(None if ts is None else {"n": ts.n, "means": ts.means})
        rows.append({"tag": tag, "cells": cells})
    return rows


def read_training_curve(path: str | Path) -> dict[str, list[tuple[float, float]]]:
    """Series of a metrics.jsonl: every numeric key of its lines against the step."""
    series: dict[str, list[tuple[float, float]]] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return series
    for row in json_objects(lines):
        step = next((row[k] for k in _STEP_KEYS if isinstance(row.get(k), (int, float))), None)
        if step is None:
            continue
        flat = dict(row)
        for k, v in row.items():  # {"step": 4, "eval": {"task_success": 0.5}} -> eval_task_success
            if isinstance(v, dict):
                flat.update({f"{k}_{kk}": vv for kk, vv in v.items()})
        for k, v in flat.items():
            if k not in _NOT_SERIES and k.rsplit("_", 1)[-1] not in ("n", "samples") \
                    and isinstance(v, (int, float)) and not isinstance(v, bool):
                series.setdefault(k, []).append((float(step), float(v)))
    return series


def _training_curve(e: Evidence) -> dict[str, Any] | None:
    if e.artifact is None or e.artifact.metrics_path is None:
        return None
    series = read_training_curve(e.artifact.metrics_path)
    if not series:
        return None
    loss = {k: v for k, v in series.items() if "loss" in k}
    other = {k: v for k, v in series.items() if "loss" not in k}
    svgs = [line_chart(f"{e.candidate}: loss", loss)] if loss else []
    svgs += [line_chart(f"{e.candidate}: eval", dict(list(other.items())[:4]))] if other else []
    return {"candidate": e.candidate, "path": e.artifact.metrics_path, "svgs": svgs}


def _failures(decision: Decision, runs: dict[str, RunResult], limit: int) -> list[dict[str, Any]]:
    """Worst failing cases of the chosen (or closest) candidate first, then of the others."""
    order = sorted(decision.assessments, key=lambda a: a.candidate != decision.candidate)
    out = []
    for a in order:
        run = runs.get(a.evidence.run_id)
        if run is None:
            continue
        view = failing_cases(run, limit)
        view.update(label=a.label, show_epoch=a.evidence.summary.epochs > 1)
        out.append(view)
    return out


# ---- Markdown --------------------------------------------------------------------------------


def render_markdown(d: Decision, *, title: str = "rung decision") -> str:
    out = [f"## {md_escape(title)}", "", f"**{md_escape(d.headline)}**", ""]
    out += ["| # | item | verdict | finding |", "|---|---|---|---|"]
    for i, item in enumerate(d.items, 1):
        out.append(f"| {i} | {md_escape(item.id)} | {item.verdict.upper()} | "
                   f"{md_escape(item.finding)} |")
    if d.assessments:
        out += ["", "### Candidates", "",
                "| candidate | level | task_success [95% CI] | hallucination [95% CI] | P95 ms "
                "| cost / 1M req | eligible | passes |", "|---|---|---|---|---|---|---|---|"]
        for a in d.assessments:
            out.append(f"| {md_escape(a.candidate)} | {a.level} | {_ci(a.evidence, 'task_success')}"
                       f" | {_ci(a.evidence, 'hallucination')} | {fmt_num(a.evidence.p95_ms)} | "
                       f"{fmt_num(a.cost.total_per_million)}{'' if a.cost.complete else '*'} | "
                       f"{'yes' if a.eligible else 'no'} | {'yes' if a.passed else 'no'} |")
        if any(not a.cost.complete for a in d.assessments):
            out += ["", "\\* inference only: set constraints.requests_per_month to spread training"]
    if d.what_would_change:
        out += ["", "### What would change the decision", ""]
        out += [f"- {md_escape(w)}" for w in d.what_would_change]
    if d.notes:
        out += ["", *[f"> {md_escape(n)}" for n in d.notes]]
    return "\n".join(out) + "\n"


def _ci(e: Evidence, name: str) -> str:
    m = e.metric(name)
    if m is None:
        return "not measured"
    return f"{fmt_num(m.mean)} [{fmt_num(m.ci_low)}, {fmt_num(m.ci_high)}]"
