"""`rung drift -c rung.yaml --since 7d` (rung.ops.drift)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from rung.cli._common import CONFIG_OPTION, load
from rung.cli._state import console
from rung.cli.main import app


@app.command("drift")
def drift(
    config: Path = CONFIG_OPTION,
    since: str = typer.Option("7d", "--since", help="Live requests newer than this (e.g. 24h, 7d, 2w)."),
    suite: str = typer.Option(None, "--suite", "-s", help="Eval suite to compare with (default: drift.suite, "
                              "else the only / first suite)."),
    channel: str = typer.Option(None, "--channel", help="Only this channel (and its tenant channels)."),
    traces: Path = typer.Option(None, "--traces", help="Read trace records from this JSONL file instead "
                                "of the gateway's store."),
    out: Path = typer.Option(None, "--out", "-o", help="Candidate cases JSONL (default: drift.output)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Live inputs vs the eval suite: embedding distance, share far from every case, jurisdiction /
    product / language mix, clusters of new topics; writes the clusters' requests as candidate
    cases to label."""
    from rung.config.operations import parse_duration
    from rung.errors import ConfigError
    from rung.evals.suite import load_suite
    from rung.ops.drift import candidate_cases, drift_report, write_cases
    from rung.ops.tracesource import load_records
    from rung.pipeline.retrieval.index import get_embedder

    cfg = load(config)
    try:
        back = parse_duration(since)
    except ValueError as e:
        raise ConfigError(f"--since: {e}") from None
    name = suite or cfg.drift.suite or (next(iter(cfg.suites)) if cfg.suites else None)
    name, scfg = cfg.suite(name)
    cases = load_suite(cfg.existing_path("suites", name, "path", what="suite file or folder"), name=name).cases
    now = datetime.now(timezone.utc).timestamp()
    live = load_records(cfg, since=now - back, file=traces, channel=channel)
    report = drift_report(live, cases, get_embedder(cfg.embedder, cfg.root), cfg.drift)
    cands = candidate_cases(report, live)
    path = out or cfg.resolve(cfg.drift.output)
    if cands:
        write_cases(cands, path)
    con = console()
    if as_json:
        con.print_json(json.dumps(report.to_dict() | {"candidate_cases": str(path) if cands else None}))
        return
    head = "[red]drifted[/]" if report.drifted else "[green]covered[/]"
    con.print(f"{head}: {report.n_live} live requests ({since}) vs {report.n_cases} cases of suite {escape(name)}")
    if report.distance_p50 is not None:
        own = report.suite_distance_p50 if report.suite_distance_p50 is not None else "-"
        con.print(f"distance to the nearest case: median {report.distance_p50:.3f}, P90 {report.distance_p90:.3f}"
                  f" (the suite's own median {own}); "
                  f"{report.far_share:.0%} farther than {report.far_threshold:g} (limit {report.max_far_share:.0%})")
    t = Table(title="mix: live vs suite", title_justify="left")
    for col in ("dimension", "TVD", "live", "suite", "under-covered"):
        t.add_column(col, overflow="fold")
    def fmt(d: dict[str, float]) -> str:
        return ", ".join(f"{k} {v:.0%}" for k, v in list(d.items())[:6])

    for m in report.mix:
        t.add_row(m.dimension, f"{m.tvd:.2f}", fmt(m.live), fmt(m.suite), ", ".join(m.under_covered) or "-")
    con.print(t)
    for i, c in enumerate(report.clusters):
        con.print(f"[bold]new topic {i}[/] ({c.size} requests; {escape(', '.join(c.terms))}; nearest case "
                  f"{escape(c.nearest_case)} at {c.nearest_distance:.2f}):")
        for ex in c.examples:
            con.print(f"  - {escape(ex[:140])}")
    for f in report.findings:
        con.print(f"[yellow]finding:[/] {escape(f)}")
    if cands:
        con.print(f"wrote {len(cands)} candidate case(s) to label: {escape(str(path))}")
