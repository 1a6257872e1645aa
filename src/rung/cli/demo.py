"""`rung demo`: what `make demo` runs: the whole story on the bundled example, stage by stage
(rung.ops.demo); one line per stage."""

from __future__ import annotations

from pathlib import Path

import typer

from rung.cli.main import app


@app.command("demo")
def demo(
    project: Path = typer.Argument(Path("examples/support-desk"), help="Example project folder (with rung.yaml)."),
    stage: str = typer.Option(None, "--stage", help="Run one stage alone: ladder, release, serve, rollout or "
                              "monitor (it reads what the earlier stages stored)."),
    sample: int = typer.Option(32, "--sample", min=1, help="Evaluate a fixed sample of N cases, "
                               "spread over the suite's tags (the same cases every time)."),
    all_cases: bool = typer.Option(False, "--all", help="Evaluate every case (slow on a CPU)."),
    train: bool = typer.Option(False, "--train", help="Let the ladder train a LoRA adapter if it must "
                               "climb to level 1 (minutes on a CPU)."),
    requests: int = typer.Option(8, "--requests", min=1, help="Held-out requests per tenant in the serve "
                                 "stage; the rollout replays up to twice as many that should be refused and "
                                 "as many that should be answered."),
    fresh: bool = typer.Option(False, "--fresh", help="Replay the serve and rollout stages even when "
                               "nothing they depend on changed (by default their last result is reused)."),
    output: Path = typer.Option(None, "--output", "-o", help="Report folder (default: paths.reports of the project)."),
) -> None:
    """The whole story on the example project with the embedded offline model, one line per stage:

    [bold]ladder[/]: the ladder and the decision; the report's path
    [bold]release[/]: the chosen (or closest) candidate released and promoted to production
    [bold]serve[/]: rung serve on 127.0.0.1, two tenants' held-out requests via the openai client
    [bold]rollout[/]: a second release in a shadow rollout, judged on the gateway's traces
    [bold]monitor[/]: the alert rules once, the monitor page; where both reports are

    A fixed sample of cases spread over the tags keeps the ladder to minutes on a 2-core CPU; --all
    runs the whole suite. A re-run is quick: finished ladder steps are reused, releases are
    content-addressed, and serve / rollout reuse their last result when nothing changed (--fresh
    replays). `--stage NAME` runs one stage alone, reading what the earlier stages stored."""
    import time

    from rich.markup import escape

    from rung.cli._common import load
    from rung.cli._state import console, err_console
    from rung.ops.demo import STAGES, DemoEvents, DemoOptions, DemoState, check_stage, run_stage

    stages = [check_stage(stage)] if stage else list(STAGES)
    cfg = load(project)
    opts = DemoOptions(sample=None if all_cases else sample, train=train, fresh=fresh, out=output,
                       requests_per_tenant=requests)
    state = DemoState.for_config(cfg)
    con = console()
    t0 = time.perf_counter()
    for name in stages:
        if name == "ladder":
            from rung.cli.ladder import _LadderBars

            bars = _LadderBars(cfg.tune.train.eval_metric)
            with bars.prog:
                result = run_stage(cfg, name, opts, DemoEvents(ladder=bars.events()), state)
        else:
            with err_console().status(f"{name}...") as status:

                def say(text: str, s=status) -> None:  # noqa: ANN001 - a rich Status
                    s.update(escape(text))

                result = run_stage(cfg, name, opts, DemoEvents(status=say), state)
        con.print(f"[bold]{name:<8}[/]{escape(result.summary)} [dim]({result.seconds:.1f} s)[/]",
                  soft_wrap=True, highlight=False)
        if result.exit_code:
            raise typer.Exit(result.exit_code)
    if len(stages) > 1:
        con.print(f"[bold]demo[/]    {len(stages)} stages in {time.perf_counter() - t0:.0f} s", highlight=False)
