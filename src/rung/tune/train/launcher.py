"""A tuning job under `accelerate launch` (`rung tune --launcher accelerate`), and the JSON-lines
protocol between this launcher and the worker processes (`rung.tune.worker`).

`launch(job, config=..., progress=...)` writes the job to `<job folder>/job.json`, runs
`python -m accelerate.commands.launch --config_file CONFIG -m rung.tune.worker job.json` and
returns the same `TrainResult` as an in-process `train(job)`; the worker's progress reaches
`progress` as `TrainProgress` objects, as it does in process.

The protocol: the worker's main process writes one JSON object per line on stdout,

    progress  the fields of TrainProgress ({"event": "stage" | "step" | "eval" | "checkpoint" |
              "done", "step": ..., "max_steps": ..., "loss": ..., ...}), after every step
    result    {"event": "result", "folder", "steps", "best", "stopped_early", "merged", "timings"},
              once, at the end
    error     {"event": "error", "message"}: a rung error ended the job (exit code 1)

and every process's stderr goes to `<job folder>/launcher.log`; lines that are not JSON objects
are skipped. The accelerate configs ship inside this package (`accelerate/*.yaml`, found with
importlib.resources), so an installed wheel finds them: name one (`cpu`, the default, `ddp`,
`fsdp`, `deepspeed-zero2`, `deepspeed-zero3`) or give the path of your own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rung.errors import TrainingError, did_you_mean
from rung.text.jsonx import json_objects

if TYPE_CHECKING:
    from rung.tune.train.job import TuneJob
    from rung.tune.train.trainer import TrainProgress, TrainResult

CONFIG_PACKAGE = "rung.tune.train"
CONFIG_FOLDER = "accelerate"
DEFAULT_CONFIG = "cpu"
LOG_FILE = "launcher.log"

RESULT = "result"
ERROR = "error"


# ---------------------------------------------------------------- the shipped accelerate configs

def config_folder() -> Traversable:
    """The folder of the shipped accelerate configs (inside the installed package)."""
    return resources.files(CONFIG_PACKAGE).joinpath(CONFIG_FOLDER)


def shipped_configs() -> list[str]:
    """The names of the shipped accelerate configs (file stems), sorted."""
    return sorted(p.name.removesuffix(".yaml") for p in config_folder().iterdir() if p.name.endswith(".yaml"))


def default_config() -> Traversable:
    """The config `launch` uses when none is given: one process on the CPU."""
    return config_folder().joinpath(f"{DEFAULT_CONFIG}.yaml")


@contextmanager
def config_file(spec: str | Path | None = None) -> Iterator[Path]:
    """The accelerate config file for `spec` as a real path while the context lasts: None = the
    default, a shipped config's name (`ddp`), or a file. TrainingError when it names neither."""
    if spec is None or (isinstance(spec, str) and spec in shipped_configs()):
        found = default_config() if spec is None else config_folder().joinpath(f"{spec}.yaml")
        with resources.as_file(found) as path:
            yield path
        return
    path = Path(spec).expanduser()
    if not path.is_file():
        names = shipped_configs()
        raise TrainingError(f"accelerate config {str(spec)!r}: no such file and no shipped config by that "
                            f"name{did_you_mean(str(spec), names)}; shipped: {', '.join(names)}")
    yield path


# ---------------------------------------------------------------- the protocol

def encode(event: dict[str, Any]) -> str:
    """One protocol line (without the newline)."""
    return json.dumps(event, default=str)


def progress_event(p: TrainProgress) -> dict[str, Any]:
    return asdict(p)


def result_event(result: TrainResult) -> dict[str, Any]:
    return {"event": RESULT, "folder": str(result.folder), "steps": result.steps, "best": result.best,
            "stopped_early": result.stopped_early,
            "merged": str(result.merged) if result.merged else None, "timings": result.timings}


def error_event(message: str) -> dict[str, Any]:
    return {"event": ERROR, "message": message}


def to_progress(event: dict[str, Any]) -> TrainProgress:
    """A progress event as the TrainProgress the worker reported (unknown keys dropped)."""
    from rung.tune.train.trainer import TrainProgress

    known = {f.name for f in fields(TrainProgress)}
    data = {k: v for k, v in event.items() if k in known}
    data.setdefault("event", "stage")
    data.setdefault("step", 0)
    data.setdefault("max_steps", 0)
    return TrainProgress(**data)


def read_events(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The protocol's events in a stream of lines (other output is skipped)."""
    return json_objects(lines)


# ---------------------------------------------------------------- launching

def launch_command(job_file: Path, config: Path, *, resume: bool = False, merge: bool = False) -> list[str]:
    """The `accelerate launch` command line that runs the worker on a job file."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
           "-m", "rung.tune.worker", str(job_file)]
    return cmd + (["--resume"] if resume else []) + (["--merge"] if merge else [])


def launch(job: TuneJob, *, config: str | Path | None = None, resume: bool = False, merge: bool = False,
           progress: Callable[[TrainProgress], None] | None = None) -> TrainResult:
    """Run `job` under `accelerate launch` with `config` (see `config_file`); returns what the
    worker's main process reported. TrainingError when the worker reports an error or exits
    without a result (the message ends with the last line of launcher.log)."""
    from rung.tune.train.artifacts import LINEAGE_FILE, read_lineage
    from rung.tune.train.trainer import TrainResult

    with config_file(config) as cfg:
        job_file = job.save()
        log = job.folder / LOG_FILE
        result: dict[str, Any] = {}
        with log.open("w", encoding="utf-8") as err, \
                subprocess.Popen(launch_command(job_file, cfg, resume=resume, merge=merge),
                                 stdout=subprocess.PIPE, stderr=err, text=True) as proc:
            assert proc.stdout is not None
            for event in read_events(proc.stdout):
                kind = event.get("event")
                if kind == ERROR:
                    proc.kill()
                    raise TrainingError(str(event.get("message") or "the worker failed"))
                if kind == RESULT:
                    result = event
                elif progress is not None:
                    progress(to_progress(event))
    if proc.returncode != 0 or not result:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise TrainingError(f"accelerate launch exited with code {proc.returncode} ({log}): {tail[0]}")
    folder = Path(result["folder"])
    return TrainResult(job=job, folder=folder, steps=int(result.get("steps") or 0), best=result.get("best"),
                       stopped_early=bool(result.get("stopped_early")),
                       lineage=read_lineage(folder) if (folder / LINEAGE_FILE).is_file() else {},
                       merged=Path(result["merged"]) if result.get("merged") else None,
                       timings=dict(result.get("timings") or {}))
