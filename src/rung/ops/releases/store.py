"""Releases and channels in the run store's database, artifacts in its artifact folder.

Two tables beside `runs` (SQLAlchemy core; SQLite by default, any URL for a team):

- `releases`: one row per release, written once (id = sha256 of the canonical manifest).
- `channel_events`: the append-only log of every channel: promotions, rollbacks and flag
  changes, each with who, when, from -> to, why and the evidence. A channel's state at any
  instant is the fold of its events up to then. (channel, seq) is unique: an event is appended
  with seq = head + 1 inside one transaction, after checking that the head is the one the caller
  saw, so two processes moving the same channel at once cannot both win: the second gets a
  ChannelConflict. Triggers refuse UPDATE and DELETE on both tables (SQLite and PostgreSQL).

The artifact store is a folder of files named by their sha256 (`<releases folder>/blobs/ab/
abcd...`; the folder is rung.yaml's `paths.releases`, default .rung/releases), written once,
read-only; a release's manifest lists the hash of every file it needs.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from rung.errors import StoreError
from rung.ops.releases.errors import ChannelConflict, ReleaseError
from rung.ops.releases.manifest import release_id

_meta = MetaData()

releases_table = Table(
    "releases", _meta,
    Column("id", String(64), primary_key=True),
    Column("candidate", String(200), nullable=False),
    Column("level", Integer, nullable=False, default=0),
    Column("created_at", String(40), nullable=False),
    Column("created_by", String(200), nullable=False, default=""),
    Column("note", Text, nullable=False, default=""),
    Column("git_commit", String(64)),
    Column("manifest", JSON, nullable=False),
)

events_table = Table(
    "channel_events", _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel", String(200), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("kind", String(20), nullable=False),  # promote | rollback | flag
    Column("release_id", String(64)),  # to (promote / rollback); the live release (flag)
    Column("previous_id", String(64)),  # from
    Column("flag", String(100)),
    Column("value", String(200)),
    Column("who", String(200), nullable=False),
    Column("at", String(40), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("forced", Boolean, nullable=False, default=False),
    Column("evidence", JSON, nullable=False),
    UniqueConstraint("channel", "seq", name="uq_channel_seq"),
)

_APPEND_ONLY = ("releases", "channel_events")
CHANNEL_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}(@[A-Za-z0-9][A-Za-z0-9._-]{0,99})?$")


def now_iso() -> str:
    """UTC now with microseconds: ISO strings of this one format sort like the instants."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def to_iso(when: datetime | str) -> str:
    """An instant as the log writes it (naive datetimes and strings are local time)."""
    if isinstance(when, str):
        s = when.strip()
        if s.lower() == "now":
            return now_iso()
        try:
            when = datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            raise ReleaseError(f"{when!r} is not a time: use ISO 8601, e.g. 2026-03-20T14:05 "
                               "or 2026-03-20T14:05:00+00:00 (no zone: local time)") from None
    if when.tzinfo is None:
        when = when.astimezone()  # local time
    return when.astimezone(timezone.utc).isoformat(timespec="microseconds")


def current_user() -> str:
    """Who is acting: $RUNG_USER, else the login name."""
    who = os.environ.get("RUNG_USER", "").strip()
    if who:
        return who
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def check_channel(name: str) -> str:
    if not CHANNEL_RE.match(name or ""):
        raise ReleaseError(f"channel {name!r}: expected a name like production, staging or "
                           "production@acme (lower-case letters, digits, . _ -; @tenant optional)")
    return name


def base_channel(name: str) -> str | None:
    """production@acme -> production; None for a channel without a tenant."""
    return name.split("@", 1)[0] if "@" in name else None


# ---------------------------------------------------------------- records

@dataclass
class Release:
    """One stored release: its id and manifest (content, evidence, provenance)."""

    id: str
    candidate: str
    level: int
    created_at: str
    created_by: str
    note: str
    git_commit: str | None
    manifest: dict[str, Any]

    @property
    def short(self) -> str:
        return self.id[:12]

    @property
    def content(self) -> dict[str, Any]:
        return self.manifest["content"]

    @property
    def evidence(self) -> dict[str, Any]:
        return self.manifest["evidence"]

    @property
    def provenance(self) -> dict[str, Any]:
        return self.manifest.get("provenance", {})

    @property
    def run_ids(self) -> list[str]:
        return [r["id"] for r in self.evidence.get("runs", [])]


