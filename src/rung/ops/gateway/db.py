"""The gateway's tables live in the project's store (paths.store: SQLite by default, any
SQLAlchemy URL such as Postgres for several gateway instances). The engine is the run store's,
so the same pragmas apply (SQLite: WAL, synchronous=NORMAL, busy timeout)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import MetaData

metadata = MetaData()


def open_engine(target: str | Path) -> Any:
    """An engine on the store at `target` (a SQLite path or a SQLAlchemy URL) with the gateway's
    tables created."""
    from rung.errors import StoreError
    from rung.evals.store import RunStore
    from rung.ops.gateway import keys, traces  # noqa: F401 - their tables join `metadata`

    store = RunStore(target)
    try:
        metadata.create_all(store.engine)
    except Exception as e:  # noqa: BLE001 - any driver error, reported as one line
        raise StoreError(f"{store.where}: cannot create the gateway's tables: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    return store.engine


def where(engine: Any) -> str:
    return engine.url.render_as_string(hide_password=True)
