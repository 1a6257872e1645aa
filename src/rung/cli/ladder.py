"""`rung ladder`: evaluate level 0 from bare to richest, climb only when the checklist says so,
decide, and write the report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from rung.cli._common import CONFIG_OPTION, NO_CACHE_OPTION, STORE_OPTION, SUITE_OPTION, load
from rung.cli._state import console, err_console
from rung.cli.main import app


@app.command("ladder")
def ladder(
    config: Path = CONFIG_OPTION,
    suite: str = SUITE_OPTION,
    sample: int = typer.Option(None, "--sample", min=1, help="Evaluate a fixed sample of N cases spread "
                               "over the suite's tags (the same cases every time); default: every case."),
    train: bool = typer.Option(False, "--train", help="Allow the ladder to train a LoRA adapter when it "
                               "must climb to level 1 and rung.yaml declares no level-1 candidate."),
    fresh: bool = typer.Option(False, "--fresh", help="Evaluate every step again instead of reusing a "
                               "finished run of the same candidate, cases and scorers."),
    no_cache: bool = NO_CACHE_OPTION,
    out: Path = typer.Option(None, "--out", "-o", help="Report folder (default: paths.reports of rung.yaml)."),
    store: str = STORE_OPTION,
) -> None:
    """Run the customization ladder on the project and say which level to ship.

    Level-0 candidates are evaluated from the simplest (bare prompt) to the richest (retrieval,
    schema, tools); the ladder climbs to level 1 (adapters) and level 2 (full fine-tuning) only
    when the decision checklist says level 0 cannot close the gap and the constraints allow it.
    Every step is a stored run; an unchanged step is reused, so a re-run only does what changed.
    Ends with the recommendation and the path of report.html. Exit code 0: a decision was made;
    2: the suite cannot evaluate yet."""
    run_ladder(load(config), suite=suite, sample=sample, train=train, fresh=fresh,
               no_cache=no_cache, out=out, store=store)


def run_ladder(cfg, *, suite: str | None = None, sample: int | None = None, train: bool = False,
               fresh: bool = False, no_cache: bool = False, out: Path | None = None,
               store: str | None = None) -> None:
    """The ladder with rich progress, the decision printed and the report written; exits with
    the decision's exit code (`rung ladder` and `rung demo`)."""
    from rung.cli.decide import print_decision
    from rung.decide.report import write_decision_report
    from rung.evals.store import RunStore
    from rung.ladder import climb

    con = console()
    ids = None
    if sample:
        from rung.evals.suite import load_suite, spread_sample

        suite_name, suite_cfg = cfg.suite(suite)
        cases = load_suite(cfg.existing_path("suites", suite_name, "path", what="suite file or folder"),
                           name=suite_name).cases
        ids = [c.id for c in spread_sample(cases, sample)]
        con.print(f"{len(ids)} of {len(cases)} cases, spread over the suite's tags")
    st = RunStore(store or cfg.store_target())
    bars = _LadderBars(cfg.tune.train.eval_metric)
    with bars.prog:
        result = climb(cfg, st, suite=suite, ids=ids, reuse=not fresh, use_cache=not no_cache,
                       allow_training=train, events=bars.events())
    out_dir = out if out is not None else cfg.path("reports")
    paths = write_decision_report(result.decision, out_dir, runs=result.gathered.runs,
                                  title=f"rung ladder: {cfg.project}", stem="report")
    print_decision(result.decision)
    for n in result.notes:
        con.print(f"[dim]{escape(n)}[/]")
    wall = sum(s.wall_s for s in result.steps)
    reused = sum(s.reused for s in result.steps)
    con.print(f"{len(result.steps)} steps ({reused} reused) in {wall:.0f} s")
    from rung.decide.brief import decision_sentence

    con.print(f"recommendation: [bold]{escape(decision_sentence(result.decision))}[/]")
    con.print(f"report: [bold]{escape(str(paths.html))}[/]\n        {escape(str(paths.markdown))}")
    raise typer.Exit(result.decision.exit_code)


class _LadderBars:
    """One rich progress bar per ladder step (and per training job), on stderr."""

    def __init__(self, metric: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.metric = metric
        self.task = None  # the current step's bar
        self.prog = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                             MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
                             TimeRemainingColumn(), TextColumn("{task.fields[note]}"),
                             console=err_console(), transient=False)

    def events(self):  # noqa: ANN201 - rung.ladder.LadderEvents
        from rung.ladder import LadderEvents

        return LadderEvents(step=self.step, step_done=self.done, note=self.note,
                            loading=self.loading, tuning=self.tuning)

    def step(self, name: str, level: int, index: int, total: int):  # noqa: ANN201
        task = self.task = self.prog.add_task(f"L{level} {name}", total=None, note="")
        return lambda done, n: self.prog.update(task, completed=done, total=n)

    def done(self, step) -> None:  # step: rung.ladder.LadderStep
        note = ("reused run " if step.reused else "run ") + step.run_id
        self.prog.update(self.task, note=note, completed=step.n_cases, total=step.n_cases)

    def note(self, text: str) -> None:
        self.prog.console.print(f"[bold]{escape(text)}[/]")

    def loading(self, text: str) -> None:
        if self.task is not None:
            self.prog.update(self.task, note=text)

    def tuning(self, job_id: str):  # noqa: ANN201 - a TrainProgress callback
        from rung.cli.tune import fmt_eval

        task = self.prog.add_task(f"L1 train {job_id}", total=None, note="")

        def update(p) -> None:  # p: rung.tune.train.trainer.TrainProgress
            bits = [p.message] if p.event == "stage" and p.message else []
            if p.loss is not None:
                bits.append(f"loss {p.loss:.3f}")
            if p.tokens_per_s:
                bits.append(f"{p.tokens_per_s:.0f} tok/s")
            if p.last_eval:
                bits.append(fmt_eval(p.last_eval, self.metric))
            self.prog.update(task, completed=p.step, total=p.max_steps or None, note=" · ".join(bits))

        return update
