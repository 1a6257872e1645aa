"""`rung release create|list|show|diff|verify|promote|rollback|history|flag` (rung.ops.releases)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from rung.cli._common import CONFIG_OPTION, STORE_OPTION, load
from rung.cli._progress import progress_bar
from rung.cli._state import console, err_console
from rung.cli.main import app

release_app = typer.Typer(
    help="Releases: one immutable, content-addressed manifest of a candidate and everything its "
    "answers depend on (model weights, adapter, prompt blocks, knowledge, schemas, tools) plus "
    "the evidence; channels (production, staging, production@tenant) with an append-only "
    "history, promotion gated by the eval gate and a paired comparison, rollback, flags.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(release_app, name="release")

WHO_OPTION = typer.Option(None, "--who", help="Who is acting (default: $RUNG_USER, else the login name).")
ARTIFACTS_OPTION = typer.Option(None, "--artifacts", help="Folder release files are copied into by hash "
                                "(default: paths.releases of rung.yaml, else releases/ beside the SQLite store).")


def _project(config: Path):  # -> RungConfig | None
    p = config / "rung.yaml" if config.is_dir() else config
    return load(config) if p.exists() else None


def _store(config: Path, store: str | None, artifacts: Path | None = None):  # -> ReleaseStore
    from rung.ops.releases import ReleaseStore

    cfg = _project(config)
    if cfg is not None:
        return ReleaseStore.for_config(cfg, store, artifacts)
    from rung.config import paths

    return ReleaseStore(store or Path(paths.STORE), artifacts)


def _when(iso: str | None) -> str:
    return (iso or "-")[:19].replace("T", " ")


def _live_on(st) -> dict[str, list[str]]:
    """release id -> channels it is live on now."""
    out: dict[str, list[str]] = {}
    for ch in st.channels():
        rid = st.state(ch).release_id
        if rid:
            out.setdefault(rid, []).append(ch)
    return out


@release_app.command("create")
def create(
    candidate: str = typer.Argument(None, help="Candidate of rung.yaml (default: the one `rung decide` chose)."),
    config: Path = CONFIG_OPTION,
    run: list[str] = typer.Option(None, "--run", "-r", help="Evidence run id (repeatable; default: the "
                                  "candidate's latest finished run on each suite)."),
    decision: Path = typer.Option(None, "--decision", help="decision.json of `rung decide` to record "
                                  "(default with no CANDIDATE: .rung/decision/decision.json)."),
    note: str = typer.Option("", "--note", help="A note kept with the release (not part of its id)."),
    who: str = WHO_OPTION,
    store: str = STORE_OPTION,
    artifacts: Path = ARTIFACTS_OPTION,
) -> None:
    """Make a release of a candidate: snapshot its files and settings, copy them into the
    artifact store by hash, record its eval runs; the id is the manifest's hash."""
    from rung.config import paths
    from rung.errors import ConfigError
    from rung.ops.releases import create_release, read_decision

    cfg = load(config)
    if candidate is None:
        path = decision or cfg.path("decisions") / paths.DECISION_FILE
        if not Path(path).is_file():
            raise ConfigError(f"name a candidate, or run `rung decide` first (no {path})")
        candidate = read_decision(path).get("candidate")
        if not candidate:
            raise ConfigError(f"{path}: the decision chose no candidate; name one")
        decision = Path(path)
    st = _store(config, store, artifacts)
    with progress_bar(f"release of {candidate}: index and files") as bar:
        made = create_release(cfg, candidate, st, runs=run or None, decision=decision, note=note,
                              who=who, progress=bar)
    rel = made.release
    con = console()
    verb = "created" if made.created else "exists"
    con.print(f"[green]{verb}[/] release [bold]{rel.id}[/] ({escape(rel.candidate)}, level {rel.level}): "
              f"{len(rel.content.get('files', {}))} files, {len(rel.run_ids)} run(s)")
    for n in made.notes:
        con.print(f"[yellow]note:[/] {escape(n)}")


