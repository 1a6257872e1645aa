"""What every part of rung.yaml shares: strict models (unknown keys are errors) and the
names of the embedded defaults."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

EMBEDDED_LLM = "embedded:smollm2-135m-instruct"
EMBEDDED_EMBEDDER = "embedded:all-minilm-l6-v2"
PER_CASE_SCHEMA = "case"  # candidate `schema: case`: follow the schema each case names


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
