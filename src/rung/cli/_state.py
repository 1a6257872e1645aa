"""Process-wide CLI state (the --debug flag) and consoles."""

from __future__ import annotations

from functools import cache

from rich.console import Console

DEBUG = False


@cache
def console() -> Console:
    return Console(highlight=False)


@cache
def err_console() -> Console:
    return Console(stderr=True, highlight=False)
