"""The `schema` scorer: schema_valid = the answer's JSON validates against the case's schema.

The case names a schema (case.schema) defined in rung.yaml `schemas` and loaded into
ScoreContext.schemas (rung.core.schemas.load_schemas): a JSON Schema dict (validated with
jsonschema, Draft 2020-12 unless the schema's $schema says otherwise) or a pydantic model class
(validated with model_validate_json). The answer's JSON is answer.parsed when the pipeline set
it, else what rung.text.jsonx.extract_json finds in the text.

value 1.0 valid / 0.0 invalid, reason = the first error ("$.items[0].qty: -1 is less than the
minimum of 1") or "not JSON: <parse error>". Cases without a schema get no score at all; a case
naming a schema the project does not define is "not measured".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rung.core import Answer, Case, Score
from rung.core.schemas import validate_json_schema, validate_pydantic
from rung.evals.scorers.base import ScoreContext, register
from rung.text.jsonx import JSONExtractError, extract_json, to_jsonable

SCHEMA_VALID = "schema_valid"


def _is_model_class(schema: Any) -> bool:
    return isinstance(schema, type) and hasattr(schema, "model_validate_json")


@register("schema")
@dataclass
class SchemaScorer:
    """schema_valid for cases that name a schema."""

    name: str = SCHEMA_VALID
    _validators: dict[int, Any] = field(default_factory=dict, init=False, repr=False)

    def _validator(self, schema: dict[str, Any]) -> Any:
        from jsonschema import validators

        key = id(schema)
        if key not in self._validators:
            cls = validators.validator_for(schema, default=validators.Draft202012Validator)
            self._validators[key] = cls(schema)
        return self._validators[key]

    def score(self, case: Case, answer: Answer, ctx: ScoreContext) -> list[Score]:
        if not case.schema:
            return []
        schema = ctx.schemas.get(case.schema)
        if schema is None:
            known = ", ".join(sorted(ctx.schemas)) or "none"
            return [Score.not_measured(
                self.name, f"case {case.id!r}: schema {case.schema!r} is not defined in rung.yaml schemas "
                           f"(defined: {known})")]
        details: dict[str, Any] = {"schema": case.schema}
        if answer.parsed is not None:
            data = answer.parsed if _is_model_class(schema) else to_jsonable(answer.parsed)
            details["source"] = "parsed"
        else:
            try:
                data = extract_json(answer.text)
            except JSONExtractError as e:
                return [Score(self.name, 0.0, reason=f"not JSON: {e}", details={**details, "source": "text"})]
            details["source"] = "text"
        if _is_model_class(schema):
            errors = validate_pydantic(data, schema)
        else:
            errors = validate_json_schema(data, schema, self._validator(schema))
        if errors:
            return [Score(self.name, 0.0, reason=errors[0], details={**details, "errors": errors})]
        return [Score(self.name, 1.0, details=details)]
