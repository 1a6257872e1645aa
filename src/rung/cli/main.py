"""Entry point of the `rung` command. Heavy libraries are imported inside commands only, so
`rung --help` stays instant. Errors rung raises on purpose print as one line (no traceback unless
--debug or RUNG_DEBUG=1) and exit non-zero."""

from __future__ import annotations

import os
import sys

import click
import typer

from rung import __version__
from rung.cli import _state

app = typer.Typer(
    name="rung",
    help="rung: run the LLM customization ladder on your task and decide with numbers.\n\n"
    "Level 0 is prompt + retrieval + tools, level 1 adapters (LoRA, prefix), level 2 full "
    "fine-tuning. Every step is judged by the same evaluation harness.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rung {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    _state.DEBUG = debug or _state.DEBUG


# command groups, one module each; each registers its commands on `app` when imported
COMMAND_MODULES = ("project", "models", "ask", "evals", "demo", "data", "tune", "decide", "ladder")


def _register() -> None:
    import importlib

    for mod in COMMAND_MODULES:
        importlib.import_module(f"rung.cli.{mod}")


def run() -> None:
    """Console-script entry point."""
    from rung.errors import RungError

    _state.DEBUG = os.environ.get("RUNG_DEBUG", "") not in ("", "0")
    _register()
    try:
        rc = app(standalone_mode=False)
    except click.exceptions.Exit as e:
        rc = e.exit_code
    except click.exceptions.Abort:
        typer.echo("aborted", err=True)
        rc = 130
    except click.ClickException as e:
        e.show()
        rc = e.exit_code
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        rc = 130
    except RungError as e:
        if _state.DEBUG:
            raise
        from rich.text import Text

        _state.err_console().print(Text.assemble(("error: ", "bold red"), str(e)), soft_wrap=True)
        rc = 1
    sys.exit(rc if isinstance(rc, int) else 0)