@release_app.command("list")
def list_(
    config: Path = CONFIG_OPTION,
    candidate: str = typer.Option(None, "--candidate", "-C", help="Only releases of this candidate."),
    limit: int = typer.Option(30, "--limit", "-n", help="How many (newest first)."),
    store: str = STORE_OPTION,
) -> None:
    """Releases, newest first, with where each is live now."""
    st = _store(config, store)
    live = _live_on(st)
    t = Table(title="releases", title_justify="left")
    for col in ("id", "candidate", "level", "created", "by", "runs", "live on", "note"):
        t.add_column(col, overflow="fold", no_wrap=col in ("id", "created"))
    for r in st.list_releases(limit=limit, candidate=candidate):
        t.add_row(r.short, escape(r.candidate), str(r.level), _when(r.created_at), escape(r.created_by),
                  ", ".join(r.run_ids) or "[dim]none[/]", ", ".join(live.get(r.id, [])), escape(r.note))
    console().print(t)


@release_app.command("show")
def show(
    release: str = typer.Argument(..., help="Release id (or a unique prefix)."),
    config: Path = CONFIG_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the whole manifest as JSON."),
    store: str = STORE_OPTION,
) -> None:
    """One release: what it contains, its evidence and where it is live."""
    st = _store(config, store)
    rel = st.load_release(release)
    if as_json:
        typer.echo(json.dumps({"id": rel.id, **rel.manifest}, indent=2, ensure_ascii=False, default=str))
        return
    c, e = rel.content, rel.evidence
    t = Table(title=f"release {rel.id}", title_justify="left", show_header=False)
    t.add_column("what", style="dim", no_wrap=True)
    t.add_column("value", overflow="fold")
    t.add_row("candidate", f"{escape(rel.candidate)} (level {rel.level})")
    t.add_row("created", f"{_when(rel.created_at)} by {escape(rel.created_by)}"
              + (f", git {rel.git_commit[:12]}" if rel.git_commit else ""))
    if rel.note:
        t.add_row("note", escape(rel.note))
    m = c["model"]
    t.add_row("model", f"{escape(str(m.get('path') if m.get('backend') == 'local' else m.get('model')))} "
              f"({m.get('backend')}, weights {str(m.get('weights_sha256'))[:12]})")
    if c.get("adapter"):
        a = c["adapter"]
        lin = a.get("lineage") or {}
        t.add_row("adapter", f"{escape(a['name'])} {str(a.get('sha256', ''))[:12]}"
                  + (f", dataset {lin.get('dataset_version')}, job {lin.get('job_id')}" if lin else ""))
    if c.get("prompt"):
        t.add_row("prompt blocks", ", ".join(f"{b['name']} {b['version']}" for b in c["prompt"]["blocks"]) or "-")
    if c.get("knowledge"):
        k = c["knowledge"]
        t.add_row("knowledge", f"{k['corpus']}: {len(k['documents'])} documents, index "
                  f"{k['index_fingerprint'][:12]}, embedder {escape(k['embedder'])}")
    for comp in ("reranker", "refusal_gate", "schemas", "tools"):
        if c.get(comp):
            t.add_row(comp.replace("_", " "), escape(json.dumps(c[comp], default=str))[:300])
    t.add_row("files", str(len(c.get("files", {}))))
    t.add_row("runs", ", ".join(f"{r['id']} ({r['suite']})" for r in e.get("runs", [])) or "none")
    if e.get("decision"):
        d = e["decision"]
        t.add_row("decision", escape(f"{d.get('action')} {d.get('candidate')}: {d.get('headline')}"))
    t.add_row("rung", str(e.get("rung_version")))
    t.add_row("live on", ", ".join(_live_on(st).get(rel.id, [])) or "-")
    console().print(t)


@release_app.command("diff")
def diff(
    a: str = typer.Argument(..., help="The older release."),
    b: str = typer.Argument(..., help="The newer release."),
    config: Path = CONFIG_OPTION,
    store: str = STORE_OPTION,
) -> None:
    """What changed from release A to release B, component by component."""
    from rung.ops.releases import diff_releases

    st = _store(config, store)
    ra, rb = st.load_release(a), st.load_release(b)
    changes = diff_releases(ra, rb)
    con = console()
    con.print(f"{ra.short} ({escape(ra.candidate)}) -> {rb.short} ({escape(rb.candidate)}): "
              f"{len(changes) or 'no'} change(s)")
    for ch in changes:
        con.print(_change_line(ch))


