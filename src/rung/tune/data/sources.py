"""What every source of training examples shares: lineage defaults and the tally of what was
skipped (and why).

A source turns records (train cases, scored traces of runs, lines of user files) into
`Example`s. Records that cannot become an example are not errors: they are skipped and counted
under a reason, and the dataset card shows the counts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from rung.config import DatasetConfig
from rung.core import Message
from rung.tune.example import Lineage, Source


@dataclass
class LineageDefaults:
    """The lineage fields a build gives every example unless a record carries its own."""

    product_version: str = ""
    policy_version: str = ""
    annotator: str = ""

    @staticmethod
    def from_config(cfg: DatasetConfig) -> LineageDefaults:
        return LineageDefaults(cfg.product_version, cfg.policy_version, cfg.annotator)

    def lineage(self, source: Source, ref: str, created_at: str, *, annotator: str | None = None,
                product_version: str | None = None, policy_version: str | None = None) -> Lineage:
        return Lineage(
            source=source,
            ref=ref,
            product_version=self.product_version if product_version is None else product_version,
            policy_version=self.policy_version if policy_version is None else policy_version,
            annotator=self.annotator if annotator is None else annotator,
            created_at=created_at,
        )


@dataclass
class Skipped:
    """Records a source did not turn into examples, counted by "<source>: <reason>"."""

    counts: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=dict)  # reason -> a few refs

    def add(self, reason: str, ref: str) -> None:
        self.counts[reason] += 1
        refs = self.samples.setdefault(reason, [])
        if len(refs) < 5:
            refs.append(ref)

    def to_dict(self) -> dict[str, dict[str, object]]:
        return {reason: {"count": n, "refs": self.samples.get(reason, [])}
                for reason, n in sorted(self.counts.items())}


def file_time(path: Path) -> str:
    """The file's modification time, ISO 8601 UTC (the created_at of records that have none)."""
    ts = path.stat().st_mtime
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def with_target(conversation: list[Message], target: str) -> list[Message]:
    """A copy of the conversation followed by the assistant target."""
    return [dict(m) for m in conversation] + [{"role": "assistant", "content": target}]