@dataclass
class ChannelEvent:
    """One entry of a channel's log."""

    channel: str
    seq: int
    kind: str  # promote | rollback | flag
    release_id: str | None
    previous_id: str | None
    who: str
    at: str
    reason: str = ""
    forced: bool = False
    flag: str | None = None
    value: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ChannelState:
    """What a channel points at after its events up to some instant (or now)."""

    channel: str
    seq: int  # the head: number of the last event counted (0: no event)
    release_id: str | None
    since: str | None  # when the release became live there
    moved_by: ChannelEvent | None  # the promotion or rollback that made it live
    flags: dict[str, str] = field(default_factory=dict)


def fold(channel: str, events: list[ChannelEvent]) -> ChannelState:
    """The state after `events` (in seq order)."""
    state = ChannelState(channel, 0, None, None, None, {})
    for e in events:
        state.seq = e.seq
        if e.kind in ("promote", "rollback"):
            state.release_id, state.since, state.moved_by = e.release_id, e.at, e
        elif e.kind == "flag" and e.flag:
            state.flags[e.flag] = e.value or ""
    return state


# ---------------------------------------------------------------- the store

class ReleaseStore:
    """Releases, channel logs and artifacts. `target` is the run store's SQLite path or
    SQLAlchemy URL; `artifacts` the folder release files are copied into by hash (default:
    `releases/` beside a SQLite file; required for a URL: a folder every machine that serves
    or verifies releases can read)."""

    def __init__(self, target: str | Path, artifacts: str | Path | None = None) -> None:
        from rung.evals.store import RunStore

        self.runs = RunStore(target)  # creates the runs tables (same database)
        self.where = self.runs.where
        if artifacts is None:
            if "://" in str(target):
                raise ReleaseError(f"{self.where}: the store is a URL: say where release artifacts go "
                                   "(paths.artifacts in rung.yaml, or --artifacts)")
            artifacts = Path(str(target)).expanduser().parent / "releases"
        self.artifacts = Path(artifacts).expanduser()
        self.blobs = self.artifacts / "blobs"
        self.engine = _engine(self.runs.url)
        try:
            _meta.create_all(self.engine)
            _append_only_triggers(self.engine)
        except SQLAlchemyError as e:
            raise StoreError(f"{self.where}: cannot create the release tables: {_first_line(e)}") from None

    @classmethod
    def for_config(cls, config: Any, store: str | Path | None = None,
                   artifacts: str | Path | None = None) -> ReleaseStore:
        """The project's store (or `store`) with the project's release folder: `paths.releases`
        (or `artifacts`)."""
        folder = getattr(config.paths, "releases", None)
        default = config.resolve(folder) if folder else config.resolve(config.paths.artifacts) / "releases"
        return cls(store or config.store_target(), artifacts or default)

    def __repr__(self) -> str:
        return f"ReleaseStore({self.where!r})"

    def close(self) -> None:
        self.engine.dispose()
        self.runs.close()

    # ------------------------------------------------------------ releases

    def add_release(self, release: Release) -> bool:
        """Insert a release; False when one with this id is already stored (same content)."""
        row = {f.name: getattr(release, f.name) for f in dataclasses.fields(Release)}
        try:
            with self.engine.begin() as conn:
                if conn.execute(select(releases_table.c.id).where(releases_table.c.id == release.id)).first():
                    return False
                conn.execute(releases_table.insert().values(**row))
        except IntegrityError:
            return False  # created at the same moment by another process: same content
        except SQLAlchemyError as e:
            raise StoreError(f"{self.where}: cannot store release {release.short}: {_first_line(e)}") from None
        return True

    def resolve_id(self, id_or_prefix: str) -> str:
        """The full id named by an id or a unique prefix (as with runs)."""
        prefix = (id_or_prefix or "").strip().lower()
        if not re.fullmatch(r"[0-9a-f]{1,64}", prefix):
            raise ReleaseError(f"{id_or_prefix!r} is not a release id (hex digits; see `rung release list`)")
        with self._read() as conn:
            ids = [r[0] for r in conn.execute(
                select(releases_table.c.id).where(releases_table.c.id.like(prefix + "%")).limit(11))]
        if not ids:
            raise ReleaseError(f"{self.where}: no release {id_or_prefix!r} (see `rung release list`)")
        if len(ids) > 1:
            raise ReleaseError(f"{self.where}: release id {id_or_prefix!r} is ambiguous: "
                               + ", ".join(i[:12] for i in ids[:10]))
        return ids[0]

    def load_release(self, id_or_prefix: str) -> Release:
        rid = self.resolve_id(id_or_prefix)
        with self._read() as conn:
            row = conn.execute(select(releases_table).where(releases_table.c.id == rid)).mappings().one()
        return Release(**dict(row))

    def list_releases(self, limit: int | None = None, candidate: str | None = None) -> list[Release]:
        """Newest first."""
        q = select(releases_table).order_by(releases_table.c.created_at.desc(), releases_table.c.id)
        if candidate:
            q = q.where(releases_table.c.candidate == candidate)
        if limit:
            q = q.limit(limit)
        with self._read() as conn:
            return [Release(**dict(r)) for r in conn.execute(q).mappings()]

    # ------------------------------------------------------------ artifacts

    def blob_path(self, sha256: str) -> Path:
        return self.blobs / sha256[:2] / sha256

    def put_file(self, path: Path, sha256: str) -> Path:
        """Copy a file into the artifact store under its hash (once; re-hashed while copying)."""
        import hashlib

        dest = self.blob_path(sha256)
        if dest.is_file():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=dest.parent)
        try:
            h = hashlib.sha256()
            with open(path, "rb") as src, os.fdopen(fd, "wb") as out:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    h.update(chunk)
                    out.write(chunk)
            if h.hexdigest() != sha256:
                raise ReleaseError(f"{path} changed while the release was being made; run it again")
            os.chmod(tmp, 0o444)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return dest

    def check_blob(self, sha256: str) -> str | None:
        """None when the stored file is there and hashes to its name, else what is wrong."""
        import hashlib

        p = self.blob_path(sha256)
        if not p.is_file():
            return f"missing from the artifact store ({p})"
        with open(p, "rb") as f:
            got = hashlib.file_digest(f, "sha256").hexdigest()
        return None if got == sha256 else f"corrupt in the artifact store ({p} hashes to {got[:12]})"

    def copy_blob(self, sha256: str, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.blob_path(sha256), dest)

    # ------------------------------------------------------------ channels

    def events(self, channel: str | None = None, until: str | None = None) -> list[ChannelEvent]:
        """A channel's events (every channel's with None) in order, optionally up to an instant."""
        q = select(events_table).order_by(events_table.c.channel, events_table.c.seq)
        if channel is not None:
            q = q.where(events_table.c.channel == channel)
        if until is not None:
            q = q.where(events_table.c.at <= until)
        with self._read() as conn:
            rows = conn.execute(q).mappings().all()
        return [ChannelEvent(**{k: v for k, v in dict(r).items() if k != "id"}) for r in rows]

    def channels(self) -> list[str]:
        with self._read() as conn:
            return sorted(r[0] for r in conn.execute(select(events_table.c.channel).distinct()))

    def state(self, channel: str, at: str | None = None) -> ChannelState:
        """The channel's state now, or at an instant (ISO, as `to_iso` writes it)."""
        return fold(channel, self.events(channel, until=at))

    def append(self, ev: ChannelEvent, expected_head: int | None) -> ChannelEvent:
        """Append an event with seq = head + 1, in one transaction. With `expected_head`, the
        channel must still be at that head (else ChannelConflict); a concurrent append of the
        same seq loses on the unique (channel, seq) constraint and gets ChannelConflict too."""
        check_channel(ev.channel)
        try:
            with self.engine.begin() as conn:
                head = conn.execute(select(func.max(events_table.c.seq))
                                    .where(events_table.c.channel == ev.channel)).scalar() or 0
                if expected_head is not None and head != expected_head:
                    last = conn.execute(select(events_table).where(
                        events_table.c.channel == ev.channel, events_table.c.seq == head)).mappings().first()
                    raise ChannelConflict(_moved(ev.channel, expected_head, dict(last) if last else None))
                ev.seq = head + 1
                ev.at = ev.at or now_iso()
                conn.execute(events_table.insert().values(**ev.to_dict()))
        except IntegrityError:
            raise ChannelConflict(f"channel {ev.channel}: another change was recorded at the same moment "
                                  f"(event #{ev.seq}); nothing was changed by this one: look at "
                                  f"`rung release history {ev.channel}` and run it again") from None
        except OperationalError as e:
            if "locked" in str(e).lower() or "busy" in str(e).lower():
                raise ChannelConflict(f"channel {ev.channel}: the store is busy with another change; "
                                      "nothing was changed: run it again") from None
            raise StoreError(f"{self.where}: cannot record the change of {ev.channel}: {_first_line(e)}") from None
        except SQLAlchemyError as e:
            raise StoreError(f"{self.where}: cannot record the change of {ev.channel}: {_first_line(e)}") from None
        return ev

    # ------------------------------------------------------------ plumbing

    def _read(self):  # noqa: ANN202 - a Connection context
        return _Guard(self.where, self.engine.connect())


