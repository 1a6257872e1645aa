"""A persistent response cache: one SQLite file, shared safely by threads and processes.

The key is `request_key(fingerprint, request)`: the model's fingerprint (weights or endpoint +
name, adapter), the messages and every decoding parameter, the seed included. So sampled
decoding (temperature > 0) is cached too: the same seed asks for the same sample. The value is
the Completion as JSON, with the time it was stored.

`CachedModel` wraps any Model: it looks every request up, sends only the misses to the inner
model (in one batch, in order, identical requests once), stores what came back (never a
completion that carries an error) and marks hits with `cached=True`.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from rung.errors import ModelError, StoreError
from rung.models.base import Completion, GenRequest, Model, ProgressCallback, request_key

_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    completion TEXT NOT NULL,
    created_at TEXT NOT NULL
)
"""
_CHUNK = 500  # keys per SELECT ... IN (...), well under SQLite's variable limit
_FIELDS = {f.name for f in dataclasses.fields(Completion)}


@dataclass(frozen=True)
class CacheStats:
    """Lookups made through this ResponseCache object, and the file's entry count."""

    hits: int
    misses: int
    entries: int

    @property
    def hit_rate(self) -> float | None:
        looked_up = self.hits + self.misses
        return self.hits / looked_up if looked_up else None


class ResponseCache:
    """Completions by request key in a SQLite file (WAL mode, busy timeout: safe to share
    between threads of one process, which share one connection behind a lock, and between
    processes)."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        try:
            self._conn = sqlite3.connect(self.path, timeout=busy_timeout_s,
                                         check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path}: cannot open the response cache: {e}") from None

    # ------------------------------------------------------------------ reads

    def get(self, key: str) -> Completion | None:
        """The stored completion (cached=True) or None."""
        return self.get_many([key])[0]

    def get_many(self, keys: list[str]) -> list[Completion | None]:
        """Completions for the keys, in order; None where nothing (readable) is stored."""
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for i in range(0, len(unique), _CHUNK):
                chunk = unique[i:i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._execute(f"SELECT key, completion FROM completions WHERE key IN ({marks})",
                                     chunk).fetchall()
                found.update(rows)
        out = [_decode(found[k]) if k in found else None for k in keys]
        hits = sum(c is not None for c in out)
        with self._lock:
            self._hits += hits
            self._misses += len(out) - hits
        return out

    def stats(self) -> CacheStats:
        with self._lock:
            entries = self._execute("SELECT COUNT(*) FROM completions").fetchone()[0]
            return CacheStats(hits=self._hits, misses=self._misses, entries=entries)

    # ------------------------------------------------------------------ writes

    def put(self, key: str, completion: Completion) -> None:
        self.put_many([(key, completion)])

    def put_many(self, items: Iterable[tuple[str, Completion]]) -> None:
        """Store (key, completion) pairs in one transaction; a key stored again is replaced."""
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        rows = [(key, _encode(key, c), now) for key, c in items]
        if not rows:
            return
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(
                    "INSERT OR REPLACE INTO completions (key, completion, created_at) VALUES (?, ?, ?)",
                    rows)
                self._conn.execute("COMMIT")
            except sqlite3.Error as e:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StoreError(f"{self.path}: cannot write the response cache: {e}") from None

    def clear(self) -> int:
        """Delete every entry; returns how many there were."""
        with self._lock:
            return self._execute("DELETE FROM completions").rowcount

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _execute(self, sql: str, params: Iterable[object] = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, tuple(params))
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: response cache error: {e}") from None


def _encode(key: str, completion: Completion) -> str:
    data = completion.to_dict()
    data["cached"] = False
    try:
        return json.dumps(data, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise ModelError(f"cannot cache the completion for key {key[:12]}: "
                         f"a field is not JSON ({e})") from None


def _decode(blob: str) -> Completion | None:
    """A stored completion, or None when it cannot be read back (an older layout): a miss."""
    try:
        data = json.loads(blob)
        data = {k: v for k, v in data.items() if k in _FIELDS}
        data["cached"] = True
        return Completion(**data)
    except (json.JSONDecodeError, TypeError, AttributeError):
        return None


class CachedModel:
    """A Model that answers from a ResponseCache and asks `inner` only for the misses."""

    def __init__(self, inner: Model, cache: ResponseCache) -> None:
        self.inner = inner
        self.cache = cache

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def fingerprint(self, adapter: str | None = None) -> str:
        return self.inner.fingerprint(adapter)

    def adapters(self) -> list[str]:
        return self.inner.adapters()

    def generate(self, requests: list[GenRequest],
                 progress: ProgressCallback | None = None) -> list[Completion]:
        total = len(requests)
        if total == 0:
            return []
        prints: dict[str | None, str] = {}
        keys = []
        for r in requests:
            if r.adapter not in prints:
                prints[r.adapter] = self.inner.fingerprint(r.adapter)
            keys.append(request_key(prints[r.adapter], r))
        results: list[Completion | None] = self.cache.get_many(keys)
        hits = sum(c is not None for c in results)
        if progress is not None and hits:
            progress(hits, total)

        # the misses, each distinct key once, in first-seen order
        miss_keys = list(dict.fromkeys(k for k, c in zip(keys, results) if c is None))
        if miss_keys:
            first = {k: i for i, k in reversed(list(enumerate(keys)))}
            inner_progress = None
            if progress is not None:
                def inner_progress(done: int, _total: int) -> None:
                    progress(min(hits + done, total), total)
            fresh = self.inner.generate([requests[first[k]] for k in miss_keys], inner_progress)
            if len(fresh) != len(miss_keys):
                raise ModelError(f"{self.inner.model_id}: returned {len(fresh)} completions "
                                 f"for {len(miss_keys)} requests")
            by_key = dict(zip(miss_keys, fresh))
            self.cache.put_many((k, c) for k, c in by_key.items()
                                if c.error is None and c.finish_reason != "error")
            for i, k in enumerate(keys):
                if results[i] is None:
                    c = by_key[k]
                    results[i] = c if first[k] == i else dataclasses.replace(c, extra=dict(c.extra))
        if progress is not None:
            progress(total, total)
        return [c for c in results if c is not None]
