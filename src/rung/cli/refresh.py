"""`rung refresh -c rung.yaml [--step NAME | --until NAME]` (rung.ops.refresh)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import typer
from rich.markup import escape

from rung.cli._common import CONFIG_OPTION, STORE_OPTION, load
from rung.cli._progress import progress_bar
from rung.cli._state import console
from rung.cli.main import app

STEP_HELP = "examples | dataset | tune | eval | release | rollout"


@app.command("refresh")
def refresh(
    config: Path = CONFIG_OPTION,
    step: str = typer.Option(None, "--step", help=f"Run only this step ({STEP_HELP}); it reads what the "
                             "step before it left in .rung/refresh/state.json."),
    until: str = typer.Option(None, "--until", help="Run the loop up to and including this step."),
    since: str = typer.Option(None, "--since", help="Traces newer than this (default: refresh.since)."),
    traces: Path = typer.Option(None, "--traces", help="Read trace records from this JSONL file instead "
                                "of the gateway's store."),
    allow: list[str] = typer.Option(None, "--allow", help="Dataset check to let through (repeatable)."),
    status: bool = typer.Option(False, "--status", help="Print what the last refresh left and exit."),
    store: str = STORE_OPTION,
) -> None:
    """Continuous training: labelled traces -> examples with lineage (policy invalidation) ->
    dataset checks -> tune -> eval on the suite -> release (gated) -> rollout (shadow first)."""
    from rung.config.operations import parse_duration
    from rung.errors import ConfigError
    from rung.ops.refresh import (
        STATE_FILE,
        STEPS,
        RefreshState,
        step_dataset,
        step_eval,
        step_examples,
        step_release,
        step_rollout,
        step_tune,
    )

    cfg = load(config)
    state_path = cfg.resolve(STATE_FILE)
    con = console()
    if status:
        con.print_json(json.dumps(RefreshState.load(state_path).__dict__, default=str))
        return
    for name, value in (("--step", step), ("--until", until)):
        if value is not None and value not in STEPS:
            raise ConfigError(f"{name} {value!r}: one of {STEP_HELP}")
    if step is not None:
        todo = [step]
    else:
        todo = list(STEPS[:STEPS.index(until) + 1]) if until else list(STEPS)
    state = RefreshState() if todo[0] == "examples" else RefreshState.load(state_path)
    st = None
    if any(s in ("tune", "eval", "release", "rollout") for s in todo):
        from rung.ops.releases import ReleaseStore

        st = ReleaseStore.for_config(cfg, store)
    try:
        for s in todo:
            if s == "examples":
                from rung.ops.tracesource import load_records

                try:
                    back = parse_duration(since or cfg.refresh.since)
                except ValueError as e:
                    raise ConfigError(f"--since: {e}") from None
                now = datetime.now(timezone.utc).timestamp()
                records = load_records(cfg, since=now - back, file=traces)
                if cfg.refresh.channels:
                    records = [r for r in records if r.channel.split("@")[0] in cfg.refresh.channels
                               or r.channel in cfg.refresh.channels]
                state = step_examples(cfg, records, state)
                inv = state.invalidation or {}
                for doc, counts in sorted((inv.get("by_document") or {}).items()):
                    con.print(f"  policy {escape(doc)} replaced: {counts['retargeted']} example(s) re-targeted, "
                              f"{counts['dropped']} dropped")
            elif s == "dataset":
                state = step_dataset(cfg, state, allow=allow or ())
            elif s == "tune":
                with progress_bar("tuning") as bar:
                    state = step_tune(cfg, state, st, progress=bar)
            elif s == "eval":
                with progress_bar("evaluating the refreshed candidate") as bar:
                    state = step_eval(cfg, state, st, progress=bar)
            elif s == "release":
                state = step_release(cfg, state, st)
            elif s == "rollout":
                state = step_rollout(cfg, state, st)
            state.save(state_path)
            con.print(f"[green]{s}[/]: {escape(state.log[-1])}")
            if s == "release" and state.gate is not None and not state.gate.get("passed"):
                con.print("[red]the release gate failed: the loop stops here (nothing is rolled out)[/]")
                raise typer.Exit(1)
    finally:
        if st is not None:
            st.close()