class _Guard:
    def __init__(self, where: str, ctx: Any) -> None:
        self.where, self.ctx = where, ctx

    def __enter__(self) -> Any:
        try:
            return self.ctx.__enter__()
        except SQLAlchemyError as e:
            raise StoreError(f"{self.where}: cannot read releases: {_first_line(e)}") from None

    def __exit__(self, *exc: Any) -> bool:
        self.ctx.__exit__(*exc)
        if exc[0] is not None and issubclass(exc[0], SQLAlchemyError):
            raise StoreError(f"{self.where}: cannot read releases: {_first_line(exc[1])}") from None
        return False


def _moved(channel: str, expected: int, last: dict[str, Any] | None) -> str:
    if last is None:
        return f"channel {channel} changed while this change was being checked; run it again"
    to = (last.get("release_id") or "")[:12]
    what = f"{last['kind']} to {to}" if last["kind"] != "flag" else f"flag {last['flag']}={last['value']}"
    return (f"channel {channel} moved while this change was being checked (expected event #{expected}, "
            f"now #{last['seq']}: {what} by {last['who']} at {last['at']}); nothing was changed: "
            "run it again to check against what is live now")


def _engine(url: str) -> Engine:
    """An engine of its own: on SQLite, transactions start with BEGIN IMMEDIATE so two writers
    queue instead of failing on a stale snapshot; JSON written the way the run store writes it."""
    from rung.evals.store import dumps

    engine = create_engine(url, json_serializer=dumps)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _rec: Any) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=15000")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    return engine


