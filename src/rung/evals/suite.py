"""Suites: eval cases loaded from JSONL, YAML or a folder of those.

`load_suite(path)` reads every case with rung.core.cases.load_cases (validated, all problems
raised as one SuiteError naming file:line and field) and returns a `Suite`.

The suite hash is rung.core.cases_hash: a sha256 of the canonical JSON of the cases (sorted by
id, without their file/line), so moving or reformatting files keeps it, and changing any case
changes it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rung.core import Case, cases_hash
from rung.core.cases import load_cases
from rung.errors import SuiteError


@dataclass
class Suite:
    """A named list of cases with a content hash."""

    name: str
    path: Path
    cases: list[Case]
    hash: str = ""

    def __post_init__(self) -> None:
        if not self.hash:
            self.hash = cases_hash(self.cases)

    def __len__(self) -> int:
        return len(self.cases)

    def case(self, case_id: str) -> Case:
        for c in self.cases:
            if c.id == case_id:
                return c
        raise SuiteError(f"{self.path}: no case with id {case_id!r}")

    def filter(self, tags: Iterable[str] | None = None, ids: Iterable[str] | None = None) -> Suite:
        """A sub-suite: cases having any of `tags` and/or whose id is in `ids` (its own hash)."""
        wanted_tags = set(tags or ())
        wanted_ids = set(ids or ())
        cases = [c for c in self.cases
                 if (not wanted_tags or wanted_tags & set(c.tags))
                 and (not wanted_ids or c.id in wanted_ids)]
        if not cases:
            raise SuiteError(f"{self.path}: no case matches tags={sorted(wanted_tags)} ids={sorted(wanted_ids)}")
        return Suite(self.name, self.path, cases)


def spread_sample(cases: list[Case], n: int) -> list[Case]:
    """A fixed sample of n cases spread over the tags: round-robin over each case's first tag
    (in order of appearance), keeping suite order inside a tag. Deterministic."""
    if n >= len(cases):
        return list(cases)
    groups: dict[str, list[Case]] = {}
    for c in cases:
        groups.setdefault(c.tags[0] if c.tags else "", []).append(c)
    picked: list[Case] = []
    queues = [list(g) for g in groups.values()]
    while len(picked) < n:
        for q in queues:
            if q and len(picked) < n:
                picked.append(q.pop(0))
    order = {c.id: i for i, c in enumerate(cases)}
    return sorted(picked, key=lambda c: order[c.id])


def cases_by_tag(cases: Iterable[Case]) -> dict[str, list[Case]]:
    """Cases grouped by tag (a case with several tags appears under each; untagged under "")."""
    groups: dict[str, list[Case]] = defaultdict(list)
    for c in cases:
        for t in c.tags or [""]:
            groups[t].append(c)
    return dict(sorted(groups.items()))


def load_suite(path: str | Path, name: str | None = None) -> Suite:
    """Load every case from a JSONL file, a YAML file or a folder of those (sorted, recursive).

    Raises SuiteError listing every bad case (file:line: field: what was expected).
    """
    p = Path(path)
    return Suite(name=name or (p.stem if p.is_file() else p.name), path=p, cases=load_cases(p))
