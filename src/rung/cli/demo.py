"""`rung demo`: what `make demo` runs on the bundled example."""

from __future__ import annotations

from pathlib import Path

import typer

from rung.cli._state import console
from rung.cli.main import app


@app.command("demo")
def demo(
    project: Path = typer.Argument(Path("examples/support-desk"), help="Example project folder (with rung.yaml)."),
    sample: int = typer.Option(64, "--sample", min=1, help="Evaluate a fixed sample of N cases, "
                               "spread over the suite's tags (the same cases every time)."),
    all_cases: bool = typer.Option(False, "--all", help="Evaluate every case (slow on a CPU)."),
    output: Path = typer.Option(None, "--output", "-o", help="Report folder (default: PROJECT/.rung/report)."),
) -> None:
    """Evaluate every candidate of the example project on its suite with the embedded offline
    model, compare the simplest with the richest, and write report.html.

    By default a fixed sample of 64 cases spread over the tags keeps the demo to minutes on a
    2-core CPU; --all runs the whole suite. Re-runs answer from the response cache."""
    from rich.table import Table

    from rung.cli.evals import evaluate, print_summary
    from rung.cli._common import load
    from rung.evals.aggregate import aggregate
    from rung.evals.compare import compare
    from rung.evals.gate import evaluate_gate
    from rung.evals.report import write_report

    cfg = load(project)
    con = console()
    if not cfg.candidates:
        raise typer.BadParameter(f"{cfg.source}: no candidates to evaluate")
    ids = None
    if not all_cases:
        from rung.evals.suite import load_suite, spread_sample

        suite_name, suite_cfg = cfg.suite(None)
        cases = load_suite(cfg.resolve(suite_cfg.path), name=suite_name).cases
        ids = [c.id for c in spread_sample(cases, sample)]
        con.print(f"{len(ids)} of {len(cases)} cases, spread over the tags (--all for every case)")
    runs = []
    for name in cfg.candidates:
        con.rule(f"[bold]{name}[/] (level {cfg.candidates[name].effective_level})")
        run = evaluate(cfg, name, None, ids=ids)
        print_summary(run)
        runs.append(run)
    summaries = [aggregate(r) for r in runs]
    comparison = compare(runs[0], runs[-1], alpha=cfg.gate.alpha) if len(runs) > 1 else None
    gate = evaluate_gate(summaries[-1], cfg.gate, comparison=comparison) if cfg.gate.thresholds else None
    out = output or cfg.resolve(".rung/report")
    paths = write_report(runs, out, comparison=comparison, gate=gate, summaries=summaries,
                         title=f"{cfg.project}: candidates compared")
    con.rule("[bold]summary[/]")
    key = ["task_success", "hallucination", "refusal_correct", "answered_when_should",
           "safety_violation", "schema_valid"]
    t = Table()
    t.add_column("candidate")
    t.add_column("run")
    for k in key:
        t.add_column(k, justify="right")
    t.add_column("p95 ms", justify="right")
    for s in summaries:
        vals = []
        for k in key:
            m = s.metrics.get(k)
            vals.append("-" if m is None or m.mean is None else
                        f"{m.mean:.2f} [{m.ci_low:.2f},{m.ci_high:.2f}]")
        t.add_row(s.candidate, s.run_id, *vals, "-" if s.p95_latency_ms is None else f"{s.p95_latency_ms:.0f}")
    con.print(t)
    if gate is not None:
        verdict = "[green]passes[/]" if gate.passed else "[red]fails[/]"
        con.print(f"{summaries[-1].candidate} {verdict} the project's gate "
                  f"({len(gate.failures)} of {len(gate.lines)} checks failing)")
    con.print(f"report: [bold]{paths.html}[/]")
