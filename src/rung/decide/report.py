"""The decision report: `decision.html` (self-contained: inline CSS and SVG, no script, nothing
fetched), `decision.md` (the same content, for a pull request) and `decision.json`.

Built for a lead who reads for 30 seconds. The first screen (1280x800) holds the decision in one
sentence, why level 0 fails and what to do about it (rung.decide.diagnose), the ladder (levels
as rungs, each candidate a mark per target, met or missed, with its interval), the quality vs
P95 latency vs cost plot (rung.decide.figures) and the top three changes that would alter the
decision (one line per distinct change, rung.decide.changes). Then the checklist, one line per
item with its evidence folded (`<details>`), the candidates in a table that fits 1280 px, which
latency each number is (as served by the latency probe, or batched evaluation), the other plots,
the cost model's formulas, readiness, the per-tag breakdown, training curves of tuned artifacts
and the worst failing cases with their traces. It reuses the run report's pieces (styles, failure
view, plots, number format) from rung.evals.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rung.evals.plots import colour, latency_boxes, line_chart, metric_bars
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
    from rung.decide.brief import decision_sentence, one_line, top_changes
    from rung.decide.figures import decision_scatter, ladder_svg

    env = template_env("rung.decide", "rung.evals")
    env.filters["one_line"] = one_line
    summaries = [a.evidence.summary for a in decision.assessments]
    plots = []
    if summaries:
        plots += [metric_bars(summaries, n) for n in ("task_success", "hallucination")
                  if any(n in s.metrics for s in summaries)]
        plots.append(latency_boxes(summaries))
    return env.get_template("decision.html.j2").render(
        title=title,
        generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        d=decision,
        sentence=decision_sentence(decision),
        top=top_changes(decision),
        more_changes=decision.changes[len(top_changes(decision)):],
        ladder=ladder_svg(decision) if decision.assessments else "",
        scatter=decision_scatter(decision) if decision.assessments else "",
        candidates=[_candidate_view(i, a) for i, a in enumerate(decision.assessments)],
        latency=_latency_note(decision),
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
    s = e.summary
    return {"index": i + 1, "colour": colour(i), "label": a.label, "candidate": a.candidate,
            "level": a.level, "run_id": e.run_id, "model": e.model or e.model_id,
            "self_hosted": e.self_hosted, "excluded": a.excluded, "passed": a.passed,
            "parts": " + ".join(e.parts) or "model only", "metrics": chosen_metrics,
            "p50": e.p50_ms, "p95": e.p95_ms, "served": e.served,
            "batched_p95": s.p95_latency_ms, "throughput": s.throughput_rps,
            "batch_size": s.throughput_batch_size, "latency_basis": e.latency_basis,
            "tokens_in": s.tokens_in_mean, "tokens_out": s.tokens_out_mean, "cost": a.cost,
            "checks": a.checks, "notes": e.notes, "failing": [c.metric for c in a.failing],
            "artifact": e.artifact, "gain": e.gain, "safety": s.safety_violations,
            "diagnosis": e.diagnosis}


def _latency_note(d: Decision) -> dict[str, Any]:
    """Which latency each number is: served (probe) for how many candidates, with what settings."""
    served = [a for a in d.assessments if a.evidence.served]
    conc = sorted({a.evidence.summary.served_concurrency for a in served
                   if a.evidence.summary.served_concurrency})
    ns = sorted({len(a.evidence.summary.served_latencies_ms) for a in served})
    batches = sorted({a.evidence.summary.throughput_batch_size for a in d.assessments
                      if a.evidence.summary.throughput_batch_size})
    return {"served": len(served), "total": len(d.assessments),
            "concurrency": "/".join(str(c) for c in conc), "n": "/".join(str(n) for n in ns),
            "batch": "/".join(str(b) for b in batches),
            "batched_only": [a.label for a in d.assessments if not a.evidence.served]}


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
    """The report's content in Markdown (GitHub renders the `<details>` folds): the decision,
    why level 0 fails, the ladder as a table, the top changes, the checklist one line per item,
    the candidates and which latency each number is."""
    from rung.decide.brief import decision_sentence, one_line, top_changes
    from rung.decide.figures import COLUMNS, short_value

    out = [f"## {md_escape(title)}", "", f"**{md_escape(decision_sentence(d))}**", ""]
    if d.diagnosis is not None:
        out += [f"**Why level 0 fails:** {md_escape(d.diagnosis.sentence)}. "
                f"**Do:** {md_escape(d.diagnosis.advice)}.", ""]
    if d.assessments:
        metrics = [m for m in COLUMNS if any(a.check(m) for a in d.assessments)]
        out += ["### The ladder", "",
                "| rung | candidate | " + " | ".join(COLUMNS[m] for m in metrics) + " |",
                "|---|---|" + "---|" * len(metrics)]
        for a in sorted(d.assessments, key=lambda a: -a.level):
            mark = ""
            if a.candidate == d.candidate:
                mark = " ◀ ship" if d.action == "ship" else " ◀ closest"
            name = md_escape(a.candidate) + mark + ("" if a.eligible else " (excluded)")
            cells = []
            for m in metrics:
                ch = a.check(m)
                if ch is None:
                    cells.append("–")
                    continue
                text = f"{'✓' if ch.passed else '✗'} {short_value(m, ch.value)}"
                if ch.ci is not None and m != "p95_latency_ms":
                    text += f" [{short_value(m, ch.ci[0])}, {short_value(m, ch.ci[1])}]"
                cells.append(text)
            out.append(f"| L{a.level} | {name} | " + " | ".join(cells) + " |")
        out += ["", "✓ met, ✗ missed; [95% interval]. " + _latency_line(d), ""]
    top = top_changes(d)
    if top:
        out += ["### What would change the decision", ""]
        out += [f"{i}. {md_escape(c.text)}" for i, c in enumerate(top, 1)]
        rest = d.changes[len(top):]
        if rest:
            out += ["", f"<details><summary>{len(rest)} more</summary>", ""]
            out += [f"- {md_escape(c.text)}" for c in rest]
            out += ["", "</details>"]
        out.append("")
    out += ["### Checklist", ""]
    for i, item in enumerate(d.items, 1):
        glyph = {"pass": "✓", "fail": "✗", "stop": "■", "skip": "·", "info": "i"}.get(item.verdict, "")
        out += [f"<details><summary>{i}. {glyph} {item.verdict.upper()} · <b>{md_escape(item.id)}</b>"
                f" — {md_escape(one_line(item.finding))}</summary>", ""]
        out += [f"*{md_escape(item.question)}*", "", md_escape(item.finding), ""]
        out += [f"- {md_escape(x)}" for x in item.details]
        for r in item.evidence:
            ci = f" [{fmt_num(r.ci[0])}, {fmt_num(r.ci[1])}]" if r.ci else ""
            n = f" n={r.n}" if r.n is not None else ""
            who = f" ({md_escape(r.candidate)}, run {md_escape(r.run_id)})" if r.candidate else ""
            out.append(f"- `{md_escape(r.metric)}` = {fmt_num(r.value)}{ci}{n}{who}")
        if item.constraint:
            out.append(f"- constraint: {md_escape(item.constraint)}")
        if item.what_would_change:
            out.append(f"- what would change it: {md_escape(item.what_would_change)}")
        out += ["", "</details>"]
    if d.assessments:
        out += ["", "### Candidates", "",
                "| candidate | level | task_success [95% CI] | hallucination [95% CI] | P95 ms "
                "| batched P95 ms | req/s batched | cost / 1M req | passes |",
                "|---|---|---|---|---|---|---|---|---|"]
        for a in d.assessments:
            e = a.evidence
            p95 = fmt_num(e.p95_ms) + (" (served)" if e.served else " (batched)")
            passes = "excluded" if not a.eligible else ("yes" if a.passed else "no")
            out.append(f"| {md_escape(a.candidate)} | {a.level} | {_ci(e, 'task_success')}"
                       f" | {_ci(e, 'hallucination')} | {p95} | {fmt_num(e.batched_p95_ms)} | "
                       f"{fmt_num(e.summary.throughput_rps)} | "
                       f"{fmt_num(a.cost.total_per_million)}{'' if a.cost.complete else '*'} | "
                       f"{passes} |")
        out += ["", _latency_line(d)]
        if any(not a.cost.complete for a in d.assessments):
            out += ["", "\\* inference only: set constraints.requests_per_month to spread training"]
    if d.notes:
        out += ["", *[f"> {md_escape(n)}" for n in d.notes]]
    return "\n".join(out) + "\n"


def _latency_line(d: Decision) -> str:
    note = _latency_note(d)
    text = ("P95 is latency as served: the run's latency probe, " + f"{note['n']} sampled cases, "
            f"{note['concurrency']} request(s) at a time, uncached model") if note["served"] else ""
    if note["batched_only"]:
        text += ("; " if text else "") + ("P95 from the batched evaluation (each case waited for "
                                          "its batch; no probe) for " + ", ".join(note["batched_only"]))
    batch = f" of {note['batch']}" if note["batch"] else ""
    return (text + f". Batched P95 and req/s: the evaluation, in batches{batch} (a throughput "
            "figure; the cost model uses it).")


def _ci(e: Evidence, name: str) -> str:
    m = e.metric(name)
    if m is None:
        return "not measured"
    return f"{fmt_num(m.mean)} [{fmt_num(m.ci_low)}, {fmt_num(m.ci_high)}]"