@release_app.command("verify")
def verify(
    release: str = typer.Argument(..., help="Release id (or a unique prefix)."),
    config: Path = CONFIG_OPTION,
    store: str = STORE_OPTION,
) -> None:
    """Re-hash the release: its manifest, its copied artifacts and (with rung.yaml) the
    project's files now; name everything that drifted. Exit 1 on drift."""
    from rung.ops.releases import verify_release

    cfg = _project(config)
    st = _store(config, store)
    v = verify_release(st, release, cfg)
    con = console()
    where = " and the project's files" if v.against_project else ""
    if v.ok:
        con.print(f"[green]ok[/] release {v.release[:12]}: manifest, {v.checked_files} artifact(s){where} "
                  "match")
        return
    con.print(f"[red]drift[/] release {v.release[:12]}: {len(v.drift)} difference(s) from what was released")
    for ch in v.drift:
        con.print(_change_line(ch))
    raise typer.Exit(1)


def _change_line(ch) -> str:  # ch: rung.ops.releases.Change
    name = f" {escape(ch.name)}" if ch.name else ""
    return f"  [bold]{escape(ch.component)}[/]{name}: {escape(ch.detail)}"


def _check_table(check) -> Table:
    t = Table(title=f"promotion check: {check.release[:12]} -> {check.channel}"
              + (f" (live {check.live[:12]})" if check.live else " (channel empty)"), title_justify="left")
    t.add_column("", no_wrap=True)
    t.add_column("check", overflow="fold")
    for line in check.lines:
        t.add_row("[green]PASS[/]" if line.passed else "[red]FAIL[/]", escape(line.message))
    return t


@release_app.command("promote")
def promote(
    release: str = typer.Argument(..., help="Release id (or a unique prefix)."),
    to: str = typer.Option(..., "--to", help="Channel: production, staging, production@tenant, ..."),
    config: Path = CONFIG_OPTION,
    force: bool = typer.Option(False, "--force", help="Promote even if the gate or comparison fails "
                               "(needs --reason; recorded)."),
    reason: str = typer.Option("", "--reason", help="Why (kept in the channel's log)."),
    who: str = WHO_OPTION,
    store: str = STORE_OPTION,
) -> None:
    """Point a channel at a release if its runs pass the gate and a paired comparison with the
    live release's run on the same suite shows no significant regression."""
    from rung.config import GateConfig
    from rung.ops.releases import PromotionRefused
    from rung.ops.releases import promote as do_promote

    cfg = _project(config)
    gate = cfg.gate if cfg is not None else GateConfig()
    st = _store(config, store)
    con = console()
    try:
        ev, check = do_promote(st, release, to, gate, who=who, reason=reason, force=force)
    except PromotionRefused as e:
        check = e.check
        err_console().print(_check_table(check))
        live = f" over live {check.live[:12]}" if check.live else ""
        err_console().print(f"[bold red]refused[/]: {check.release[:12]} to {escape(to)}{live}: "
                            f"{len(check.failures)} check(s) failed (above). Override with --force "
                            "--reason \"...\" (recorded in the channel's log)", soft_wrap=True)
        raise typer.Exit(1) from None
    con.print(_check_table(check))
    forced = " [yellow](forced: override recorded)[/]" if ev.forced else ""
    con.print(f"[green]promoted[/] {ev.release_id[:12]} to [bold]{escape(ev.channel)}[/] "
              f"(event #{ev.seq}, from {(ev.previous_id or 'nothing')[:12]}){forced}")


@release_app.command("rollback")
def rollback(
    channel: str = typer.Argument(..., help="The channel to roll back."),
    to: str = typer.Option(None, "--to", help="Release to go back to (default: the last one good there)."),
    reason: str = typer.Option("", "--reason", help="Why (kept in the channel's log)."),
    config: Path = CONFIG_OPTION,
    who: str = WHO_OPTION,
    store: str = STORE_OPTION,
) -> None:
    """Point a channel back at an earlier release (no gate: this is the way back)."""
    from rung.ops.releases import rollback as do_rollback

    ev = do_rollback(_store(config, store), channel, to=to, who=who, reason=reason)
    console().print(f"[green]rolled back[/] [bold]{escape(ev.channel)}[/]: {(ev.previous_id or '')[:12]} -> "
                    f"{(ev.release_id or '')[:12]} (event #{ev.seq})")


