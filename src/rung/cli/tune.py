"""`rung tune` (level 1 and 2 training) and `rung adapters` (the trained artifacts)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from rung.cli._common import CONFIG_OPTION, load
from rung.cli._state import console, err_console
from rung.cli.main import app
from rung.text.jsonx import json_objects

ACCELERATE_CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "accelerate"


def fmt_eval(ev: dict[str, Any] | None, metric: str) -> str:
    if not ev:
        return ""
    value = ev.get(metric)
    shown = "not measured" if value is None else f"{value:.3f}"
    return f"{metric} {shown} @ {ev.get('step')}"


@contextmanager
def train_progress(metric: str) -> Iterator[Callable[[Any], None]]:
    """A rich progress bar driven by TrainProgress events (objects or dicts from the worker)."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                               TimeElapsedColumn)

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


def _run_accelerate(job: Any, accelerate_config: Path | None, resume: bool, merge: bool,
                    update: Callable[[Any], None]) -> dict[str, Any]:
    """Run the job under `accelerate launch`; progress comes back as JSON lines on stdout."""
    from rung.errors import RungError

    cfg = accelerate_config or ACCELERATE_CONFIGS / "cpu.yaml"
    if not cfg.is_file():
        raise RungError(f"--accelerate-config {cfg}: no such file (examples in configs/accelerate/)")
    job_file = job.save()
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(cfg),
           "-m", "rung.tune.worker", str(job_file)]
    cmd += ["--resume"] if resume else []
    cmd += ["--merge"] if merge else []
    result: dict[str, Any] = {}
    log = job.folder / "launcher.log"  # the launcher's and workers' stderr
    with log.open("w", encoding="utf-8") as err, \
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True) as proc:
        assert proc.stdout is not None
        for event in json_objects(proc.stdout):
            if event.get("event") == "error":
                proc.kill()
                raise RungError(event.get("message", "the worker failed"))
            if event.get("event") == "result":
                result = event
            else:
                update(event)
    if proc.returncode != 0 or not result:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise RungError(f"accelerate launch exited with code {proc.returncode} ({log}): {tail[0]}")
    return result


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
    accelerate_config: Path = typer.Option(None, "--accelerate-config", help="accelerate config file "
                                           "(default: configs/accelerate/cpu.yaml)."),
) -> None:
    """Train an adapter (LoRA, prefix) or the full model on a built dataset, evaluating on a dev
    split while it trains; prints the artifact and the rung.yaml lines that serve it."""
    from rung.errors import RungError
    from rung.tune.train.plan import plan_job

    cfg = load(config)
    if method is not None and method not in ("lora", "prefix", "full"):
        raise RungError(f"--method {method}: expected lora, prefix or full")
    if launcher not in ("local", "accelerate"):
        raise RungError(f"--launcher {launcher}: expected local or accelerate")
    job = plan_job(cfg, method=method, candidate=candidate, dataset=dataset, max_steps=max_steps)
    if merge and job.method != "lora":
        raise RungError(f"--merge: only LoRA adapters can be merged into the base (this job is {job.method})")
    con = console()
    con.print(f"job [bold]{job.id}[/]: {job.method} on {escape(job.base.path)}, dataset {job.dataset_version}")
    metric = job.train.eval_metric
    with train_progress(metric) as update:
        if launcher == "accelerate":
            out = _run_accelerate(job, accelerate_config, resume, merge, update)
            folder, steps, best, merged = Path(out["folder"]), out["steps"], out.get("best"), out.get("merged")
        else:
            from rung.tune.train.trainer import train

            r = train(job, resume=resume, merge=merge, progress=update)
            folder, steps, best, merged = r.folder, r.steps, r.best, r.merged
    con.print(f"trained {steps} steps; best: {fmt_eval(best, metric) or 'no dev evaluation'}")
    con.print(f"artifact: [bold]{escape(str(folder))}[/]")
    if merged:
        con.print(f"merged model: {escape(str(merged))}")
    con.print("use it in rung.yaml:")
    con.print(escape(serving_snippet(job, folder, cfg.root)), soft_wrap=True)


def serving_snippet(job: Any, folder: Path, root: Path) -> str:
    """The rung.yaml lines that serve a trained artifact."""
    try:
        shown = str(folder.resolve().relative_to(root.resolve()))
    except ValueError:
        shown = str(folder)
    cand = job.candidate or "tuned"
    name = job.id
    if job.method == "full":
        return (f"models:\n  {name}:\n    path: {shown}\n"
                f"candidates:\n  {cand}-{job.method}:\n    model: {name}\n    level: 2\n")
    return (f"models:\n  {job.base.name}:\n    adapters:\n      {name}: {shown}\n"
            f"candidates:\n  {cand}-{job.method}:\n    model: {job.base.name}\n    adapter: {name}\n")


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
