"""`rung traces list|show|export`: the gateway's stored traces (rung.ops.gateway.traces)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from rung.cli._common import CONFIG_OPTION, STORE_OPTION, load
from rung.cli._state import console
from rung.cli.main import app

traces_app = typer.Typer(help="Traces of the requests `rung serve` answered (PII redacted), with "
                         "online labels and human feedback.", no_args_is_help=True, rich_markup_mode="rich")
app.add_typer(traces_app, name="traces")


def _traces(config: Path, store: str | None):  # -> TraceStore
    from rung.ops.gateway.db import open_engine
    from rung.ops.gateway.traces import TraceStore

    target = store if store else load(config).store_target()
    return TraceStore(open_engine(target))


def _short(text: str, n: int = 60) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"


@traces_app.command("list")
def list_traces(
    limit: int = typer.Option(20, "--limit", "-n", help="How many (most recent first)."),
    tenant: str = typer.Option(None, "--tenant", "-t", help="Only this tenant's traces."),
    status: str = typer.Option(None, "--status", help="ok, blocked or error."),
    candidate: str = typer.Option(None, "--candidate", "-C", help="Only this served candidate."),
    config: Path = CONFIG_OPTION,
    store: str = STORE_OPTION,
) -> None:
    """The most recent traces: time, tenant, model, status, latency, question, labels."""
    rows = _traces(config, store).list(tenant, limit, status=status, candidate=candidate)
    t = Table(title=f"traces ({len(rows)})", title_justify="left")
    for col in ("id", "time", "tenant", "model", "status", "ms", "question", "labels"):
        t.add_column(col, overflow="fold")
    for r in rows:
        msgs = (r.get("request") or {}).get("messages") or []
        question = next((m.get("content", "") for m in reversed(msgs) if m.get("role") == "user"), "")
        status_text = r["status"]
        blocked = [g["reason"] for g in r.get("guardrails") or [] if g.get("action") == "block"]
        if blocked:
            status_text += f" ({blocked[0]})"
        labels = ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}=—"
                           for k, v in (r.get("labels") or {}).items())
        if r.get("feedback"):
            labels += (", " if labels else "") + f"feedback×{len(r['feedback'])}"
        t.add_row(r["id"], r["created_at"][11:19], escape(r["tenant"]), escape(r["model"]), status_text,
                  f"{(r.get('timings') or {}).get('total', 0):.0f}", escape(_short(question)), escape(labels))
    console().print(t)


@traces_app.command("show")
def show(
    trace_id: str = typer.Argument(..., help="A trace id (from a response's rung.trace_id or `rung traces list`)."),
    config: Path = CONFIG_OPTION,
    store: str = STORE_OPTION,
) -> None:
    """One trace as JSON."""
    from rung.errors import StoreError
    from rung.evals.store import dumps

    row = _traces(config, store).get(trace_id)
    if row is None:
        raise StoreError(f"no trace {trace_id!r} (see `rung traces list`)")
    typer.echo(json.dumps(json.loads(dumps(row)), indent=2, ensure_ascii=False))


@traces_app.command("export")
def export(
    out: Path = typer.Argument(..., help="The JSONL file to write."),
    tenant: str = typer.Option(None, "--tenant", "-t", help="Only this tenant's traces."),
    since: str = typer.Option(None, "--since", help="Only traces at or after this ISO time (UTC), "
                              "e.g. 2026-03-20T00:00."),
    config: Path = CONFIG_OPTION,
    store: str = STORE_OPTION,
) -> None:
    """Write traces as JSONL that `rung score` reads: {id, messages, output, contexts, citations,
    latency_ms, tokens, model, tags, metadata (with the trace: tenant, release, labels, feedback)}
    a line, oldest first."""
    n = _traces(config, store).export_jsonl(out, tenant, since)
    console().print(f"wrote {n} trace(s) to {out}")
