"""The run store: runs and their per-case results in a SQL database (SQLAlchemy 2 core).

SQLite by default (`rung.config.paths.STORE`, .rung/rung.db, parent folders created); any SQLAlchemy URL works for a team
(`postgresql+psycopg://...`). Results are written one batch per transaction, so a run killed at
any point keeps every batch it finished and can be resumed without losing or repeating work.

Run ids are short and sortable: UTC time + random, e.g. "20261123-211530-a1b2c3"; any unique
prefix names a run (like git).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError

from rung.config import paths
from rung.core import Answer, Case, Score
from rung.errors import NoStoreError, StoreError
from rung.evals.types import CaseResult, RunInfo, RunResult

DEFAULT_PATH = paths.STORE

_meta = MetaData()

runs_table = Table(
    "runs", _meta,
    Column("id", String(40), primary_key=True),
    Column("candidate", String(200), nullable=False),
    Column("candidate_hash", String(64), nullable=False, index=True),
    Column("candidate_config", JSON, nullable=False),
    Column("suite", String(200), nullable=False),
    Column("suite_hash", String(64), nullable=False, index=True),
    Column("level", Integer, nullable=False, default=0),
    Column("model_id", Text, nullable=False, default=""),
    Column("created_at", String(40), nullable=False),
    Column("finished_at", String(40)),
    Column("status", String(20), nullable=False, default="running"),
    Column("epochs", Integer, nullable=False, default=1),
    Column("git_commit", String(64)),
    Column("project", String(200), nullable=False, default=""),
    Column("price_in_per_1k", Float, nullable=False, default=0.0),
    Column("price_out_per_1k", Float, nullable=False, default=0.0),
    Column("metadata", JSON, nullable=False),
)

results_table = Table(
    "results", _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(40), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("case_id", String(200), nullable=False),
    Column("epoch", Integer, nullable=False, default=0),
    Column("case", JSON, nullable=False),
    Column("answer", JSON, nullable=False),
    Column("scores", JSON, nullable=False),
    Column("created_at", String(40), nullable=False),
    UniqueConstraint("run_id", "case_id", "epoch", name="uq_result_case_epoch"),
    Index("ix_results_run", "run_id"),
)

_RUN_FIELDS = [f.name for f in dataclasses.fields(RunInfo)]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    """A short, time-sortable run id: "YYYYMMDD-HHMMSS-xxxxxx" (UTC + 6 random hex digits)."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def _default(o: Any) -> Any:
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if hasattr(o, "model_dump"):  # pydantic model instances (parsed structured output)
        return o.model_dump(mode="json")
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    return str(o)


def dumps(obj: Any) -> str:
    """JSON as the store writes it (dataclasses, pydantic models, paths and sets included)."""
    return json.dumps(obj, default=_default, ensure_ascii=False)


def result_to_dict(r: CaseResult) -> dict[str, Any]:
    answer = r.answer.to_dict() if hasattr(r.answer, "to_dict") else r.answer
    return {"case_id": r.case.id, "epoch": r.epoch, "case": r.case.to_dict(),
            "answer": json.loads(dumps(answer)), "scores": [s.to_dict() for s in r.scores]}


def result_from_dict(d: dict[str, Any]) -> CaseResult:
    return CaseResult(case=Case(**d["case"]), answer=Answer.from_dict(d["answer"]),
                      scores=[Score(**s) for s in d["scores"]], epoch=int(d.get("epoch", 0)))


def info_to_dict(info: RunInfo) -> dict[str, Any]:
    return json.loads(dumps(dataclasses.asdict(info)))


def info_from_dict(d: dict[str, Any]) -> RunInfo:
    return RunInfo(**{k: d[k] for k in _RUN_FIELDS if k in d})


