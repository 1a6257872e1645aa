"""`rung rollout start|status|evaluate|abort` (rung.ops.rollout)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from rung.cli._common import CONFIG_OPTION, STORE_OPTION, load
from rung.cli._state import console
from rung.cli.main import app

rollout_app = typer.Typer(
    help="Rollouts: move a channel to a new release in steps (canary weights, sticky per tenant / "
    "user, or shadow traffic paired on the same requests), judged at each step on errors, "
    "latency, cost and answer quality from the traces; promotes or rolls back by itself and logs "
    "every decision in the channel's history.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(rollout_app, name="rollout")

WHO_OPTION = typer.Option(None, "--who", help="Who is acting (default: $RUNG_USER, else the login name).")
TRACES_OPTION = typer.Option(None, "--traces", help="Read trace records from this JSONL file instead "
                             "of the gateway's store.")


def _store(cfg, store: str | None):  # noqa: ANN001, ANN202
    from rung.ops.releases import ReleaseStore

    return ReleaseStore.for_config(cfg, store)


@rollout_app.command("start")
def start(
    channel: str = typer.Argument(..., help="Channel to move (production, production@acme, ...)."),
    release: str = typer.Argument(..., help="The new release (id or unique prefix)."),
    config: Path = CONFIG_OPTION,
    mode: str = typer.Option(None, "--mode", help="canary | shadow (default: rollout.mode of rung.yaml)."),
    steps: str = typer.Option(None, "--steps", help="Traffic percentages, e.g. 5,25,50,100 "
                              "(default: rollout.steps)."),
    reason: str = typer.Option("", "--reason", help="Why (kept in the log)."),
    who: str = WHO_OPTION,
    store: str = STORE_OPTION,
) -> None:
    """Start a rollout of RELEASE on CHANNEL at its first step (the live release is the stable arm)."""
    from rung.config.operations import RolloutConfig
    from rung.errors import ConfigError
    from rung.ops.rollout.machine import start_rollout

    cfg = load(config)
    data = cfg.rollout.model_dump()
    if mode:
        data["mode"] = mode
    if steps:
        try:
            data["steps"] = [float(s) for s in steps.split(",") if s.strip()]
        except ValueError:
            raise ConfigError(f"--steps {steps!r}: expected percentages such as 5,25,50,100") from None
    try:
        rcfg = RolloutConfig.model_validate(data)
    except ValueError as e:
        raise ConfigError(f"rollout: {str(e).splitlines()[-1] if str(e) else e}") from None
    st = _store(cfg, store)
    try:
        r = start_rollout(st, channel, release, rcfg, who=who, reason=reason)
    finally:
        st.close()
    console().print(f"[green]started[/] rollout [bold]{r.id}[/] on {escape(channel)}: "
                    f"{r.canary[:12]} over {str(r.stable)[:12]}, {r.mode}, steps "
                    f"{', '.join(f'{s:g}%' for s in r.steps)} (now {r.weight:g}%)")


@rollout_app.command("status")
def status(
    channel: str = typer.Argument("production", help="Channel."),
    config: Path = CONFIG_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the rollout as JSON."),
    store: str = STORE_OPTION,
) -> None:
    """The channel's latest rollout: step, weight, the last judgement and its events."""
    from rung.ops.rollout.state import current_rollout

    cfg = load(config)
    st = _store(cfg, store)
    try:
        r = current_rollout(st, channel)
    finally:
        st.close()
    con = console()
    if r is None:
        con.print(f"channel {escape(channel)} has had no rollout")
        return
    if as_json:
        con.print_json(json.dumps(r.to_dict(), default=str))
        return
    con.print(f"rollout [bold]{r.id}[/] on {escape(channel)}: {r.canary[:12]} over {str(r.stable)[:12]} "
              f"({r.mode}), [bold]{r.status}[/], step {r.step + 1}/{len(r.steps)}, weight {r.weight:g}%")
    if r.last_decision:
        _print_judge(r.last_decision)
    t = Table(title="events", title_justify="left")
    for col in ("seq", "at", "action", "weight", "reason"):
        t.add_column(col, overflow="fold")
    for e in r.events:
        t.add_row(str(e.seq), (e.at or "")[:19].replace("T", " "), e.flag or "", f"{e.value}%",
                  escape(e.reason))
    con.print(t)


