"""`rung score`: score outputs made elsewhere and store them as a run."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from rung.cli._common import CONFIG_OPTION, STORE_OPTION, SUITE_OPTION, load
from rung.cli._progress import progress_bar
from rung.cli._state import console
from rung.cli.main import app


@app.command("score")
def score(
    file: Path = typer.Argument(..., help="JSONL of outputs: one {id?, input or messages, output, "
                                "contexts?, reference?, should_refuse?, tags?, metadata?} per line."),
    config: Path = CONFIG_OPTION,
    suite: str = SUITE_OPTION,
    scorers: str = typer.Option(None, "--scorers", help="Comma-separated scorer names instead of the "
                                "suite's (with the suite's parameters for a scorer it lists)."),
    name: str = typer.Option(None, "--name", "-n", help="Candidate name of the run (default: the file's "
                             "name and a short hash of its content)."),
    store: str = STORE_OPTION,
) -> None:
    """Score answers another system gave (a trace export, promptfoo / DeepEval style outputs) with
    the suite's scorers, and store them as a run: `rung compare`, `rung report` and `rung decide`
    use it like any other, and a line whose id is a suite case pairs with `rung eval` runs of that
    case. No model is loaded unless a judge scorer is configured."""
    from rung.cli.evals import print_summary
    from rung.evals.score_file import score_file
    from rung.evals.store import RunStore

    cfg = load(config)
    st = RunStore(store or cfg.store_target())
    names = scorers.split(",") if scorers is not None else None
    with progress_bar(f"scoring {file.name}") as bar:
        run = score_file(cfg, file, st, suite=suite, scorers=names, name=name, progress=bar)
    print_summary(run, cfg.gate)
    matched = run.info.metadata.get("suite_cases_matched", 0)
    console().print(f"{len(run.results)} outputs, {matched} paired with cases of suite {escape(run.info.suite)}")
    console().print(f"run [bold]{run.info.id}[/] stored in {escape(str(st.where))}")
