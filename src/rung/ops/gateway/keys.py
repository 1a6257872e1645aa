"""API keys: each belongs to one tenant; only a hash is stored.

A key reads `rk_<key id>_<secret>`: the id (8 hex digits) finds the row, the secret (32 random
bytes, base64url) is what proves it. Keys are random, so a fast hash is enough: the store keeps
sha256(key), compared in constant time; a stolen database gives no key. `rung keys create`
prints the key once; `revoke` marks it revoked (kept for the audit trail).

The gateway caches a verified key for `ttl_s` (default 5 s): a revocation takes effect within
that time on every gateway instance that shares the store.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Float, String, Table, select, update

from rung.errors import StoreError
from rung.ops.gateway.db import metadata

PREFIX = "rk"
_KEY = re.compile(r"^rk_([0-9a-f]{8})_([A-Za-z0-9_-]{20,})$")
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

keys_table = Table(
    "api_keys", metadata,
    Column("id", String(16), primary_key=True),
    Column("tenant", String(64), nullable=False, index=True),
    Column("name", String(200), nullable=False, default=""),
    Column("hash", String(64), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("revoked_at", String(40)),
    Column("requests_per_minute", Float),  # None: the tenant's or serving's limit
)


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant: str
    name: str
    created_at: str
    revoked_at: str | None = None
    requests_per_minute: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_tenant(tenant: str) -> str:
    if not _TENANT.match(tenant or ""):
        raise StoreError(f"tenant {tenant!r}: use 1-64 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit")
    return tenant


class KeyStore:
    """Create, verify, list and revoke API keys in the store's `api_keys` table."""

    def __init__(self, engine: Any, ttl_s: float = 5.0) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._lock = threading.Lock()

    def create(self, tenant: str, name: str = "", requests_per_minute: float | None = None
               ) -> tuple[ApiKey, str]:
        """A new key for `tenant`: (its record, the key itself, shown only now)."""
        check_tenant(tenant)
        if requests_per_minute is not None and requests_per_minute <= 0:
            raise StoreError("requests_per_minute must be positive")
        key_id = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        key = f"{PREFIX}_{key_id}_{secret}"
        rec = ApiKey(key_id, tenant, name, _now(), None, requests_per_minute)
        with self.engine.begin() as conn:
            conn.execute(keys_table.insert().values(
                id=key_id, tenant=tenant, name=name, hash=_hash(key), created_at=rec.created_at,
                revoked_at=None, requests_per_minute=requests_per_minute))
        return rec, key

    def verify(self, key: str) -> ApiKey | None:
        """The active key record for `key`, or None (unknown, malformed or revoked)."""
        m = _KEY.match(key or "")
        if not m:
            return None
        digest = _hash(key)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        with self.engine.connect() as conn:
            row = conn.execute(select(keys_table).where(keys_table.c.id == m.group(1))).mappings().first()
        found: ApiKey | None = None
        if row is not None and hmac.compare_digest(row["hash"], digest) and row["revoked_at"] is None:
            found = _record(row)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now, found)
        return found

    def revoke(self, key_id: str) -> ApiKey:
        with self.engine.begin() as conn:
            n = conn.execute(update(keys_table).where(keys_table.c.id == key_id,
                                                      keys_table.c.revoked_at.is_(None))
                             .values(revoked_at=_now())).rowcount
        if n == 0:
            known = self.get(key_id)
            if known is None:
                raise StoreError(f"no API key with id {key_id!r} (see `rung keys list`)")
            raise StoreError(f"API key {key_id} was already revoked at {known.revoked_at}")
        with self._lock:
            self._cache.clear()
        rec = self.get(key_id)
        assert rec is not None
        return rec

    def get(self, key_id: str) -> ApiKey | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(keys_table).where(keys_table.c.id == key_id)).mappings().first()
        return _record(row) if row else None

    def list(self, tenant: str | None = None, include_revoked: bool = False) -> list[ApiKey]:
        q = select(keys_table).order_by(keys_table.c.tenant, keys_table.c.created_at)
        if tenant is not None:
            q = q.where(keys_table.c.tenant == tenant)
        if not include_revoked:
            q = q.where(keys_table.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            return [_record(r) for r in conn.execute(q).mappings()]

    def tenants(self) -> list[str]:
        with self.engine.connect() as conn:
            return sorted({r[0] for r in conn.execute(
                select(keys_table.c.tenant).where(keys_table.c.revoked_at.is_(None)))})


def _record(row: Any) -> ApiKey:
    return ApiKey(row["id"], row["tenant"], row["name"] or "", row["created_at"], row["revoked_at"],
                  row["requests_per_minute"])
