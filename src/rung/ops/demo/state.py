"""What each demo stage leaves for the next ones: one JSON file in the project's state folder
(`.rung/demo/state.json`). The stores hold the real things (runs, releases, channel events, API
keys, traces); this file holds the demo's own bookkeeping: which cases the ladder sampled, the
releases it made, the API keys it created (the keys themselves: the store keeps only their
hashes, and a later stage must call the gateway with them), and each stage's last result with
the inputs it was made from, so a re-run can tell whether anything changed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rung.config import paths
from rung.errors import RungError

if TYPE_CHECKING:
    from rung.config import RungConfig

STATE_DIR = f"{paths.STATE_DIR}/demo"
STATE_FILE = f"{STATE_DIR}/state.json"
STAGES = ("ladder", "release", "serve", "rollout", "monitor")


class DemoError(RungError):
    """A demo stage cannot run (a prerequisite stage has not run, or a stage failed)."""


def needs(stage: str, before: str, why: str) -> DemoError:
    """The one-line error of a stage whose prerequisite has not run."""
    return DemoError(f"stage '{stage}' needs stage '{before}' first: {why} "
                     f"(run `rung demo --stage {before}`, or `rung demo` for every stage)")


class DemoState:
    """The demo's bookkeeping file, read at the start and written after each stage."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {}
        if path.is_file():
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise DemoError(f"{path}: not readable as the demo's state ({e}); delete it and run "
                                "`rung demo` again") from None
            if isinstance(loaded, dict):
                self.data = loaded

    @classmethod
    def for_config(cls, config: RungConfig) -> DemoState:
        return cls(config.resolve(STATE_FILE))

    @property
    def folder(self) -> Path:
        return self.path.parent

    def get(self, stage: str) -> dict[str, Any] | None:
        v = self.data.get(stage)
        return v if isinstance(v, dict) else None

    def put(self, stage: str, value: dict[str, Any]) -> None:
        self.data[stage] = value
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        # it holds API keys of the demo's tenants: readable by the owner only
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.data, f, indent=2, ensure_ascii=False, default=str)
            f.write("\n")
        os.replace(tmp, self.path)