class RunStore:
    """Runs and case results in SQLite (a path) or any SQLAlchemy URL."""

    def __init__(self, url_or_path: str | Path = DEFAULT_PATH, *, create: bool = True) -> None:
        """Open the store; with create=False (commands that only read) a store that does not
        exist yet is a StoreError ("no store at ...") and nothing is created."""
        target = str(url_or_path)
        sqlite_file: Path | None = None
        if "://" in target:
            self.url = target
            try:
                url = make_url(target)
                self.where = url.render_as_string(hide_password=True)
            except ArgumentError:
                raise StoreError(f"{target!r}: not a valid SQLAlchemy URL") from None
            if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
                sqlite_file = Path(url.database)
        else:
            path = Path(target).expanduser()
            if create:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise StoreError(f"{path}: cannot create the store's folder: {e.strerror}") from None
            self.url = f"sqlite:///{path}"
            self.where = str(path)  # what error messages name
            sqlite_file = path
        missing = NoStoreError(f"no store at {self.where} (nothing evaluated yet?)")
        if not create and sqlite_file is not None and not sqlite_file.is_file():
            raise missing
        try:
            self.engine: Engine = create_engine(self.url, json_serializer=dumps)
            if self.engine.dialect.name == "sqlite":
                event.listen(self.engine, "connect", _sqlite_pragmas)
            if create:
                _meta.create_all(self.engine)
            elif not inspect(self.engine).has_table(runs_table.name):
                self.engine.dispose()
                raise missing
        except SQLAlchemyError as e:
            raise StoreError(f"{self.where}: cannot open the run store: {_first_line(e)}") from None
        except ImportError as e:
            raise StoreError(f"{self.where}: cannot open the run store: {e} "
                             "(install the database driver for this URL)") from None

    def __repr__(self) -> str:
        return f"RunStore({self.where!r})"

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------ runs

    def create_run(self, info: RunInfo) -> RunInfo:
        """Insert a run; an empty id or created_at is filled in. Returns the stored info."""
        if not info.id:
            info.id = new_run_id()
        if not info.created_at:
            info.created_at = now_iso()
        row = {k: getattr(info, k) for k in _RUN_FIELDS}
        with self._begin("create run " + info.id) as conn:
            conn.execute(runs_table.insert().values(**row))
        return info

    def finish_run(self, run_id: str, status: str = "finished") -> None:
        with self._begin(f"finish run {run_id}") as conn:
            n = conn.execute(update(runs_table).where(runs_table.c.id == run_id)
                             .values(status=status, finished_at=now_iso())).rowcount
        if n == 0:
            raise StoreError(f"{self.where}: no run {run_id!r}")

    def update_metadata(self, run_id: str, metadata: dict[str, Any]) -> None:
        with self._begin(f"update run {run_id}") as conn:
            conn.execute(update(runs_table).where(runs_table.c.id == run_id).values(metadata=metadata))

    def resolve_id(self, run_id_or_prefix: str) -> str:
        """The full id of the run named by an id or a unique prefix."""
        prefix = run_id_or_prefix.strip()
        if not prefix:
            raise StoreError("empty run id")
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self._connect() as conn:
            ids = [r[0] for r in conn.execute(
                select(runs_table.c.id).where(runs_table.c.id.like(escaped + "%", escape="\\"))
                .order_by(runs_table.c.id.desc()).limit(11))]
        if prefix in ids:
            return prefix
        if not ids:
            raise StoreError(f"{self.where}: no run matches {prefix!r} (see `rung runs`)")
        if len(ids) > 1:
            shown = ", ".join(ids[:10]) + (", ..." if len(ids) > 10 else "")
            raise StoreError(f"{self.where}: run id {prefix!r} is ambiguous: {shown}")
        return ids[0]

    def get_info(self, run_id_or_prefix: str) -> RunInfo:
        run_id = self.resolve_id(run_id_or_prefix)
        with self._connect() as conn:
            row = conn.execute(select(runs_table).where(runs_table.c.id == run_id)).mappings().one()
        return info_from_dict(dict(row))

    def get_run(self, run_id_or_prefix: str) -> RunResult:
        """A run with all its results (ordered by epoch, then by the order they were stored)."""
        info = self.get_info(run_id_or_prefix)
        with self._connect() as conn:
            rows = conn.execute(
                select(results_table.c.epoch, results_table.c.case, results_table.c.answer,
                       results_table.c.scores)
                .where(results_table.c.run_id == info.id)
                .order_by(results_table.c.epoch, results_table.c.id)).mappings().all()
        return RunResult(info, [result_from_dict(dict(r)) for r in rows])

    def list_runs(self, limit: int | None = 20, candidate: str | None = None) -> list[RunInfo]:
        """The most recent runs first (optionally of one candidate name)."""
        q = select(runs_table).order_by(runs_table.c.created_at.desc(), runs_table.c.id.desc())
        if candidate is not None:
            q = q.where(runs_table.c.candidate == candidate)
        if limit is not None:
            q = q.limit(limit)
        with self._connect() as conn:
            return [info_from_dict(dict(r)) for r in conn.execute(q).mappings()]

    def latest_unfinished(self, candidate_hash: str, suite_hash: str) -> RunInfo | None:
        """The most recent run of this candidate on this suite that did not finish, if any."""
        return self._latest(candidate_hash, suite_hash, finished=False)

    def latest_finished(self, candidate_hash: str, suite_hash: str) -> RunInfo | None:
        """The most recent finished run of this candidate on this suite, if any."""
        return self._latest(candidate_hash, suite_hash, finished=True)

    def _latest(self, candidate_hash: str, suite_hash: str, *, finished: bool) -> RunInfo | None:
        status = runs_table.c.status
        q = (select(runs_table)
             .where(runs_table.c.candidate_hash == candidate_hash,
                    runs_table.c.suite_hash == suite_hash,
                    status == "finished" if finished else status != "finished")
             .order_by(runs_table.c.created_at.desc(), runs_table.c.id.desc()).limit(1))
        with self._connect() as conn:
            row = conn.execute(q).mappings().first()
        return info_from_dict(dict(row)) if row else None

    def delete_run(self, run_id_or_prefix: str) -> str:
        """Delete a run and its results; returns the deleted run's full id."""
        run_id = self.resolve_id(run_id_or_prefix)
        with self._begin(f"delete run {run_id}") as conn:
            conn.execute(delete(results_table).where(results_table.c.run_id == run_id))
            conn.execute(delete(runs_table).where(runs_table.c.id == run_id))
        return run_id

    # ------------------------------------------------------------ results

    def add_results(self, run_id: str, results: Iterable[CaseResult]) -> int:
        """Store a batch of results in one transaction (all or nothing). Returns how many."""
        created = now_iso()
        rows = [{**result_to_dict(r), "run_id": run_id, "created_at": created} for r in results]
        if not rows:
            return 0
        try:
            with self.engine.begin() as conn:
                conn.execute(results_table.insert(), rows)
        except IntegrityError:
            keys = ", ".join(f"{r['case_id']}@{r['epoch']}" for r in rows[:5])
            raise StoreError(f"{self.where}: run {run_id!r} already has a result for one of "
                             f"{keys} (or the run does not exist)") from None
        except SQLAlchemyError as e:
            raise StoreError(f"{self.where}: cannot store results of run {run_id!r}: {_first_line(e)}") from None
        return len(rows)

    def done_keys(self, run_id: str) -> set[tuple[str, int]]:
        """The (case_id, epoch) pairs already stored for a run."""
        with self._connect() as conn:
            return {(r[0], int(r[1])) for r in conn.execute(
                select(results_table.c.case_id, results_table.c.epoch)
                .where(results_table.c.run_id == run_id))}

    def count_results(self, run_id: str) -> int:
        return len(self.done_keys(run_id))

    # ------------------------------------------------------------ files

    def export_jsonl(self, run_id_or_prefix: str, path: str | Path) -> Path:
        """Write a run as JSONL: a header line {"type": "run", "run": ...}, then one line per
        case result {"type": "result", ...}. `read_run_file` reads it back."""
        run = self.get_run(run_id_or_prefix)
        from rung.fileio import output_file

        out = output_file(path, "export file")  # OutputError naming it when it cannot be written
        with out.open("w", encoding="utf-8") as f:
            f.write(dumps({"type": "run", "run": info_to_dict(run.info)}) + "\n")
            for r in run.results:
                f.write(dumps({"type": "result", **result_to_dict(r)}) + "\n")
        return out

    # ------------------------------------------------------------ plumbing

    def _connect(self):  # noqa: ANN202 - a context manager of a Connection
        return _Guard(self, self.engine.connect(), "read")

    def _begin(self, what: str):  # noqa: ANN202
        return _Guard(self, self.engine.begin(), what)


