"""`rung keys create|list|revoke`: API keys of the gateway, one tenant each, stored hashed."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from rung.cli._common import CONFIG_OPTION, STORE_OPTION, load
from rung.cli._state import console, err_console
from rung.cli.main import app

keys_app = typer.Typer(help="API keys for `rung serve`: one tenant per key, only a hash is stored.",
                       no_args_is_help=True, rich_markup_mode="rich")
app.add_typer(keys_app, name="keys")


def _keystore(config: Path, store: str | None):  # -> KeyStore
    from rung.ops.gateway.db import open_engine
    from rung.ops.gateway.keys import KeyStore

    target = store if store else load(config).store_target()
    return KeyStore(open_engine(target))


@keys_app.command("create")
def create(
    tenant: str = typer.Option(..., "--tenant", "-t", help="The tenant the key belongs to."),
    name: str = typer.Option("", "--name", "-n", help="A label for the key (who or what uses it)."),
    rpm: float = typer.Option(None, "--requests-per-minute", "--rpm",
                              help="This key's rate limit (default: the tenant's, else serving.rate_limit)."),
    config: Path = CONFIG_OPTION,
    store: str = STORE_OPTION,
) -> None:
    """Create a key for TENANT and print it once (it cannot be shown again)."""
    rec, key = _keystore(config, store).create(tenant, name, rpm)
    typer.echo(key)  # alone on stdout: KEY=$(rung keys create --tenant acme)
    err_console().print(f"[dim]key id {rec.id} · tenant {escape(rec.tenant)} · stored as a sha256 hash; "
                    f"revoke with `rung keys revoke {rec.id}`[/]", highlight=False)


@keys_app.command("list")
def list_keys(
    tenant: str = typer.Option(None, "--tenant", "-t", help="Only this tenant's keys."),
    all_: bool = typer.Option(False, "--all", help="Include revoked keys."),
    config: Path = CONFIG_OPTION,
    store: str = STORE_OPTION,
) -> None:
    """The keys (ids, tenants, names; never the keys themselves)."""
    keys = _keystore(config, store).list(tenant, include_revoked=all_)
    t = Table(title=f"API keys ({len(keys)})", title_justify="left")
    for col in ("id", "tenant", "name", "created", "rate limit", "status"):
        t.add_column(col)
    for k in keys:
        t.add_row(k.id, escape(k.tenant), escape(k.name), k.created_at,
                  f"{k.requests_per_minute:g}/min" if k.requests_per_minute else "default",
                  "active" if k.active else f"[red]revoked {k.revoked_at}[/]")
    console().print(t)


@keys_app.command("revoke")
def revoke(
    key_id: str = typer.Argument(..., help="The key id (from `rung keys list`)."),
    config: Path = CONFIG_OPTION,
    store: str = STORE_OPTION,
) -> None:
    """Revoke a key: requests with it get 401 within 5 seconds on every gateway."""
    rec = _keystore(config, store).revoke(key_id)
    console().print(f"revoked key {rec.id} of tenant {escape(rec.tenant)} at {rec.revoked_at}")
