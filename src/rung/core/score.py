"""A score: one measurement of one answer."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Score:
    """One measurement of one answer.

    value is None means "not measured" (no judge configured, the judge did not answer, the case
    has nothing to compare with): it is never counted as a pass or a fail, and never as NaN.
    For rates, value is 1.0 / 0.0; `higher_is_better` says which way is good.
    """

    name: str
    value: float | None
    higher_is_better: bool = True
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def measured(self) -> bool:
        return self.value is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def not_measured(name: str, reason: str, higher_is_better: bool = True) -> Score:
        return Score(name=name, value=None, higher_is_better=higher_is_better, reason=reason)