class _Guard:
    """Wraps a connection context so database errors become one-line StoreErrors."""

    def __init__(self, store: RunStore, ctx: Any, what: str) -> None:
        self.store, self.ctx, self.what = store, ctx, what

    def __enter__(self) -> Any:
        try:
            return self.ctx.__enter__()
        except SQLAlchemyError as e:
            raise StoreError(f"{self.store.where}: cannot {self.what}: {_first_line(e)}") from None

    def __exit__(self, *exc: Any) -> bool:
        try:
            self.ctx.__exit__(*exc)
        except SQLAlchemyError as e:
            raise StoreError(f"{self.store.where}: cannot {self.what}: {_first_line(e)}") from None
        if exc[0] is not None and issubclass(exc[0], SQLAlchemyError):
            raise StoreError(f"{self.store.where}: cannot {self.what}: {_first_line(exc[1])}") from None
        return False


def read_run_file(path: str | Path) -> RunResult:
    """Read a run exported with `RunStore.export_jsonl`."""
    p = Path(path)
    if not p.exists():
        raise StoreError(f"{p}: no such run file")
    info: RunInfo | None = None
    results: list[CaseResult] = []
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                if d.get("type") == "run":
                    info = info_from_dict(d["run"])
                elif d.get("type") == "result":
                    results.append(result_from_dict(d))
                else:
                    raise ValueError(f"unknown line type {d.get('type')!r}")
            except (ValueError, KeyError, TypeError) as e:
                raise StoreError(f"{p}:{n}: not a run file line: {e}") from None
    if info is None:
        raise StoreError(f"{p}: no run header line (expected {{\"type\": \"run\", ...}} first)")
    return RunResult(info, results)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    # WAL: readers never block the writer; synchronous=NORMAL keeps every committed batch
    # through a killed process (only a power loss may drop the last commits), at a fraction
    # of the fsyncs of the default journal.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _first_line(e: BaseException) -> str:
    orig = getattr(e, "orig", None)
    return str(orig or e).splitlines()[0] if str(orig or e) else type(e).__name__
