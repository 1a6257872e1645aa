"""`models:` (local / OpenAI-compatible backends, prices) and a candidate's `generation:`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rung.config.base import EMBEDDED_LLM, _Strict


class Price(_Strict):
    """Price per 1k tokens, in the currency of your choice (zero for local models)."""

    input_per_1k: float = Field(0.0, ge=0)
    output_per_1k: float = Field(0.0, ge=0)


class ModelConfig(_Strict):
    """A model: `local` (transformers; a HF folder, a GGUF file, a hub id or an embedded model)
    or `openai` (any OpenAI-compatible endpoint)."""

    backend: Literal["local", "openai"] = "local"
    # local
    path: str = EMBEDDED_LLM
    gguf_file: str | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = "auto"
    max_batch_size: int = Field(8, ge=1)
    threads: int | None = Field(None, ge=1)  # CPU threads for torch (None: torch's default, or RUNG_THREADS)
    # CPU: an answer does not depend on which requests share its batch (rung.models.invariant);
    # false: transformers' plain batched generate (faster in batch, answers vary with the batch)
    batch_invariant: bool = True
    adapters: dict[str, str] = Field(default_factory=dict)
    # openai
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    concurrency: int = Field(4, ge=1)
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(3, ge=0)
    # both
    price: Price = Field(default_factory=Price)
    self_hosted: bool | None = None  # None: local -> True, endpoint -> False unless set

    @model_validator(mode="after")
    def _check_backend(self) -> ModelConfig:
        if self.backend == "openai":
            if not self.base_url:
                raise ValueError("backend 'openai' needs base_url (e.g. http://127.0.0.1:8000/v1)")
            if not self.model:
                raise ValueError("backend 'openai' needs model (the endpoint's model name)")
        return self

    @property
    def is_self_hosted(self) -> bool:
        if self.self_hosted is not None:
            return self.self_hosted
        return self.backend == "local"


class GenerationConfig(_Strict):
    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int = 0
    stop: list[str] = Field(default_factory=list)
    repetition_penalty: float = Field(1.0, ge=1.0, le=2.0)
