"""Options and helpers shared by several commands."""

from __future__ import annotations

from pathlib import Path

import typer

CONFIG_OPTION = typer.Option(Path("rung.yaml"), "--config", "-c",
                             help="The project file (rung.yaml) or its folder.")
CANDIDATE_OPTION = typer.Option(None, "--candidate", "-C",
                                help="Candidate name from rung.yaml (default: the only one).")
NO_CACHE_OPTION = typer.Option(False, "--no-cache", help="Do not read or write the response cache.")
SUITE_OPTION = typer.Option(None, "--suite", "-s", help="Suite name from rung.yaml (default: the only one).")
STORE_OPTION = typer.Option(None, "--store", help="Run store: a SQLite path or SQLAlchemy URL "
                            "(default: paths.store of rung.yaml, else .rung/rung.db here).")


def load(config: Path):  # -> RungConfig
    from rung.config import load_config

    return load_config(config)
