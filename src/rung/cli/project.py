"""`rung init`: scaffold a project."""

from __future__ import annotations

from pathlib import Path

import typer

from rung.cli._state import console
from rung.cli.main import app


@app.command("init")
def init(
    directory: Path = typer.Argument(..., help="Folder to create the project in (created if missing)."),
    name: str = typer.Option(None, "--name", help="Project name (default: the folder name)."),
    force: bool = typer.Option(False, "--force", help="Overwrite files that already exist."),
) -> None:
    """Scaffold a working project: rung.yaml, a small knowledge corpus, eval cases, a policy.

    The project runs as-is on the embedded offline model:
    `rung ask -c DIR/rung.yaml "How long is the warranty?"` and `rung eval -c DIR/rung.yaml`.
    """
    from rung.scaffold import scaffold

    written = scaffold(directory, name=name, force=force)
    con = console()
    con.print(f"[green]created[/] {directory} ({len(written)} files)")
    for p in written:
        con.print(f"  {p}")
    con.print(f"\nnext: [bold]rung ask -c {directory / 'rung.yaml'} \"How long is the warranty?\"[/]")
