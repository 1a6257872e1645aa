"""Examples from the project's train cases (`tune.data.train`, the same format as a suite).

Each case becomes one positive example: the case's conversation, then its reference as the
assistant target. A case with no reference but `should_refuse: true` gets the refusal target
(`tune.data.refusal_target`, by default "I'm sorry, I can't help with that."). A case with
neither is skipped and counted. Lineage: source "case", ref = the case id, created_at = the
train file's modification time.
"""

from __future__ import annotations

from pathlib import Path

from rung.core import Case
from rung.errors import DataError
from rung.evals.suite import load_suite
from rung.tune.data.sources import LineageDefaults, Skipped, file_time, with_target
from rung.tune.example import Example

NO_TARGET = "case: no reference and should_refuse is not true"


def case_target(case: Case, refusal_target: str) -> str | None:
    """The assistant target a case teaches: its reference, else the refusal when it must refuse."""
    if case.reference is not None and case.reference.strip():
        return case.reference
    if case.should_refuse:
        return refusal_target
    return None


def examples_from_cases(path: Path, defaults: LineageDefaults, refusal_target: str,
                        skipped: Skipped) -> list[Example]:
    """One example per usable case of the train file (or folder); see the module doc."""
    if not path.exists():
        raise DataError(f"{path}: no such train file or folder (tune.data.train)")
    suite = load_suite(path, name="train")
    out: list[Example] = []
    times: dict[str, str] = {}
    for case in suite.cases:
        target = case_target(case, refusal_target)
        if target is None:
            skipped.add(NO_TARGET, case.id)
            continue
        created = times.get(case.file)
        if created is None:
            created = times[case.file] = file_time(Path(case.file))
        metadata = dict(case.metadata)
        if case.sources:
            metadata.setdefault("sources", list(case.sources))
        if case.should_refuse is not None:
            metadata["should_refuse"] = case.should_refuse
        if case.reference is None:
            metadata["target_from"] = "refusal_target"
        out.append(Example(
            id=f"case:{case.id}",
            messages=with_target(case.chat(), target),
            lineage=defaults.lineage("case", case.id, created),
            tags=list(case.tags),
            metadata=metadata,
        ))
    return out
