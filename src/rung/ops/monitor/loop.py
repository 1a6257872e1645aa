"""The ops loop a long-running process runs in the background (`rung serve`, `rung monitor
--watch`): every `monitor.interval_s` seconds, judge each running rollout's step and act on it,
then evaluate the alert rules and notify. One thread; errors are counted and kept (the last
one), never raised into the server.

    loop = OpsLoop(config, release_store)       # traces from the project's store
    loop.start(); ...; loop.stop()
    loop.tick()                                 # one round, synchronously (tests)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rung.ops.records import TraceRecord

if TYPE_CHECKING:
    from rung.config import RungConfig
    from rung.ops.releases import ReleaseStore

Records = Callable[[float], Sequence[TraceRecord]]  # since (unix seconds) -> records


class OpsLoop:
    def __init__(self, config: RungConfig, store: ReleaseStore, records: Records | None = None, *,
                 rollouts: bool = True, alerts: bool = True, on_event: Callable[[str], None] | None = None) -> None:
        from rung.config import paths
        from rung.ops.monitor import Notifier, build_monitor, load_state

        self.config = config
        self.store = store
        self.records = records or (lambda since: _store_records(config, since))
        self.rollouts = rollouts
        self.alerts = alerts
        self.on_event = on_event
        self.state_path = config.resolve(paths.MONITOR_STATE)
        self.monitor = build_monitor(config, store, state=load_state(self.state_path))
        log = config.resolve(config.monitor.log) if config.monitor.log else None
        self.notifier = Notifier(config.monitor.webhooks, log, project=config.project)
        self.errors = 0
        self.last_error: str | None = None
        self.ticks = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self, now: float | None = None) -> list[Any]:
        """One round: rollouts, then alerts. Returns what happened (rollout outcomes, alert events)."""
        from rung.ops.monitor import window_seconds
        from rung.ops.monitor.engine import save_state
        from rung.ops.rollout.machine import evaluate
        from rung.ops.rollout.state import iso_seconds, running_rollout

        now = time.time() if now is None else now
        out: list[Any] = []
        if self.rollouts:
            for ch in self.store.channels():
                r = running_rollout(self.store, ch)
                if r is None:
                    continue
                since = iso_seconds(r.step_started_at)
                recs = [x for x in self.records(since) if x.channel.split("@", 1)[0] == ch or x.channel == ch]
                o = evaluate(self.store, ch, recs, gate=self.config.gate, now=now)
                if o is not None and o.action not in ("none",):
                    out.append(o)
                    if self.on_event and o.action != "hold":
                        self.on_event(f"rollout {r.id} on {ch}: {o.action}: {o.message}")
        if self.alerts:
            recs = self.records(now - window_seconds(self.config))
            events = self.notifier.send(self.monitor.evaluate(recs, now))
            save_state(self.state_path, self.monitor.state)
            out.extend(events)
            if self.on_event:
                for ev in events:
                    self.on_event(ev.summary())
        self.ticks += 1
        return out

    def _run(self) -> None:
        while not self._stop.wait(self.config.monitor.interval_s):
            try:
                self.tick()
            except Exception as e:  # noqa: BLE001 - the loop outlives one bad round
                self.errors += 1
                self.last_error = f"{type(e).__name__}: {e}"

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="rung-ops-loop", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def _store_records(config: RungConfig, since: float) -> list[TraceRecord]:
    from rung.ops.tracesource import load_records

    return load_records(config, since=since)
