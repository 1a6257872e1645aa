"""Entry point of the `rung` command. Heavy libraries are imported inside commands only, so
`rung --help` stays instant. Errors rung raises on purpose print as one line (no traceback unless
--debug or RUNG_DEBUG=1) and exit non-zero."""

from __future__ import annotations

import os
import sys
from pathlib import Path

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
COMMAND_MODULES = ("project", "models", "ask", "evals", "score", "demo", "data", "tune", "decide", "ladder",
                   "release", "rollout", "serve", "keys", "traces", "monitor", "drift", "refresh")


def _register() -> None:
    import importlib

    for mod in COMMAND_MODULES:
        importlib.import_module(f"rung.cli.{mod}")


def _click_exceptions() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """(Exit, Abort, ClickException) classes of every click that may raise them: typer >= 0.29
    bundles its own click (typer._click, with Exit/Abort in typer.exceptions), older typer uses the
    click package. Looked up by name so that either layout works."""
    import importlib

    found: dict[str, list[type]] = {"Exit": [], "Abort": [], "ClickException": []}
    for mod_name in ("typer.exceptions", "typer._click.exceptions", "click.exceptions"):
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        for name, classes in found.items():
            cls = getattr(mod, name, None)
            if isinstance(cls, type) and cls not in classes:
                classes.append(cls)
    return tuple(found["Exit"]), tuple(found["Abort"]), tuple(found["ClickException"])


# what to say after Ctrl-C, by command: how to continue without losing work
RESUME_HINTS = {
    "eval": "resume with `rung eval --resume`",
    "ladder": "run `rung ladder` again: finished steps are reused, the interrupted one resumes",
    "tune": "resume with `rung tune --resume`",
    "demo": "run it again: finished steps are reused",
}


def _interrupted(argv: list[str]) -> str:
    command = next((a for a in argv if not a.startswith("-")), "")
    hint = RESUME_HINTS.get(command)
    return f"interrupted; {hint}" if hint else "interrupted"


def run() -> None:
    """Console-script entry point: exit 0 on success, 1 on a rung error, 2 on a usage error,
    130 on Ctrl-C; never a traceback unless --debug or RUNG_DEBUG=1."""
    from rung.errors import RungError

    _state.DEBUG = os.environ.get("RUNG_DEBUG", "") not in ("", "0") or "--debug" in sys.argv[1:]
    exit_types, abort_types, click_errors = _click_exceptions()
    rc: object = 0
    try:
        _register()
        rc = app(standalone_mode=False)
        if rc == 130:  # typer >= 0.29 in non-standalone mode returns Ctrl-C as 130, raising nothing
            typer.echo(_interrupted(sys.argv[1:]), err=True)
    except exit_types as e:
        rc = getattr(e, "exit_code", 0)
        if rc == 130 or isinstance(e.__cause__ or e.__context__, KeyboardInterrupt):
            typer.echo(_interrupted(sys.argv[1:]), err=True)  # typer >= 0.29 turns Ctrl-C into Exit(130)
            rc = 130
    except (KeyboardInterrupt, *abort_types):
        typer.echo(_interrupted(sys.argv[1:]), err=True)
        rc = 130
    except click_errors as e:
        rc = _usage_error(e)
    except RungError as e:
        if _state.DEBUG:
            raise
        from rich.text import Text

        _state.err_console().print(Text.assemble(("error: ", "bold red"), str(e)), soft_wrap=True)
        rc = 1
    except Exception as e:  # a bug: one line and where to look, unless --debug
        if _state.DEBUG:
            raise
        where = _last_frame(e)
        typer.echo(f"internal error: {type(e).__name__}: {e}{where} (run with --debug for the traceback)",
                   err=True)
        rc = 1
    sys.exit(rc if isinstance(rc, int) else 0)


def _usage_error(e: Exception) -> int:
    """A click usage error as one line (`error: ... (see 'rung eval --help')`), exit 2; `rung`
    alone shows the help."""
    if type(e).__name__ == "NoArgsIsHelpError":
        e.show()  # type: ignore[attr-defined]
        return 2
    ctx = getattr(e, "ctx", None)
    message = e.format_message() if hasattr(e, "format_message") else str(e)
    see = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    typer.echo(f"error: {message}{see}", err=True)
    code = getattr(e, "exit_code", 2)
    return code if isinstance(code, int) else 2


def _last_frame(e: BaseException) -> str:
    import traceback

    frames = traceback.extract_tb(e.__traceback__)
    return f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
