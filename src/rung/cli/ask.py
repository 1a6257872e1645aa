"""`rung ask`: answer one question with one candidate and show how the answer was made."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from rung.cli._common import CANDIDATE_OPTION, CONFIG_OPTION, NO_CACHE_OPTION, load
from rung.cli._progress import status
from rung.cli._state import console
from rung.cli.main import app


def _non_empty(question: str) -> str:
    """An empty or blank question is a usage error (exit 2), never sent to the model."""
    if question is not None and not question.strip():
        raise typer.BadParameter("the question is empty; ask something, e.g. rung ask \"How long is the warranty?\"")
    return question


@app.command("ask")
def ask(
    question: str = typer.Argument(..., help="The question to ask.", callback=_non_empty),
    config: Path = CONFIG_OPTION,
    candidate: str = CANDIDATE_OPTION,
    no_cache: bool = NO_CACHE_OPTION,
    show_prompt: bool = typer.Option(False, "--show-prompt", help="Also print the exact prompt sent."),
    meta: list[str] = typer.Option(
        [], "--meta", "-m", metavar="KEY=VALUE",
        help="Request metadata (repeatable): e.g. -m jurisdiction=EU selects "
             "the jurisdiction's prompt block and retrieval filters."),
) -> None:
    """Answer QUESTION with a candidate; show the answer, citations, retrieved chunks and timings."""
    from rung.core import Request
    from rung.errors import ConfigError
    from rung.pipeline.pipeline import build_pipeline

    metadata: dict[str, str] = {}
    for item in meta:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--meta {item!r}: expected KEY=VALUE, e.g. jurisdiction=EU")
        metadata[key.strip()] = value.strip()
    cfg = load(config)
    with status("loading the model"):
        pipeline = build_pipeline(cfg, candidate, use_cache=not no_cache)
    with status(f"answering with {pipeline.name}"):
        answer = pipeline.answer_batch([Request(id="ask", input=question, metadata=metadata)])[0]
    con = console()
    if answer.error:
        con.print(f"[red]error:[/] {escape(answer.error)}")
        raise typer.Exit(1)
    title = f"{pipeline.name} · {answer.model_id}" + (f" + {answer.adapter}" if answer.adapter else "")
    con.print(Panel(escape(answer.text.strip()) or "[dim](empty answer)[/]", title=title, title_align="left"))
    if answer.citations:
        con.print("[bold]citations:[/] " + escape(", ".join(answer.citations)))
    if answer.trace.retrieved:
        t = Table(title="retrieved chunks", show_lines=False)
        for col in ("id", "score", "text"):
            t.add_column(col, overflow="fold")
        for ch in answer.trace.retrieved:
            t.add_row(escape(ch.id), f"{ch.score:.3f}", escape(ch.text[:160].replace("\n", " ")))
        con.print(t)
    if answer.trace.tool_calls:
        t = Table(title="tool calls")
        for col in ("tool", "arguments", "result"):
            t.add_column(col, overflow="fold")
        for tc in answer.trace.tool_calls:
            t.add_row(escape(tc.name), escape(str(tc.arguments)), escape(tc.error or tc.result))
        con.print(t)
    if show_prompt:
        for m in answer.trace.prompt:
            con.print(Panel(escape(m.get("content", "")), title=m.get("role", "?"), title_align="left"))
    timing = " · ".join(f"{k} {v:.0f} ms" for k, v in answer.timings_ms.items())
    cached = " · [cyan]cached[/]" if answer.cached else ""
    con.print(f"[dim]{timing} · tokens in {answer.tokens_in} / out {answer.tokens_out}{cached}[/]")
