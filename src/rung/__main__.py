"""`python -m rung` is the `rung` command."""

from rung.cli.main import run

run()
