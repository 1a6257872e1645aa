"""The level-0 pipeline: a candidate turns cases into answers.

One batch goes through three explicit steps:

    prepare      case -> messages (system prompt + the case's conversation) and a trace
    generate     every prepared request in ONE Model.generate call (the backend batches)
    postprocess  completion -> Answer (text, usage, timings, errors)

Retrieval, schema validation and tools plug into `prepare` and `postprocess` (later issues).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rung.config import CandidateConfig, ModelConfig
from rung.evals.types import Case
from rung.models.base import Completion, GenerationParams, Message, Model, ProgressCallback, Request
from rung.pipeline.answer import Answer, Trace
from rung.pipeline.candidate import candidate_hash, candidate_level, candidate_record

if TYPE_CHECKING:
    from rung.config import RungConfig


@dataclass
class Prepared:
    """A case made ready for generation: the request to send and what led to it."""

    case: Case
    request: Request
    trace: Trace
    timings_ms: dict[str, float] = field(default_factory=dict)


class Pipeline:
    """Runs one candidate: build prompt -> generate -> postprocess."""

    def __init__(self, name: str, candidate: CandidateConfig, model: Model,
                 model_config: ModelConfig | None = None) -> None:
        self.name = name
        self.candidate = candidate
        self.model = model
        self.model_config = model_config
        self._fingerprint: str | None = None

    # ------------------------------------------------------------ identity

    @property
    def fingerprint(self) -> str:
        """The model's fingerprint with this candidate's adapter (computed once)."""
        if self._fingerprint is None:
            self._fingerprint = self.model.fingerprint(self.candidate.adapter)
        return self._fingerprint

    @property
    def hash(self) -> str:
        return candidate_hash(self.name, self.candidate, self.model_config, self.fingerprint)

    @property
    def level(self) -> int:
        return candidate_level(self.candidate)

    def record(self) -> dict:
        """The full configuration stored with a run."""
        return candidate_record(self.name, self.candidate, self.model_config, self.fingerprint)

    # ------------------------------------------------------------ steps

    def params(self, epoch: int = 0) -> GenerationParams:
        """Decoding parameters; when sampling, epoch k uses seed + k (greedy keeps the seed, so
        repeated epochs are answered from the response cache)."""
        g = self.candidate.generation
        seed = g.seed + epoch if g.temperature > 0 else g.seed
        return GenerationParams(max_new_tokens=g.max_new_tokens, temperature=g.temperature,
                                top_p=g.top_p, seed=seed, stop=tuple(g.stop))

    def build_messages(self, case: Case) -> list[Message]:
        """The candidate's system prompt (when set) followed by the case's conversation."""
        messages: list[Message] = []
        if self.candidate.system_prompt.strip():
            messages.append({"role": "system", "content": self.candidate.system_prompt})
        messages.extend(case.chat())
        return messages

    def prepare(self, case: Case, epoch: int = 0) -> Prepared:
        t0 = time.perf_counter()
        messages = self.build_messages(case)
        request = Request.chat(messages, self.params(epoch), self.candidate.adapter)
        prepared = Prepared(case, request, Trace(prompt=[dict(m) for m in messages]))
        prepared.timings_ms["prompt"] = (time.perf_counter() - t0) * 1000
        return prepared

    def generate(self, prepared: list[Prepared],
                 progress: ProgressCallback | None = None) -> list[Completion]:
        completions = self.model.generate([p.request for p in prepared], progress=progress)
        if len(completions) != len(prepared):
            from rung.errors import ModelError

            raise ModelError(f"model {self.model.model_id!r} returned {len(completions)} "
                             f"completions for {len(prepared)} requests")
        return completions

    def postprocess(self, prepared: Prepared, completion: Completion) -> Answer:
        t0 = time.perf_counter()
        timings = dict(prepared.timings_ms)
        timings["generate"] = completion.total_s * 1000
        error = completion.error or (
            "generation failed" if completion.finish_reason == "error" else None)
        answer = Answer(
            text=completion.text.strip(),
            trace=prepared.trace,
            tokens_in=completion.tokens_in,
            tokens_out=completion.tokens_out,
            timings_ms=timings,
            model_id=completion.model_id or self.model.model_id,
            adapter=completion.adapter if completion.adapter is not None else self.candidate.adapter,
            cached=completion.cached,
            error=error,
        )
        if completion.finish_reason == "length":
            answer.trace.events.append({"step": "generate", "event": "truncated",
                                        "max_new_tokens": prepared.request.params.max_new_tokens})
        timings["postprocess"] = (time.perf_counter() - t0) * 1000
        timings["total"] = sum(v for k, v in timings.items() if k != "total")
        return answer

    # ------------------------------------------------------------ all together

    def answer_batch(self, cases: list[Case], progress: ProgressCallback | None = None,
                     *, epoch: int = 0) -> list[Answer]:
        """Answer every case, generating them all in one Model.generate call."""
        prepared = [self.prepare(c, epoch) for c in cases]
        if not prepared:
            return []
        completions = self.generate(prepared, progress)
        return [self.postprocess(p, c) for p, c in zip(prepared, completions)]

    def answer(self, case: Case) -> Answer:
        return self.answer_batch([case])[0]


def build_pipeline(config: RungConfig, candidate: str | None = None, use_cache: bool = True) -> Pipeline:
    """The named candidate of a project (its model loaded through the project's factory)."""
    from rung.models.factory import load_project_model

    name, cand = config.candidate(candidate)
    model = load_project_model(config, cand.model, use_cache=use_cache)
    return Pipeline(name, cand, model, model_config=config.models[cand.model])
