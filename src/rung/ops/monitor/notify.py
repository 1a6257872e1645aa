"""Where alert events go: webhooks (one JSON POST per event) and the alert log (JSON lines).

The webhook body is the event (`AlertEvent.to_dict`) plus `"source": "rung"` and the project
name. A delivery that fails (connection refused, timeout, non-2xx) is recorded in the event's
`deliveries` and in the log; it never raises: monitoring goes on.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rung.config.operations import WebhookConfig
from rung.ops.monitor.engine import SEVERITIES, AlertEvent


def post_json(url: str, body: dict[str, Any], *, timeout: float = 5.0,
              headers: dict[str, str] | None = None) -> dict[str, Any]:
    """POST `body` as JSON; {"url", "status"} or {"url", "error"}."""
    data = json.dumps(body, ensure_ascii=False, default=str).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - a configured URL
            return {"url": url, "status": resp.status}
    except urllib.error.HTTPError as e:
        return {"url": url, "status": e.code, "error": f"HTTP {e.code}"}
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        return {"url": url, "error": str(reason) or type(e).__name__}


class Notifier:
    def __init__(self, webhooks: Iterable[WebhookConfig] = (), log: Path | None = None,
                 project: str = "") -> None:
        self.webhooks = list(webhooks)
        self.log = log
        self.project = project

    def send(self, events: Iterable[AlertEvent]) -> list[AlertEvent]:
        out = []
        for ev in events:
            body = {"source": "rung", "project": self.project, **ev.to_dict()}
            body.pop("deliveries", None)
            for hook in self.webhooks:
                if SEVERITIES.index(ev.severity) < SEVERITIES.index(hook.min_severity):
                    continue
                ev.deliveries.append(post_json(hook.url, body, timeout=hook.timeout_s,
                                               headers=hook.headers))
            if self.log is not None:
                self.log.parent.mkdir(parents=True, exist_ok=True)
                with self.log.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"project": self.project, **ev.to_dict()}, ensure_ascii=False,
                                       default=str) + "\n")
            out.append(ev)
        return out


def read_log(path: Path) -> list[dict[str, Any]]:
    """The alert events of a log file (bad lines skipped)."""
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if isinstance(d, dict) and "status" in d and "rule" in d:
            out.append(d)
    return out
