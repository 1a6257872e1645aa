"""`suites:` (cases and their scorers) and `gate:` (thresholds a run must meet)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rung.config.base import _Strict


class ScorerSpec(BaseModel):
    """A scorer in a suite: `type` names a registered scorer; other keys are its parameters."""

    model_config = ConfigDict(extra="allow")
    type: str


class SuiteConfig(_Strict):
    path: str
    scorers: list[ScorerSpec] = Field(default_factory=list)
    description: str = ""

    @field_validator("scorers", mode="before")
    @classmethod
    def _names_to_specs(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"type": s} if isinstance(s, str) else s for s in v]
        return v


class Threshold(_Strict):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> Threshold:
        if self.min is None and self.max is None:
            raise ValueError("a threshold needs min or max")
        return self


class GateConfig(_Strict):
    """Thresholds that decide pass/fail of a run (`rung compare --fail-on-regression`, CI)."""

    thresholds: dict[str, Threshold] = Field(default_factory=dict)
    allow_not_measured: list[str] = Field(default_factory=list)
    alpha: float = Field(0.05, gt=0, lt=1)
    # a run whose share of errored answers (model or endpoint errors) is above this fails the
    # gate, whatever its thresholds say: the metrics of a run that mostly errored mean nothing
    max_error_rate: float = Field(0.05, ge=0, le=1)