@release_app.command("history")
def history(
    channel: str = typer.Argument(None, help="The channel (default: every channel)."),
    at: str = typer.Option(None, "--at", help="What was live at this time (ISO 8601; no zone: local time)."),
    config: Path = CONFIG_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the events (and the state at --at) as JSON."),
    store: str = STORE_OPTION,
) -> None:
    """A channel's append-only log: who moved it, when, from what to what, why, with which
    evidence; with --at, what was live then."""
    from rung.ops.releases import channel_state
    from rung.ops.releases.store import to_iso

    st = _store(config, store)
    until = to_iso(at) if at else None
    events = st.events(channel, until=until)
    state = channel_state(st, channel, at=until) if channel and at else None
    if as_json:
        out: dict = {"events": [e.to_dict() for e in events]}
        if state is not None:
            out["at"] = until
            out["live"] = state.release_id
            out["flags"] = state.flags
        typer.echo(json.dumps(out, indent=2, ensure_ascii=False, default=str))
        return
    con = console()
    if state is not None:
        if state.release_id is None:
            con.print(f"at {until}: nothing was live on [bold]{escape(channel)}[/]")
        else:
            rel = st.load_release(state.release_id)
            by = state.moved_by
            con.print(f"at {until}: [bold]{escape(channel)}[/] -> release [bold]{rel.short}[/] "
                      f"({escape(rel.candidate)}), live since {_when(state.since)}"
                      + (f" ({by.kind} by {escape(by.who)}{': ' + escape(by.reason) if by.reason else ''})"
                         if by else "")
                      + (f"; flags: {', '.join(f'{k}={v}' for k, v in state.flags.items())}" if state.flags else ""))
    t = Table(title=f"history of {channel}" if channel else "history", title_justify="left")
    for col in ("#", "channel", "when (UTC)", "what", "from", "to", "who", "why", "evidence"):
        t.add_column(col, overflow="fold", no_wrap=col in ("#", "when (UTC)"))
    for e in events:
        what = e.kind + (" (forced)" if e.forced else "")
        if e.kind == "flag":
            what = f"flag {e.flag}={e.value}"
        elif e.kind not in ("promote", "rollback"):  # e.g. a rollout's steps
            what = " ".join(x for x in (e.kind, e.flag, e.value) if x)
        evidence = ", ".join(e.evidence.get("runs", [])) if e.kind == "promote" else ""
        if e.forced:
            evidence += "; override: " + "; ".join(e.evidence.get("override", []))
        t.add_row(str(e.seq), escape(e.channel), _when(e.at), what,
                  (e.previous_id or "-")[:12] if e.kind != "flag" else "",
                  (e.release_id or "-")[:12] if e.kind != "flag" else "",
                  escape(e.who), escape(e.reason), escape(evidence))
    con.print(t)


@release_app.command("flag")
def flag(
    channel: str = typer.Argument(..., help="The channel."),
    setting: str = typer.Argument(..., help="NAME=VALUE: adapter=off|on, retrieval=require_citations|on, "
                                  "refusal_gate=off|on."),
    reason: str = typer.Option("", "--reason", help="Why (kept in the channel's log)."),
    config: Path = CONFIG_OPTION,
    who: str = WHO_OPTION,
    store: str = STORE_OPTION,
) -> None:
    """Switch part of the live release on a channel, read at request time (logged)."""
    from rung.ops.releases import ReleaseError, channel_flags, set_flag

    if "=" not in setting:
        raise ReleaseError(f"{setting!r}: expected NAME=VALUE, e.g. adapter=off")
    name, value = (s.strip() for s in setting.split("=", 1))
    st = _store(config, store)
    ev = set_flag(st, channel, name, value, who=who, reason=reason)
    flags = channel_flags(st, channel)
    console().print(f"[green]set[/] {escape(name)}={escape(value)} on [bold]{escape(channel)}[/] "
                    f"(event #{ev.seq}); flags now: "
                    + (", ".join(f"{k}={v}" for k, v in flags.items()) or "none (all defaults)"))
