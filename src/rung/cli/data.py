"""`rung data build`, `rung data show`, `rung data list`: training datasets (rung.tune.data)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from rung.cli._common import CONFIG_OPTION, load
from rung.cli._progress import progress_bar
from rung.cli._state import console
from rung.cli.main import app

data_app = typer.Typer(
    help="Training datasets for levels 1 and 2: build them from train cases, scored runs and "
    "your files (with lineage), check them (duplicates, leakage into the eval suites, empty "
    "targets, counter-examples), balance them and describe them in a card.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(data_app, name="data")

SEVERITY_STYLE = {"ok": "green", "warning": "yellow", "error": "red"}


def _counts_table(counts: dict[str, dict[str, int]], keys: list[tuple[str, str]],
                  limit: int = 40) -> Table:
    """One table, a section per dimension (source, label, ...): value and number of examples."""
    t = Table(title="examples", title_justify="left")
    t.add_column("by", no_wrap=True, style="dim")
    t.add_column("value", overflow="fold")
    t.add_column("examples", justify="right")
    for i, (key, title) in enumerate(keys):
        rows = list(counts.get(key, {}).items())
        if i:
            t.add_section()
        for j, (value, n) in enumerate(rows[:limit]):
            t.add_row(title if j == 0 else "", escape(str(value)), str(n))
        if len(rows) > limit:
            t.add_row("", f"[dim]… {len(rows) - limit} more[/]", "")
    return t


SHORT_KEYS = [("source", "source"), ("label", "label")]
FULL_KEYS = [("source", "source"), ("label", "label"), ("length", "length"),
             ("language", "language (stopword heuristic)"), ("product_version", "product version"),
             ("policy_version", "policy version"), ("annotator", "annotator"), ("tag", "tag")]


def _checks_table(checks: list[dict[str, Any]]) -> Table:
    t = Table(title="checks", title_justify="left")
    t.add_column("check", no_wrap=True)
    t.add_column("result", no_wrap=True)
    t.add_column("what was found", overflow="fold")
    for f in checks:
        sev = f["severity"]
        shown = f"[{SEVERITY_STYLE[sev]}]{sev}[/]" + (" [dim](allowed)[/]" if f.get("allowed") else "")
        t.add_row(f["check"], shown, escape(f["message"]))
    return t


def _balance_table(b: dict[str, Any]) -> Table:
    t = Table(title=f"balance: {b['before']} → {b['after']} examples (seed {b['seed']})",
              title_justify="left")
    t.add_column("step", no_wrap=True)
    t.add_column("rule", overflow="fold")
    t.add_column("before → after", overflow="fold")
    t.add_column("dropped", justify="right")
    for s in b["steps"]:
        moves = ", ".join(f"{k} {v}→{s['after'].get(k, 0)}" for k, v in s["before"].items())
        note = f" [dim]({escape(s['note'])})[/]" if s.get("note") else ""
        t.add_row(escape(s["step"]), escape(s["rule"]) + note, escape(moves), str(s["dropped"]))
    if not b["steps"]:
        t.add_row("[dim]none[/]", "no balancing configured (tune.data.balance)", "", "0")
    return t


def print_card(card: dict[str, Any], *, full: bool) -> None:
    con = console()
    con.print(_counts_table(card.get("counts", {}), FULL_KEYS if full else SHORT_KEYS))
    if card.get("skipped"):
        t = Table(title="skipped records", title_justify="left")
        t.add_column("reason", overflow="fold")
        t.add_column("count", justify="right")
        t.add_column("e.g.", overflow="fold")
        for reason, d in card["skipped"].items():
            t.add_row(escape(reason), str(d["count"]), escape(", ".join(d["refs"][:3])))
        con.print(t)
    con.print(_checks_table(card.get("checks", [])))
    if card.get("balance") and (full or card["balance"]["steps"]):
        con.print(_balance_table(card["balance"]))


@data_app.command("build")
def build(
    config: Path = CONFIG_OPTION,
    run: list[str] = typer.Option(None, "--run", "-r", metavar="ID", help="Also use the scored answers of this run "
                                  "(id or unique prefix; repeatable): good answers become examples, "
                                  "bad ones counter-examples."),
    file: list[Path] = typer.Option(None, "--file", "-f", metavar="PATH", help="Also use this file (repeatable): chat "
                                    "`messages` JSONL, prompt/completion JSONL or a HF dataset folder "
                                    "saved with save_to_disk."),
    allow: list[str] = typer.Option(None, "--allow", metavar="CHECK", help="Build even though this check fails "
                                    "(repeatable): empty_targets, exact_duplicates, near_duplicates, "
                                    "leakage, counter_examples."),
) -> None:
    """Build the training set of rung.yaml `tune.data`: sources -> hard negatives -> checks ->
    balance -> card, saved under `paths.datasets/<version>/`. The version is a content hash: the
    same examples give the same version. A failing check stops the build unless allowed."""
    from rung.tune.data import build_dataset, datasets_root

    cfg = load(config)
    with progress_bar("building the dataset") as bar:
        dataset, card = build_dataset(cfg, runs=run or [], files=file or [], allow=allow or [],
                                      progress=bar)
    print_card(card, full=False)
    con = console()
    version = dataset.version
    con.print(f"dataset [bold]{version}[/]: {len(dataset)} examples (of {card['sourced']} sourced)")
    con.print(f"saved in {escape(str(datasets_root(cfg) / version))}")


@data_app.command("show")
def show(
    dataset: str = typer.Argument(None, metavar="VERSION|PATH", help="A dataset version (or unique prefix) or folder; "
                                  "default: the newest build."),
    config: Path = CONFIG_OPTION,
) -> None:
    """Show a dataset's card: counts by source, label, length, language, tag and lineage, the
    checks' findings and the balance report."""
    from rung.tune.data.catalog import datasets_root, find_dataset, read_card

    root = datasets_root(load(config)) if (dataset is None or not Path(dataset).exists()) else Path(".")
    folder = find_dataset(root, dataset)
    meta = read_card(folder)
    card = meta.get("card", {})
    con = console()
    con.print(f"dataset [bold]{escape(str(meta.get('version', folder.name)))}[/] · "
              f"{meta.get('examples', '?')} examples · built {escape(card.get('built_at', '?'))} · "
              f"{escape(str(folder))}")
    if not card:
        con.print("[yellow]no card in card.json[/]")
        return
    print_card(card, full=True)


@data_app.command("list")
def list_(config: Path = CONFIG_OPTION) -> None:
    """List the datasets built for this project, newest first."""
    from rung.tune.data.catalog import datasets_root, list_datasets

    root = datasets_root(load(config))
    entries = list_datasets(root)
    con = console()
    if not entries:
        con.print(f"no datasets in {escape(str(root))} (build one with `rung data build`)")
        return
    t = Table(title=f"datasets in {escape(str(root))}", title_justify="left")
    for col in ("version", "examples", "built", "sources", "labels", "checks"):
        t.add_column(col, no_wrap=col != "checks")
    for e in entries:
        counts = e.card.get("counts", {})
        worst = {f["check"]: f["severity"] for f in e.card.get("checks", []) if f["severity"] != "ok"}
        t.add_row(e.version, str(e.examples), e.built_at,
                  ", ".join(f"{k} {v}" for k, v in counts.get("source", {}).items()),
                  ", ".join(f"{k} {v}" for k, v in counts.get("label", {}).items()),
                  ", ".join(f"{k}: {v}" for k, v in worst.items()) or "[green]ok[/]")
    con.print(t)
