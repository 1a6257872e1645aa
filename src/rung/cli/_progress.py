"""Rich progress bars for the library's progress(done, total) callbacks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from rung.cli._state import err_console


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """Yields a callback progress(done, total) that drives one rich progress bar on stderr. The
    bar shows from the first call on: an error raised before (a bad input) prints alone."""
    prog = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err_console(),
        transient=False,
    )
    task = prog.add_task(description, total=None)
    started = False

    def update(done: int, total: int) -> None:
        nonlocal started
        if not started:
            prog.start()
            started = True
        prog.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        if started:
            prog.stop()


@contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner for work with no measurable progress (loading a model)."""
    with err_console().status(message):
        yield
