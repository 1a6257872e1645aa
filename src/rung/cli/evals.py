"""`rung eval`, `rung runs`, `rung show`, `rung export`, `rung compare`, `rung report`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from rung.cli._common import CANDIDATE_OPTION, CONFIG_OPTION, NO_CACHE_OPTION, STORE_OPTION, SUITE_OPTION, load
from rung.cli._progress import progress_bar
from rung.cli._state import console
from rung.cli.main import app


def open_store(store: str | None, config: Path | None = None):  # -> RunStore
    """The store named by --store, else the project's (rung.yaml in -c or the cwd), else the
    default store (rung.config.paths.STORE) in the current folder."""
    from rung.evals.store import RunStore

    # commands that only read never create a store: "no store at PATH" instead; an explicit
    # -c that does not exist is an error, not a fallback to the default store
    if store:
        return RunStore(store, create=False)
    if config is not None or Path("rung.yaml").exists():
        return RunStore(load(config if config is not None else Path("rung.yaml")).store_target(),
                        create=False)
    return RunStore(create=False)


def evaluate(cfg, candidate: str | None, suite: str | None = None, *, epochs: int = 1,
             resume: bool | str = False, use_cache: bool = True, tags: list[str] | None = None,
             limit: int | None = None, batch_size: int | None = None,
             ids: list[str] | None = None):  # -> RunResult
    """Run one candidate over one suite with a progress bar; returns the stored run."""
    from rung.evals.runner import evaluate_candidate

    store = _StoreOnFirstUse(cfg.store_target())  # a bad suite, corpus or model writes nothing
    with progress_bar(f"{cfg.candidate(candidate)[0]} on {cfg.suite(suite)[0]}") as bar:
        run, _ = evaluate_candidate(cfg, candidate, store, suite=suite, ids=ids, tags=tags, limit=limit,
                                    epochs=epochs, resume=resume, use_cache=use_cache,
                                    batch_size=batch_size, progress=bar)
    return run


class _StoreOnFirstUse:
    """The run store, opened (and created) when first used: evaluate_candidate loads the suite,
    the corpus and the model first, so a bad one is reported before anything is written."""

    def __init__(self, target) -> None:
        self._target, self._store = target, None

    def __getattr__(self, name: str):
        if self._store is None:
            from rung.evals.store import RunStore

            self._store = RunStore(self._target)
        return getattr(self._store, name)


def print_summary(run, gate_cfg=None):  # -> GateResult | None
    from rung.cli.render import gate_lines, summary_table, tags_table
    from rung.evals.aggregate import aggregate
    from rung.evals.gate import evaluate_gate

    con = console()
    summary = aggregate(run)
    con.print(summary_table(summary))
    tt = tags_table(summary)
    if tt is not None and len(summary.tags) > 1:
        con.print(tt)
    if gate_cfg is not None and (gate_cfg.thresholds or summary.errors):  # errors: gate.max_error_rate
        g = evaluate_gate(summary, gate_cfg)
        for line in gate_lines(g):
            con.print(line)
        return g
    return None


@app.command("eval")
def eval_(
    config: Path = CONFIG_OPTION,
    candidate: str = CANDIDATE_OPTION,
    suite: str = SUITE_OPTION,
    epochs: int = typer.Option(1, "--epochs", min=1, help="Repeat every case N times (judge/sampling variance)."),
    resume: bool = typer.Option(False, "--resume",
                                help="Continue the latest unfinished run of this candidate and suite."),
    resume_id: str = typer.Option(None, "--resume-run", help="Continue this unfinished run id."),
    no_cache: bool = NO_CACHE_OPTION,
    tag: list[str] = typer.Option(None, "--tag", "-t", help="Only cases with this tag (repeatable)."),
    limit: int = typer.Option(None, "--limit", min=1, help="Only the first N cases."),
    batch_size: int = typer.Option(None, "--batch-size", min=1,
                                   help="Cases per batch (default: the model's max_batch_size)."),
    gate: bool = typer.Option(False, "--gate", help="Exit 1 when the run fails the gate thresholds of rung.yaml."),
    report: Path = typer.Option(None, "--report", help="Also write report.html and report.md into this folder."),
) -> None:
    """Run a candidate over a suite: answer, score, store. Re-running an unchanged eval makes no
    model calls (response cache); a run killed mid-way continues with --resume and loses no case."""
    cfg = load(config)
    run = evaluate(cfg, candidate, suite, epochs=epochs, resume=resume_id or resume,
                   use_cache=not no_cache, tags=tag, limit=limit, batch_size=batch_size)
    g = print_summary(run, cfg.gate)
    console().print(f"run [bold]{run.info.id}[/] stored in {cfg.store_target()}")
    if report is not None:
        from rung.evals.report import write_report

        paths = write_report([run], report, gate=g)
        console().print(f"report: {paths.html}")
    if gate and g is not None and not g.passed:
        raise typer.Exit(1)


@app.command("runs")
def runs(
    config: Path = typer.Option(None, "--config", "-c", help="Project file whose run store to read."),
    store: str = STORE_OPTION,
    candidate: str = typer.Option(None, "--candidate", "-C", help="Only runs of this candidate."),
    limit: int = typer.Option(20, "--limit", "-n", help="How many (newest first)."),
) -> None:
    """List runs, newest first."""
    from rung.cli.render import runs_table

    infos = open_store(store, config).list_runs(limit=limit, candidate=candidate)
    if not infos:
        console().print("no runs yet: `rung eval -c rung.yaml`")
        return
    console().print(runs_table(infos))


@app.command("show")
def show(
    run_id: str = typer.Argument(..., help="Run id (a unique prefix is enough)."),
    config: Path = typer.Option(None, "--config", "-c", help="Project file (for its store and gate)."),
    store: str = STORE_OPTION,
    failures: int = typer.Option(5, "--failures", help="How many failing cases to print."),
) -> None:
    """Print a run's summary: metrics with 95% intervals, latency, cost, tags, worst cases."""
    from rung.evals.report import failing_scores

    run = open_store(store, config).get_run(run_id)
    gate_cfg = load(config).gate if config else None
    print_summary(run, gate_cfg)
    con = console()
    bad = [r for r in run.results if failing_scores(r)][:failures]
    for r in bad:
        reasons = "; ".join(f"{s.name}={s.value:g}" + (f" ({s.reason})" if s.reason else "")
                            for s in failing_scores(r))
        con.print(f"[red]✗[/] [bold]{escape(r.case.id)}[/] {escape(reasons)}")
        con.print(f"   [dim]Q:[/] {escape(r.case.question[:160])}")
        con.print(f"   [dim]A:[/] {escape(r.answer.text.strip()[:240])}")