def _append_only_triggers(engine: Engine) -> None:
    """UPDATE and DELETE on the release tables fail in the database itself."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            for t in _APPEND_ONLY:
                for op in ("UPDATE", "DELETE"):
                    conn.execute(text(
                        f"CREATE TRIGGER IF NOT EXISTS rung_{t}_no_{op.lower()} BEFORE {op} ON {t} "
                        f"BEGIN SELECT RAISE(ABORT, '{t} is append-only'); END"))
        elif engine.dialect.name == "postgresql":
            have = {r[0] for r in conn.execute(text(
                "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'rung_%_append_only'"))}
            if have >= {f"rung_{t}_append_only" for t in _APPEND_ONLY}:
                return
            conn.execute(text(
                "CREATE OR REPLACE FUNCTION rung_append_only() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$ LANGUAGE plpgsql"))
            for t in _APPEND_ONLY:
                conn.execute(text(
                    f"CREATE OR REPLACE TRIGGER rung_{t}_append_only BEFORE UPDATE OR DELETE ON {t} "
                    "FOR EACH ROW EXECUTE FUNCTION rung_append_only()"))


def recomputed_id(release: Release) -> str:
    """The id the stored manifest hashes to (equal to release.id unless it was tampered with)."""
    return release_id(release.content, release.evidence)


def _first_line(e: BaseException) -> str:
    orig = getattr(e, "orig", None)
    return str(orig or e).splitlines()[0] if str(orig or e) else type(e).__name__