def _print_judge(d: dict) -> None:
    con = console()
    t = Table(title=f"judge: {d.get('decision')} ({d.get('mode')})", title_justify="left")
    for col in ("metric", "test", "stable", "canary", "delta / ratio", "p", "n", "verdict"):
        t.add_column(col, overflow="fold")
    def fmt(v: object) -> str:
        return "-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))

    for c in d.get("checks", []):
        change = (f"x{c['ratio']:.2f}" if c.get("ratio") else
                  (f"{c['delta']:+.3f}" if c.get("delta") is not None else "-"))
        n = f"{c.get('n_pairs')} pairs" if c.get("n_pairs") is not None else f"{c['n_stable']}/{c['n_canary']}"
        if c.get("discordant"):
            n += f" ({c['discordant'][0]}/{c['discordant'][1]} discordant)"
        colour = {"fail": "red", "pass": "green", "inconclusive": "yellow"}.get(c["verdict"], "dim")
        t.add_row(c["name"], c["test"], fmt(c.get("stable")), fmt(c.get("canary")), change,
                  fmt(c.get("p_value")), n, f"[{colour}]{c['verdict']}[/]")
    con.print(t)
    for n in d.get("needed", []):
        con.print(f"[yellow]needs:[/] {escape(n)}")


@rollout_app.command("evaluate")
def evaluate_cmd(
    channel: str = typer.Argument("production", help="Channel."),
    config: Path = CONFIG_OPTION,
    traces: Path = TRACES_OPTION,
    watch: bool = typer.Option(False, "--watch", help="Keep evaluating until the rollout ends."),
    interval: float = typer.Option(30.0, "--interval", help="Seconds between evaluations (--watch)."),
    who: str = WHO_OPTION,
    store: str = STORE_OPTION,
) -> None:
    """Judge the running rollout's current step now and act on it (next step, hold, rollback,
    promote). `rung monitor --watch` and `rung serve` do this on their own."""
    from rung.ops.rollout.machine import evaluate
    from rung.ops.rollout.state import iso_seconds, running_rollout
    from rung.ops.tracesource import load_records

    cfg = load(config)
    st = _store(cfg, store)
    con = console()
    try:
        while True:
            r = running_rollout(st, channel)
            if r is None:
                con.print(f"channel {escape(channel)} has no running rollout")
                return
            records = load_records(cfg, since=iso_seconds(r.step_started_at), file=traces,
                                   channel=channel)
            out = evaluate(st, channel, records, gate=cfg.gate, who=who)
            if out is not None:
                colour = {"rollback": "red", "blocked": "red", "promoted": "green", "step": "green"}.get(
                    out.action, "yellow")
                con.print(f"[{colour}]{out.action}[/] {escape(out.message)}")
                if out.result is not None:
                    _print_judge(out.result.to_dict())
                if not out.rollout.running or not watch:
                    return
            time.sleep(interval)
    finally:
        st.close()


@rollout_app.command("abort")
def abort(
    channel: str = typer.Argument(..., help="Channel."),
    config: Path = CONFIG_OPTION,
    reason: str = typer.Option("", "--reason", help="Why (kept in the log)."),
    who: str = WHO_OPTION,
    store: str = STORE_OPTION,
) -> None:
    """Stop the running rollout: the new release gets no more traffic (weight 0)."""
    from rung.ops.rollout.machine import abort_rollout

    cfg = load(config)
    st = _store(cfg, store)
    try:
        r = abort_rollout(st, channel, reason=reason, who=who)
    finally:
        st.close()
    console().print(f"[yellow]aborted[/] rollout {r.id} on {escape(channel)} (weight 0)")
