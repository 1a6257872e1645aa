"""Per-key rate limits: a token bucket per API key (`rate` requests per second sustained,
`burst` at once, at most 10 s of the rate). A request over the limit gets 429 with Retry-After (whole seconds until a
token is back). The buckets live in the gateway process: with `--workers N` each worker has its
own, so a key may reach N times its limit (say so, or run one worker per model anyway)."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    def __init__(self, clock=time.monotonic) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def acquire(self, key: str, per_minute: float, burst: int) -> float:
        """Take one token for `key`; returns 0.0 when allowed, else seconds until it would be.
        The bucket holds `burst` tokens, and never more than 10 seconds' worth of the rate (a key
        limited to 6 per minute cannot send 20 at once)."""
        rate = per_minute / 60.0
        burst = max(1, min(burst, math.ceil(rate * 10)))
        now = self._clock()
        with self._lock:
            b = self._buckets.get(key)
            if b is None:
                b = self._buckets[key] = _Bucket(float(burst), now)
            b.tokens = min(float(burst), b.tokens + (now - b.stamp) * rate)
            b.stamp = now
            if b.tokens >= 1.0:
                b.tokens -= 1.0
                return 0.0
            return (1.0 - b.tokens) / rate

    @staticmethod
    def retry_after(wait_s: float) -> str:
        return str(max(1, math.ceil(wait_s)))
