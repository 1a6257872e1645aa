"""`rung tune` (level 1 and 2 training) and `rung adapters` (the trained artifacts)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from rung.cli._common import CONFIG_OPTION, load
from rung.cli._state import console, err_console
from rung.cli.main import app


def fmt_eval(ev: dict[str, Any] | None, metric: str) -> str:
    if not ev:
        return ""
    value = ev.get(metric)
    shown = "not measured" if value is None else f"{value:.3f}"
    return f"{metric} {shown} @ {ev.get('step')}"


@contextmanager
def train_progress(metric: str) -> Iterator[Callable[[Any], None]]:
    """A rich progress bar driven by TrainProgress events (objects or dicts from the worker)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[tps]} tok/s"),
                  TextColumn("eta {task.fields[eta]}"), TextColumn("[cyan]{task.fields[ev]}"),
                  TimeElapsedColumn(), console=err_console(), transient=False) as prog:
        task = prog.add_task("starting", total=None, loss="-", tps="-", eta="-", ev="")

        def update(p: Any) -> None:
            d = p if isinstance(p, dict) else p.__dict__
            fields: dict[str, Any] = {}
            if d.get("loss") is not None:
                fields["loss"] = f"{d['loss']:.3f}"
            if d.get("tokens_per_s"):
                fields["tps"] = f"{d['tokens_per_s']:.0f}"
            if d.get("eta_s") is not None:
                fields["eta"] = f"{int(d['eta_s']) // 60}:{int(d['eta_s']) % 60:02d}"
            if d.get("last_eval"):
                fields["ev"] = fmt_eval(d["last_eval"], metric)
            desc = {"step": "training", "eval": "training", "checkpoint": "training",
                    "done": "done"}.get(d.get("event", ""), d.get("message") or "working")
            prog.update(task, description=desc, completed=d.get("step", 0),
                        total=d.get("max_steps") or None, **fields)

        yield update


@app.command("tune")
def tune(
    config: Path = CONFIG_OPTION,
    method: str = typer.Option(None, "--method", "-m", help="lora | prefix (level 1) | full (level 2); "
                               "default: tune.train.method."),
    candidate: str = typer.Option(None, "--candidate", "-C", help="Train this candidate's base model, on "
                                  "examples formatted with its system prompt (the prompt it serves with)."),
    dataset: str = typer.Option(None, "--dataset", "-d", help="A dataset version under paths.datasets, or a "
                                "dataset folder / examples.jsonl (default: the newest built one)."),
    max_steps: int = typer.Option(None, "--max-steps", min=1, help="Stop after N optimizer steps."),
    resume: bool = typer.Option(False, "--resume", help="Continue this job from its last checkpoint."),
    merge: bool = typer.Option(False, "--merge", help="Also write the base with the LoRA merged in (merged/)."),
    launcher: str = typer.Option("local", "--launcher", help="local (this process) | accelerate "
                                 "(accelerate launch: CPU, multi-GPU DDP, FSDP, DeepSpeed)."),
    accelerate_config: str = typer.Option(None, "--accelerate-config", help="accelerate config: a file, or "
                                          "a shipped one by name: cpu (the default), ddp, fsdp, "
                                          "deepspeed-zero2, deepspeed-zero3."),
) -> None:
    """Train an adapter (LoRA, prefix) or the full model on a built dataset, evaluating on a dev
    split while it trains; prints the artifact and the rung.yaml lines that serve it."""
    from rung.errors import TrainingError
    from rung.tune.train.artifacts import serving_snippet
    from rung.tune.train.plan import plan_job

    cfg = load(config)
    if method is not None and method not in ("lora", "prefix", "full"):
        raise TrainingError(f"--method {method}: expected lora, prefix or full")
    if launcher not in ("local", "accelerate"):
        raise TrainingError(f"--launcher {launcher}: expected local or accelerate")
    job = plan_job(cfg, method=method, candidate=candidate, dataset=dataset, max_steps=max_steps)
    if merge and job.method != "lora":
        raise TrainingError(f"--merge: only LoRA adapters can be merged into the base (this job is {job.method})")
    con = console()
    con.print(f"job [bold]{job.id}[/]: {job.method} on {escape(job.base.path)}, dataset {job.dataset_version}")
    metric = job.train.eval_metric
    with train_progress(metric) as update:
        if launcher == "accelerate":
            from rung.tune.train.launcher import launch

            r = launch(job, config=accelerate_config, resume=resume, merge=merge, progress=update)
        else:
            from rung.tune.train.trainer import train

            r = train(job, resume=resume, merge=merge, progress=update)
    con.print(f"trained {r.steps} steps; best: {fmt_eval(r.best, metric) or 'no dev evaluation'}")
    con.print(f"artifact: [bold]{escape(str(r.folder))}[/]")
    if r.merged:
        con.print(f"merged model: {escape(str(r.merged))}")
    con.print("use it in rung.yaml:")
    con.print(escape(serving_snippet(job, r.folder, cfg.root)), soft_wrap=True)


@app.command("adapters")
def adapters(config: Path = CONFIG_OPTION) -> None:
    """List trained artifacts (adapters and full weights) under paths.artifacts."""
    from rich.table import Table

    from rung.tune.train.artifacts import list_artifacts
    from rung.tune.train.plan import artifacts_root

    cfg = load(config)
    found = list_artifacts(artifacts_root(cfg))
    if not found:
        console().print(f"no artifacts under {artifacts_root(cfg)} (train one with `rung tune`)")
        return
    t = Table(title=f"artifacts in {artifacts_root(cfg)}", title_justify="left")
    t.add_column("job id", no_wrap=True)
    for col in ("method", "base", "dataset", "best", "path"):
        t.add_column(col, overflow="fold")
    for a in found:
        best = ("[yellow]unfinished[/]" if not a.complete else
                "-" if a.best_value is None else f"{a.best_metric} {a.best_value:.3f} @ {a.best_step}")
        t.add_row(a.job_id, a.method, escape(a.base), a.dataset_version, best, escape(str(a.path)))
    console().print(t)
