"""`rung demo`: what `make demo` runs: the ladder on the bundled example."""

from __future__ import annotations

from pathlib import Path

import typer

from rung.cli.main import app


@app.command("demo")
def demo(
    project: Path = typer.Argument(Path("examples/support-desk"), help="Example project folder (with rung.yaml)."),
    sample: int = typer.Option(40, "--sample", min=1, help="Evaluate a fixed sample of N cases, "
                               "spread over the suite's tags (the same cases every time)."),
    all_cases: bool = typer.Option(False, "--all", help="Evaluate every case (slow on a CPU)."),
    train: bool = typer.Option(False, "--train", help="Let the ladder train a LoRA adapter if it must "
                               "climb to level 1 (minutes on a CPU)."),
    output: Path = typer.Option(None, "--output", "-o", help="Report folder (default: paths.reports of the project)."),
) -> None:
    """Run the ladder on the example project with the embedded offline model: level 0 from the
    bare model to retrieval + schema + tools, climbing only when the checklist says so; prints the
    recommendation and the path of report.html.

    By default a fixed sample of cases spread over the tags keeps the demo to minutes on a 2-core
    CPU; --all runs the whole suite. A re-run reuses every unchanged step."""
    from rung.cli._common import load
    from rung.cli.ladder import run_ladder

    run_ladder(load(project), sample=None if all_cases else sample, train=train, out=output)
