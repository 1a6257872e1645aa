"""Output schemas enforced: validate -> repair -> retry (bounded) -> reject early.

A candidate with `schema: NAME` must answer with JSON that validates against the project's schema
NAME (a JSON Schema dict or a pydantic model class, see rung.core.schemas). For each answer:

1. `check(text)`: the text, stripped, is JSON and validates -> "valid_first_try";
2. else `repair(text)` fixes trivially broken JSON (see rung.pipeline.jsonrepair) and validates
   again -> "repaired";
3. else the answer is "invalid"; `enforce_batch` then sends the validation error back as a user
   turn asking for corrected JSON only, up to `max_retries` times, all still-invalid requests of
   a round in ONE Model.generate call; a retry that validates (as-is or repaired) -> "retried";
4. still invalid after max_retries -> "rejected", with the errors of every attempt. The answer
   carries error = "schema rejected: ..." (SchemaRejected's message).

A generation failure (finish_reason "error") is not retried and ends as "error".

Each StructuredResult gives the trace event {"type": "schema", "schema", "status", "attempts",
"errors"}; `status_counts` counts statuses over results or over trace events.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from rung.core import Message
from rung.errors import ConfigError, RungError
from rung.models.base import Completion, GenRequest, Model, ProgressCallback
from rung.pipeline.jsonrepair import repair_json
from rung.pipeline.schema_prompt import schema_instructions

if TYPE_CHECKING:
    from pydantic import BaseModel

    from rung.config import CandidateConfig

State = Literal["valid_first_try", "repaired", "invalid"]
Status = Literal["first_try", "repaired", "retried", "rejected", "error"]
STATUSES: tuple[str, ...] = ("first_try", "repaired", "retried", "rejected", "error")
_ERRORS_SHOWN = 3  # validation errors quoted back to the model in a retry


class SchemaRejected(RungError):
    """An answer never validated against its schema within the allowed retries."""


@dataclass
class Outcome:
    """The result of checking one text against a schema."""

    state: State
    parsed: Any = None  # the JSON data that validated (None when invalid)
    text: str = ""  # the JSON text that validated (the repaired text when repaired)
    errors: list[str] = field(default_factory=list)  # "$.priority: 'asap' is not one of [...]"
    fixes: list[str] = field(default_factory=list)  # what repair changed

    @property
    def ok(self) -> bool:
        return self.state != "invalid"

    @property
    def error(self) -> str:
        """The most relevant error ("" when valid)."""
        return self.errors[0] if self.errors else ""


class SchemaEnforcer:
    """Checks, repairs and asks again for answers that must follow one schema."""

    def __init__(self, schema_name: str, schema: dict[str, Any] | type[BaseModel], max_retries: int = 2) -> None:
        if max_retries < 0:
            raise ConfigError(f"schema {schema_name!r}: max_retries must be >= 0, got {max_retries}")
        self.name = schema_name
        self.schema = schema
        self.max_retries = max_retries
        self._is_model = isinstance(schema, type) and hasattr(schema, "model_validate_json")
        self._validator: Any = None
        if not self._is_model and not isinstance(schema, dict):
            raise ConfigError(f"schema {schema_name!r}: expected a JSON Schema dict or a pydantic model "
                              f"class, got {type(schema).__name__}")

    @classmethod
    def from_config(cls, candidate: CandidateConfig, schemas: Mapping[str, Any],
                    where: str = "rung.yaml") -> SchemaEnforcer | None:
        """The enforcer of a candidate's `schema` (None when it has none); `schemas` is what
        rung.core.schemas.load_schemas(config) returned; `where` names rung.yaml in errors."""
        name = candidate.output_schema
        if not name:
            return None
        if name not in schemas:
            raise ConfigError(f"{where}: schemas: no schema named {name!r}; "
                              f"schemas are {', '.join(sorted(schemas)) or '(none)'}")
        return cls(name, schemas[name], candidate.schema_retries)

    # ------------------------------------------------------------ checking

    def validate(self, data: Any) -> list[str]:
        """Validation errors of JSON data ("<path>: <message>"); [] when valid."""
        from rung.core.schemas import validate_json_schema, validate_pydantic

        if self._is_model:
            return validate_pydantic(data, self.schema)  # type: ignore[arg-type]
        if self._validator is None:
            from jsonschema import validators

            cls = validators.validator_for(self.schema, default=validators.Draft202012Validator)
            self._validator = cls(self.schema)
        return validate_json_schema(data, self.schema, self._validator)  # type: ignore[arg-type]

    def check(self, text: str) -> Outcome:
        """valid_first_try when the stripped text is valid JSON for the schema, else repair()."""
        stripped = (text or "").strip()
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError:
            return self.repair(text)
        errors = self.validate(data)
        if errors:
            return Outcome("invalid", errors=errors)
        return Outcome("valid_first_try", parsed=data, text=stripped)

    def repair(self, text: str) -> Outcome:
        """Fix trivially broken JSON (rung.pipeline.jsonrepair), then validate."""
        fixed = repair_json(text)
        if fixed.text is None:
            return Outcome("invalid", errors=[f"not JSON: {fixed.error}"], fixes=fixed.fixes)
        data = json.loads(fixed.text)
        errors = self.validate(data)
        if errors:
            return Outcome("invalid", errors=errors, fixes=fixed.fixes)
        return Outcome("repaired", parsed=data, text=fixed.text, fixes=fixed.fixes)

    # ------------------------------------------------------------ asking again

    def instructions(self) -> str:
        """A system-prompt section describing the expected JSON (fields, types, enums)."""
        return schema_instructions(self.schema, self.name)

    def retry_messages(self, messages: Sequence[Message], bad_text: str, error: str | Sequence[str],
                       truncated: bool = False) -> list[Message]:
        """The conversation again, with the bad answer and a user turn that quotes the
        validation error and asks for the corrected JSON only."""
        errors = [error] if isinstance(error, str) else list(error)
        listed = "; ".join(errors[:_ERRORS_SHOWN]) or "not valid"
        note = " Your answer was cut off: keep it shorter." if truncated else ""
        ask = (f"Your answer does not follow the required JSON format ({self.name}): {listed}.{note} "
               "Reply again with the corrected JSON object only: no explanation, no code fences.")
        return [*(dict(m) for m in messages), {"role": "assistant", "content": bad_text},
                {"role": "user", "content": ask}]


@dataclass
class StructuredResult:
    """One request driven through check -> repair -> retry -> reject."""

    text: str  # the accepted JSON text (repaired when repaired); the last answer when not accepted
    parsed: Any
    status: Status
    attempts: int  # generations made (1 + retries)
    errors: list[str] = field(default_factory=list)  # the main error of each failed attempt
    completions: list[Completion] = field(default_factory=list)  # every attempt, in order
    schema: str = ""
    fixes: list[str] = field(default_factory=list)  # what repair changed in the accepted answer

    @property
    def ok(self) -> bool:
        return self.status in ("first_try", "repaired", "retried")

    @property
    def tokens_in(self) -> int:
        return sum(c.tokens_in for c in self.completions)

    @property
    def tokens_out(self) -> int:
        return sum(c.tokens_out for c in self.completions)

    @property
    def generate_s(self) -> float:
        """Model time over every attempt, in seconds."""
        return sum(c.total_s for c in self.completions)

    @property
    def error(self) -> str | None:
        """The Answer.error for this result: "schema rejected: ..." or the generation error."""
        if self.status == "rejected":
            return str(self.rejection())
        if self.status == "error":
            return self.errors[-1] if self.errors else "generation failed"
        return None

    def rejection(self) -> SchemaRejected:
        last = self.errors[-1] if self.errors else "invalid"
        return SchemaRejected(f"schema rejected: {self.schema}: invalid after {self.attempts} "
                              f"attempt{'s' if self.attempts != 1 else ''}: {last}")

    def event(self) -> dict[str, Any]:
        """The trace event the run aggregates schema statuses from."""
        ev: dict[str, Any] = {"type": "schema", "schema": self.schema, "status": self.status,
                              "attempts": self.attempts, "errors": list(self.errors)}
        if self.fixes:
            ev["fixes"] = list(self.fixes)
        return ev


def enforce_batch(model: Model, requests: Sequence[GenRequest],
                  enforcers: SchemaEnforcer | Sequence[SchemaEnforcer],
                  progress: ProgressCallback | None = None) -> list[StructuredResult]:
    """Generate every request, then resend only the still-invalid ones, each round in ONE
    model.generate call, until each is valid or out of retries (its enforcer's max_retries).

    progress(done, total) counts generations: total starts at len(requests) and grows by the
    retries each round schedules."""
    n = len(requests)
    if isinstance(enforcers, SchemaEnforcer):
        enforcers = [enforcers] * n
    if len(enforcers) != n:
        raise ValueError(f"enforce_batch: {len(enforcers)} enforcers for {n} requests")
    results: list[StructuredResult | None] = [None] * n
    comps: list[list[Completion]] = [[] for _ in range(n)]
    errors: list[list[str]] = [[] for _ in range(n)]
    current: dict[int, GenRequest] = {i: r for i, r in enumerate(requests)}
    done, total = 0, n
    attempt = 0
    while current:
        idx = sorted(current)
        offset = done

        def forward(k: int, _m: int, _offset: int = offset, _total: int = total) -> None:
            if progress is not None:
                progress(_offset + k, _total)

        out = model.generate([current[i] for i in idx], progress=forward if progress else None)
        if len(out) != len(idx):
            from rung.errors import ModelError

            raise ModelError(f"model {model.model_id!r} returned {len(out)} completions for {len(idx)} requests")
        done += len(idx)
        attempt += 1
        following: dict[int, GenRequest] = {}
        for i, completion in zip(idx, out):
            enf = enforcers[i]
            comps[i].append(completion)
            if completion.finish_reason == "error" or completion.error:
                errors[i].append(f"generation failed: {completion.error or 'unknown error'}")
                results[i] = _result(enf, completion.text, None, "error", comps[i], errors[i])
                continue
            outcome = enf.check(completion.text)
            if outcome.ok:
                status: Status = ("retried" if attempt > 1 else
                                  "first_try" if outcome.state == "valid_first_try" else "repaired")
                results[i] = _result(enf, outcome.text, outcome.parsed, status, comps[i], errors[i], outcome.fixes)
                continue
            errors[i].append(outcome.error)
            if attempt > enf.max_retries:
                results[i] = _result(enf, completion.text, None, "rejected", comps[i], errors[i])
                continue
            base = requests[i]
            msgs = enf.retry_messages(list(base.messages), completion.text, outcome.errors,
                                      truncated=completion.finish_reason == "length")
            following[i] = GenRequest.chat(msgs, base.params, base.adapter)
        current = following
        total += len(following)
        if progress is not None:
            progress(done, total)
    return [r for r in results if r is not None]


def _result(enf: SchemaEnforcer, text: str, parsed: Any, status: Status, comps: list[Completion],
            errors: list[str], fixes: list[str] | None = None) -> StructuredResult:
    return StructuredResult(text=text, parsed=parsed, status=status, attempts=len(comps), errors=list(errors),
                            completions=list(comps), schema=enf.name, fixes=list(fixes or []))


def status_counts(items: Iterable[StructuredResult | dict[str, Any]]) -> dict[str, int]:
    """{status: count} over results or over trace events (non-schema events are skipped);
    every status is present, with 0 when absent."""
    counts = dict.fromkeys(STATUSES, 0)
    for item in items:
        if isinstance(item, StructuredResult):
            status = item.status
        elif isinstance(item, dict) and item.get("type") == "schema":
            status = str(item.get("status"))
        else:
            continue
        counts[status] = counts.get(status, 0) + 1
    return counts