@app.command("export")
def export(
    run_id: str = typer.Argument(..., help="Run id (a unique prefix is enough)."),
    output: Path = typer.Option(..., "--output", "-o", help="JSONL file to write."),
    config: Path = typer.Option(None, "--config", "-c", help="Project file (for its store)."),
    store: str = STORE_OPTION,
) -> None:
    """Export a run to JSONL: a header line with the run, then one line per case result."""
    path = open_store(store, config).export_jsonl(run_id, output)
    console().print(f"wrote {path}")


@app.command("compare")
def compare(
    run_a: str = typer.Argument(..., help="Baseline run id."),
    run_b: str = typer.Argument(..., help="New run id."),
    config: Path = typer.Option(None, "--config", "-c", help="Project file: its store and gate thresholds."),
    store: str = STORE_OPTION,
    fail_on_regression: bool = typer.Option(False, "--fail-on-regression",
                                            help="Exit 1 on any significant regression or failed threshold."),
    alpha: float = typer.Option(None, "--alpha", help="Significance level (default: gate.alpha, 0.05)."),
    report: Path = typer.Option(None, "--report", help="Also write report.html and report.md here."),
) -> None:
    """Pair two runs case by case, test each metric's change, and gate (exit code for CI)."""
    from rung.cli.render import comparison_table, gate_lines
    from rung.config import GateConfig
    from rung.evals.aggregate import aggregate
    from rung.evals.compare import compare as do_compare
    from rung.evals.gate import evaluate_gate

    st = open_store(store, config)
    a, b = st.get_run(run_a), st.get_run(run_b)
    gate_cfg = load(config).gate if config else GateConfig()
    c = do_compare(a, b, alpha=alpha or gate_cfg.alpha)
    con = console()
    con.print(comparison_table(c))
    if c.only_in_a or c.only_in_b:
        con.print(f"[yellow]unpaired cases[/]: {len(c.only_in_a)} only in A, {len(c.only_in_b)} only in B")
    for note in c.notes:
        con.print(f"[dim]{note}[/]")
    summary_b = aggregate(b)
    g = evaluate_gate(summary_b, gate_cfg, comparison=c, fail_on_regression=fail_on_regression)
    for line in gate_lines(g):
        con.print(line)
    if report is not None:
        from rung.evals.report import write_report

        paths = write_report([a, b], report, comparison=c, gate=g, summaries=[aggregate(a), summary_b])
        con.print(f"report: {paths.html}")
    if fail_on_regression and not g.passed:
        raise typer.Exit(1)


@app.command("report")
def report(
    run_ids: list[str] = typer.Argument(..., help="One or more run ids."),
    output: Path = typer.Option(None, "--output", "-o", help="Folder for report.html and report.md "
                                "(default: paths.reports of rung.yaml, else .rung/report)."),
    config: Path = typer.Option(None, "--config", "-c", help="Project file (for its store and gate)."),
    store: str = STORE_OPTION,
    title: str = typer.Option(None, "--title", help="Page title."),
) -> None:
    """Write a self-contained HTML report (tables, plots, failing cases with traces) and a
    Markdown summary for PR comments. With two runs, the second is compared to the first."""
    from rung.evals.aggregate import aggregate
    from rung.evals.compare import compare as do_compare
    from rung.evals.gate import evaluate_gate
    from rung.evals.report import write_report

    st = open_store(store, config)
    runs_ = [st.get_run(r) for r in run_ids]
    summaries = [aggregate(r) for r in runs_]
    cfg = load(config) if config else None
    if output is None:
        from rung.config import paths

        output = cfg.path("reports") if cfg else Path(paths.REPORTS)
    alpha = cfg.gate.alpha if cfg else 0.05
    comparison = do_compare(runs_[0], runs_[1], alpha=alpha) if len(runs_) == 2 else None
    g = None
    if cfg is not None and (cfg.gate.thresholds or summaries[-1].errors):
        g = evaluate_gate(summaries[-1], cfg.gate, comparison=comparison)
    paths = write_report(runs_, output, comparison=comparison, gate=g, title=title, summaries=summaries)
    console().print(f"wrote {paths.html}\nwrote {paths.markdown}")
