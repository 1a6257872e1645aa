"""The real gateway for the demo: `rung serve` in a child process on a free 127.0.0.1 port, and
requests replayed through it with the official `openai` client, concurrently (so the gateway
micro-batches them), as the tenants' API keys.

`ServeProcess` is a context manager: the child is stopped on leaving it, whatever happens
(an error, Ctrl-C, SIGTERM); it also dies with this process (Linux: PR_SET_PDEATHSIG), so no
gateway outlives the demo.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rung.ops.demo.state import DemoError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: SIGTERM when the demo process dies
    except Exception:  # noqa: BLE001 - not Linux: the finally clause is the only guard
        pass


def _raise_exit(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


class ServeProcess:
    """`python -m rung serve -c PROJECT --host 127.0.0.1 --port P` until the `with` block ends."""

    def __init__(self, project: Path, log: Path, *, ready_timeout_s: float = 300.0,
                 env: dict[str, str] | None = None) -> None:
        self.project = project
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready_timeout_s = ready_timeout_s
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_s: float | None = None
        self._old_term: Any = None

    def __enter__(self) -> ServeProcess:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        try:  # SIGTERM to the demo leaves the with block like Ctrl-C does (main thread only)
            self._old_term = signal.signal(signal.SIGTERM, _raise_exit)
        except ValueError:
            self._old_term = None
        t0 = time.perf_counter()
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rung", "serve", "-c", str(self.project), "--host", "127.0.0.1",
                 "--port", str(self.port), "--log-level", "warning"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
                start_new_session=True,  # Ctrl-C reaches the demo, which stops the gateway itself
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.ready_s = time.perf_counter() - t0
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + self.ready_timeout_s
        last = ""
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DemoError(f"rung serve exited with code {self.proc.returncode} before it was ready: "
                                f"{self._tail()} (log: {self.log})")
            try:
                r = httpx.get(f"{self.url}/readyz", timeout=2.0)
                if r.status_code == 200:
                    return
                last = r.text
                if '"failed"' in last:
                    raise DemoError(f"rung serve could not load what it serves: {last} (log: {self.log})")
            except httpx.HTTPError as e:
                last = type(e).__name__
            time.sleep(0.2)
        raise DemoError(f"rung serve was not ready after {self.ready_timeout_s:g} s ({last}; log: {self.log})")

    def _tail(self) -> str:
        try:
            lines = [x for x in self.log.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()]
        except OSError:
            return ""
        return lines[-1][:300] if lines else "(no output)"

    def metrics(self) -> str:
        """The gateway's /metrics text ("" when it cannot be read)."""
        import httpx

        try:
            return httpx.get(f"{self.url}/metrics", timeout=5.0).text
        except httpx.HTTPError:
            return ""

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGINT (uvicorn's graceful shutdown: in-flight requests finish, traces are flushed),
        then SIGKILL if it has not exited within `timeout_s`."""
        proc, self.proc = self.proc, None
        try:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        finally:
            if self._old_term is not None:
                try:
                    signal.signal(signal.SIGTERM, self._old_term)
                except ValueError:
                    pass
                self._old_term = None


def metric_mean(text: str, name: str) -> float | None:
    """sum / count of a Prometheus histogram in /metrics text (all label sets together)."""
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith(f"{name}_sum"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith(f"{name}_count"):
            count += float(line.rsplit(" ", 1)[1])
    return total / count if count else None


@dataclass
class Reply:
    """One replayed request as the client saw it."""

    case_id: str
    tenant: str
    latency_ms: float
    text: str = ""
    finish_reason: str = ""
    blocked: str | None = None  # the guardrail's reason code
    trace_id: str = ""
    release: str = ""
    error: str | None = None


@dataclass
class Replay:
    replies: list[Reply] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def ok(self) -> list[Reply]:
        return [r for r in self.replies if r.error is None]

    @property
    def errors(self) -> list[Reply]:
        return [r for r in self.replies if r.error is not None]


def _metadata(meta: dict[str, Any]) -> dict[str, str]:
    """The request metadata the gateway reads (jurisdiction, product, ...): scalars, as strings."""
    return {str(k): str(v)[:512] for k, v in meta.items() if isinstance(v, (str, int, float, bool))}


def replay(url: str, requests: Sequence[tuple[str, Any]], keys: dict[str, str], *,
           timeout_s: float = 120.0, concurrency: int | None = None,
           done: Callable[[int, int], None] | None = None) -> Replay:
    """Send `requests` ((tenant, case) pairs) to the gateway at `url` with the official openai
    client, each with its tenant's API key, all at once (or `concurrency` at a time); model
    "default" = the tenant's channel. Client-side wall time per request."""
    from openai import OpenAI

    clients = {t: OpenAI(base_url=f"{url}/v1", api_key=k, timeout=timeout_s, max_retries=0)
               for t, k in keys.items()}
    total = len(requests)
    finished = [0]

    def one(item: tuple[str, Any]) -> Reply:
        tenant, case = item
        t0 = time.perf_counter()
        try:
            r = clients[tenant].chat.completions.create(
                model="default", messages=case.chat(), metadata=_metadata(dict(case.metadata)),
                user=f"demo-{tenant}-{case.id}", temperature=0)
            extra = (r.model_extra or {}).get("rung") or {}
            choice = r.choices[0]
            reply = Reply(case.id, tenant, (time.perf_counter() - t0) * 1000.0, choice.message.content or "",
                          choice.finish_reason or "", extra.get("blocked") or None,
                          str(extra.get("trace_id") or ""), str(extra.get("release") or ""))
        except Exception as e:  # noqa: BLE001 - an error is a measured outcome of the replay
            reply = Reply(case.id, tenant, (time.perf_counter() - t0) * 1000.0,
                          error=f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
        finished[0] += 1
        if done is not None:
            done(finished[0], total)
        return reply

    t0 = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency or total), thread_name_prefix="rung-demo-client")
    try:
        replies = list(pool.map(one, requests))
    except BaseException:  # Ctrl-C, SIGTERM: do not wait for the requests in flight (the gateway
        pool.shutdown(wait=False, cancel_futures=True)  # is stopped next, which ends them)
        raise
    pool.shutdown()
    for c in clients.values():
        c.close()
    return Replay(replies, time.perf_counter() - t0)

