"""`rung monitor -c rung.yaml [--watch] [--export-prometheus-rules FILE] [--report [FILE]]`."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from rung.cli._common import CONFIG_OPTION, STORE_OPTION, load
from rung.cli._state import console
from rung.cli.main import app


def _now(at: str | None) -> float:
    if not at:
        return datetime.now(timezone.utc).timestamp()
    from rung.ops.releases.store import to_iso

    return datetime.fromisoformat(to_iso(at)).timestamp()


@app.command("monitor")
def monitor(
    config: Path = CONFIG_OPTION,
    watch: bool = typer.Option(False, "--watch", help="Keep evaluating every monitor.interval_s "
                               "seconds (and advance running rollouts) until Ctrl-C."),
    export_prometheus_rules: Path = typer.Option(None, "--export-prometheus-rules", metavar="FILE",
                                                 help="Write the rules as a Prometheus alerting-rules file and exit."),
    report: bool = typer.Option(False, "--report", help="Write the monitor page (HTML) and exit."),
    out: Path = typer.Option(None, "--out", "-o", help="Where --report writes (default: paths.reports/monitor.html)."),
    since: str = typer.Option("24h", "--since", help="How far back --report reads traces (e.g. 6h, 7d)."),
    channel: str = typer.Option(None, "--channel", help="Only this channel (and its tenant channels)."),
    traces: Path = typer.Option(None, "--traces", help="Read trace records from this JSONL file instead "
                                "of the gateway's store."),
    at: str = typer.Option(None, "--at", help="Evaluate as of this time (ISO 8601; default: now)."),
    rollouts: bool = typer.Option(True, "--rollouts/--no-rollouts", help="With --watch: also judge "
                                  "running rollouts and act on them."),
    store: str = STORE_OPTION,
) -> None:
    """Evaluate the alert rules of rung.yaml over the latest traces, notify webhooks and the
    alert log of what fired or resolved (each alert once), and print the state of every rule."""
    from rung.config.operations import parse_duration
    from rung.errors import ConfigError
    from rung.ops.monitor import Notifier, build_monitor, load_state, save_state, window_seconds
    from rung.ops.releases import ReleaseStore
    from rung.ops.tracesource import load_records

    cfg = load(config)
    st = ReleaseStore.for_config(cfg, store)
    con = console()
    try:
        if export_prometheus_rules is not None:
            _export(cfg, st, export_prometheus_rules, channel)
            return
        if report:
            try:
                back = parse_duration(since)
            except ValueError as e:
                raise ConfigError(f"--since: {e}") from None
            _report(cfg, st, out, _now(at) - back, traces, channel)
            return
        from rung.config import paths

        state_path = cfg.resolve(paths.MONITOR_STATE)
        mon = build_monitor(cfg, st, state=load_state(state_path))
        log = cfg.resolve(cfg.monitor.log) if cfg.monitor.log else None
        notifier = Notifier(cfg.monitor.webhooks, log, project=cfg.project)
        while True:
            now = _now(at)
            records = load_records(cfg, since=now - window_seconds(cfg), file=traces, channel=channel)
            events = notifier.send(mon.evaluate(records, now))
            save_state(state_path, mon.state)
            for ev in events:
                colour = "green" if ev.status == "resolved" else ("red" if ev.severity == "critical" else "yellow")
                con.print(f"[{colour}]{escape(ev.summary())}[/]")
            if not watch:
                _print_conditions(mon, records, now)
                return
            if rollouts:
                _advance_rollouts(cfg, st, traces)
            time.sleep(cfg.monitor.interval_s)
    finally:
        st.close()


def _print_conditions(mon, records, now: float) -> None:  # noqa: ANN001
    t = Table(title=f"alert rules at {datetime.fromtimestamp(now, timezone.utc):%Y-%m-%d %H:%M:%S} UTC "
                    f"({len(records)} requests read)", title_justify="left")
    for col in ("rule", "release", "channel", "n", "state", "detail"):
        t.add_column(col, overflow="fold")
    rows = mon.conditions(records, now)
    for name, _rule, release, channel, cond in rows:
        st = mon.state.get(f"{name}|{release}|{channel}", {}).get("status")
        state = st or ("breached" if cond.breached else ("ok" if cond.evaluated else "not evaluated"))
        colour = {"firing": "red", "pending": "yellow", "ok": "green"}.get(state, "dim")
        t.add_row(name, release[:12], channel, str(cond.n), f"[{colour}]{state}[/]", escape(cond.detail))
    if not rows:
        t.add_row("-", "-", "-", "0", "[dim]no traffic[/]", "no requests in any rule's window")
    console().print(t)


def _advance_rollouts(cfg, st, traces) -> None:  # noqa: ANN001
    from rung.ops.rollout.machine import evaluate
    from rung.ops.rollout.state import iso_seconds, running_rollout
    from rung.ops.tracesource import load_records

    for ch in st.channels():
        r = running_rollout(st, ch)
        if r is None:
            continue
        records = load_records(cfg, since=iso_seconds(r.step_started_at), file=traces, channel=ch)
        out = evaluate(st, ch, records, gate=cfg.gate)
        if out is not None and out.action not in ("hold", "none"):
            console().print(f"rollout {r.id} on {escape(ch)}: [bold]{out.action}[/] {escape(out.message)}")


def _export(cfg, st, path: Path, channel: str | None) -> None:  # noqa: ANN001
    from rung.ops.monitor.baseline import release_baseline
    from rung.ops.monitor.prometheus import prometheus_rules, write_rules
    from rung.ops.monitor.rules import Baseline
    from rung.ops.releases import live_release

    rel = live_release(st, channel or "production")
    base = release_baseline(st, rel.id) if rel is not None else Baseline()
    data, notes = prometheus_rules(cfg.monitor, base, project=cfg.project,
                                   p95_budget_ms=cfg.constraints.p95_latency_ms,
                                   cost_budget_per_1k=cfg.constraints.cost_per_1k_requests)
    write_rules(path, data)
    con = console()
    n = len(data["groups"][0]["rules"])
    con.print(f"wrote {n} Prometheus alerting rule(s) to {escape(str(path))}"
              + (f" (baselines of release {rel.short} on {channel or 'production'})" if rel else
                 " (no live release: rules without an eval baseline are left out)"))
    for note in notes:
        con.print(f"[yellow]note:[/] {escape(note)}")


def _report(cfg, st, out: Path | None, since: float, traces: Path | None, channel: str | None) -> None:  # noqa: ANN001
    from rung.ops.monitor.report import write_monitor_page

    page = write_monitor_page(cfg, st, out or cfg.path("reports") / "monitor.html", since, traces=traces,
                              channel=channel)
    console().print(f"wrote {escape(str(page.path))} ({page.requests} requests, {page.alerts} alert events, "
                    f"{page.release_events} release events)")
