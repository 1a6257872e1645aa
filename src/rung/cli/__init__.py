"""The `rung` command line: one typer module per command group, thin over the library."""
