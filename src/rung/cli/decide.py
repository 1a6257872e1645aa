"""`rung decide`: constraints + evidence -> which level to ship, the checklist and the report."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from rung.cli._common import CONFIG_OPTION, STORE_OPTION, SUITE_OPTION, load
from rung.cli._state import console
from rung.cli.main import app

VERDICT_STYLE = {"pass": "green", "fail": "red", "stop": "bold red", "skip": "dim", "info": "cyan"}


@app.command("decide")
def decide(
    config: Path = CONFIG_OPTION,
    suite: str = SUITE_OPTION,
    run: list[str] = typer.Option(None, "--run", "-r", help="Use these run ids (repeatable) instead of "
                                  "each candidate's latest finished run on the suite."),
    as_json: bool = typer.Option(False, "--json", help="Print the decision as JSON (nothing else)."),
    out: Path = typer.Option(None, "--out", "-o", help="Folder for decision.html, decision.md and "
                             "decision.json (default: paths.decisions of rung.yaml)."),
    store: str = STORE_OPTION,
) -> None:
    """Say which level of the ladder to ship (0 prompt + retrieval + tools, 1 adapters, 2 full
    fine-tune), item by item of the checklist, with the numbers behind each line and what would
    change the answer. Exit code 0: a decision was made; 2: the suite cannot evaluate yet."""
    from rung.decide.recommend import decide as do_decide
    from rung.decide.report import write_decision_report
    from rung.errors import NoStoreError
    from rung.evals.store import RunStore

    cfg = load(config)
    try:
        st = RunStore(store or cfg.store_target(), create=False)  # reads runs: never creates a store
    except NoStoreError:  # nothing evaluated yet: decide on the harness's readiness alone
        st = RunStore("sqlite://")
    decision, gathered = do_decide(cfg, st, suite=suite, runs=run or None)
    out_dir = out if out is not None else cfg.path("decisions")
    paths = write_decision_report(decision, out_dir, runs=gathered.runs,
                                  title=f"rung decision: {cfg.project}")
    if as_json:
        data = decision.to_dict()
        data["report"] = {"html": str(paths.html), "markdown": str(paths.markdown)}
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
        raise typer.Exit(decision.exit_code)
    print_decision(decision)
    con = console()
    con.print(f"report: {escape(str(paths.html))}\n        {escape(str(paths.markdown))}")
    raise typer.Exit(decision.exit_code)


def print_decision(decision) -> None:  # decision: rung.decide.recommend.Decision
    from rich.panel import Panel
    from rich.table import Table

    from rung.decide.brief import decision_sentence, top_changes

    con = console()
    colour = {"ship": "green", "fix-level0": "yellow", "none": "yellow"}.get(decision.action, "red")
    body = f"[bold]{escape(decision_sentence(decision))}[/]\n{escape(decision.headline)}"
    if decision.diagnosis is not None:
        body += (f"\n[bold]Why level 0 fails:[/] {escape(decision.diagnosis.sentence)}."
                 f"\n[bold]Do:[/] {escape(decision.diagnosis.advice)}.")
    con.print(Panel(body, title=f"decision: {decision.action}", border_style=colour,
                    title_align="left"))
    t = Table(title="checklist", title_justify="left", show_lines=False)
    t.add_column("#", justify="right")
    t.add_column("item", no_wrap=True)
    t.add_column("verdict", no_wrap=True)
    t.add_column("finding")
    for i, item in enumerate(decision.items, 1):
        style = VERDICT_STYLE.get(item.verdict, "")
        t.add_row(str(i), item.id, f"[{style}]{item.verdict.upper()}[/]", escape(item.finding))
    con.print(t)
    if decision.assessments:
        c = Table(title="candidates", title_justify="left")
        for col in ("candidate", "level", "task_success", "hallucination", "p95 ms",
                    "cost/1M", "eligible", "passes"):
            c.add_column(col, justify="left" if col in ("candidate",) else "right")
        for a in decision.assessments:
            p95 = _n(a.evidence.p95_ms, 0) + (" served" if a.evidence.served else " batched")
            c.add_row(escape(a.candidate), str(a.level), _metric(a, "task_success"),
                      _metric(a, "hallucination"), p95,
                      _n(a.cost.total_per_million, 2) + ("" if a.cost.complete else "*"),
                      "yes" if a.eligible else "[red]no[/]",
                      "[green]yes[/]" if a.passed else "[red]no[/]")
        con.print(c)
        con.print("[dim]p95: served = the run's latency probe (as one request is served); "
                  "batched = the evaluation's batches (no probe)[/]")
    top = top_changes(decision)
    if top:
        con.print("[bold]What would change the decision[/]")
    for i, ch in enumerate(top, 1):
        con.print(f"  {i}. {escape(ch.text)}")
    if len(decision.changes) > len(top):
        con.print(f"  [dim]+{len(decision.changes) - len(top)} more in the report[/]")
    for n in decision.notes:
        con.print(f"[dim]{escape(n)}[/]")


def _metric(a, name: str) -> str:
    m = a.evidence.metric(name)
    if m is None:
        return "[dim]not measured[/]"
    return f"{m.mean:.3f} [{m.ci_low:.3f}, {m.ci_high:.3f}]"


def _n(v: float | None, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"
