"""Which release answers a request during a rollout (the gateway asks, per request).

Canary: a user is in the canary when the hash of (rollout id, tenant, user) falls below the
step's weight, so one user sees one release for the whole step, and a user in the canary at 5 %
stays in it at 25 % (the buckets are fixed; only the cut moves). Without a user (or tenant, per
`sticky_by`) the request id is hashed instead: not sticky, still the right share.

Shadow: every request is answered by the stable release (that answer goes to the user); the
step's weight is the share of requests also sent, as a copy, to the new release, whose answer
is stored as a trace with arm "shadow" and the same request id, and never returned.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from rung.ops.records import CANARY, SHADOW, STABLE
from rung.ops.rollout.state import Rollout

BUCKETS = 10_000


def bucket(*parts: str | None) -> int:
    """A stable bucket in [0, 10000) of the parts (sha256, not Python's salted hash)."""
    key = "\x1f".join(p or "" for p in parts)
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % BUCKETS


def sticky_key(rollout: Rollout, tenant: str | None, user: str | None,
               request_id: str | None = None) -> list[str | None]:
    by = rollout.config.get("sticky_by") or ["tenant", "user"]
    parts = [tenant if "tenant" in by else None, user if "user" in by else None]
    if not any(parts):
        parts = [request_id]
    return parts


@dataclass
class Choice:
    release: str | None  # the release that answers the user
    arm: str  # stable | canary
    shadow: str | None = None  # the release that answers a copy (shadow mode), or None


def choose_arm(rollout: Rollout | None, tenant: str | None, user: str | None,
               request_id: str | None = None, stable: str | None = None) -> tuple[str | None, str]:
    """(release id, arm) answering this request; with no running rollout, the stable release."""
    c = choose(rollout, tenant, user, request_id, stable)
    return c.release, c.arm


def choose(rollout: Rollout | None, tenant: str | None, user: str | None,
           request_id: str | None = None, stable: str | None = None) -> Choice:
    """The full choice: who answers, and in shadow mode who answers the copy."""
    if rollout is None or not rollout.running:
        return Choice(stable if rollout is None else (stable or rollout.stable), STABLE)
    base = stable or rollout.stable
    cut = rollout.weight / 100.0 * BUCKETS
    if rollout.mode == "shadow":
        # mirrored share by request (a user's requests are not kept together: nobody sees it)
        mirrored = bucket(rollout.id, "shadow", request_id or "") < cut if request_id else cut >= BUCKETS
        return Choice(base, STABLE, rollout.canary if mirrored else None)
    if bucket(rollout.id, *sticky_key(rollout, tenant, user, request_id)) < cut:
        return Choice(rollout.canary, CANARY)
    return Choice(base, STABLE)


def shadow_release(rollout: Rollout | None, request_id: str) -> str | None:
    """The release that should answer a shadow copy of this request, or None (the gateway's
    shadow dispatch hook: run it off the request path, store its trace with arm "shadow" and
    `request.shadow_of` = the live trace id)."""
    return choose(rollout, None, None, request_id).shadow


__all__ = ["CANARY", "SHADOW", "STABLE", "Choice", "bucket", "choose", "choose_arm", "shadow_release"]


class RolloutCache:
    """The gateway's view of running rollouts: the channel's rollout read from the release
    store at most every `ttl_s` seconds (a rollout step changes every few minutes; a request
    must not pay a database read), then `choose` per request."""

    def __init__(self, store: object, ttl_s: float = 2.0) -> None:
        import threading

        self.store = store
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, Rollout | None]] = {}
        self._lock = threading.Lock()

    def rollout(self, channel: str) -> Rollout | None:
        import time

        from rung.ops.rollout.state import running_rollout

        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(channel)
            if hit is not None and now - hit[0] < self.ttl_s:
                return hit[1]
        r = running_rollout(self.store, channel)  # type: ignore[arg-type]
        if r is None and "@" in channel:  # a tenant channel follows its base channel's rollout
            r = running_rollout(self.store, channel.split("@", 1)[0])  # type: ignore[arg-type]
        with self._lock:
            self._cache[channel] = (now, r)
        return r

    def choose(self, channel: str, tenant: str | None, user: str | None, request_id: str | None,
               stable: str | None) -> Choice:
        r = self.rollout(channel)
        if r is not None and stable is not None and r.stable != stable:
            r = None  # the channel moved under the rollout (a manual promotion): serve what is live
        return choose(r, tenant, user, request_id, stable)
