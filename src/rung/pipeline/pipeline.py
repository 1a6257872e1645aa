"""The level-0 pipeline: a candidate turns requests (rung.core.Request; an eval Case is one)
into answers.

One batch of requests goes through explicit steps:

    retrieve     the request's question -> chunks (filters from its metadata), one batch
    prompt       blocks + system prompt + output format + tools + fenced sources -> messages
    gate         the refusal gate (when configured) refuses requests like its examples to
                 refuse, without a model call
    generate     every request in ONE Model.generate call per round (the backend batches):
                 free-text answers go through tool rounds (when the candidate has tools),
                 answers with a schema through validate -> repair -> retry (bounded)
    postprocess  phrases rendered, extractive answers quoted from the sources (answer.mode),
                 citations extracted and checked (and required, for
                 regulated flows), usage, timings (retrieve / prompt / generate / tools /
                 validate / postprocess / total) and the trace
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

from rung.config import CandidateConfig, ModelConfig
from rung.core import Answer, Message, Request, RetrievedChunk, ToolCall, Trace
from rung.models.base import Completion, GenerationParams, GenRequest, Model, ProgressCallback
from rung.pipeline.candidate import candidate_hash, candidate_level, candidate_record
from rung.pipeline.components import Components

if TYPE_CHECKING:
    from rung.config import RungConfig


@dataclass
class Prepared:
    """A request made ready for generation: the model call to make and what led to it."""

    request: Request
    gen: GenRequest
    trace: Trace
    schema: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class Generated:
    """What generation produced for one request (after tool rounds or schema enforcement)."""

    completion: Completion
    tool_calls: list[ToolCall] = field(default_factory=list)
    parsed: Any = None
    events: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    validate_ms: float = 0.0


class Pipeline:
    """Runs one candidate: retrieve -> prompt -> generate (tools / schema) -> postprocess."""

    def __init__(self, name: str, candidate: CandidateConfig, model: Model,
                 model_config: ModelConfig | None = None, components: Components | None = None) -> None:
        self.name = name
        self.candidate = candidate
        self.model = model
        self.model_config = model_config
        self.components = components or Components(candidate=candidate)
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
        return candidate_hash(self.name, self.candidate, self.model_config, self.fingerprint,
                              self.components.fingerprint)

    @property
    def level(self) -> int:
        return candidate_level(self.candidate)

    def record(self) -> dict[str, Any]:
        """The full configuration stored with a run."""
        rec = candidate_record(self.name, self.candidate, self.model_config, self.fingerprint)
        rec["components_fingerprint"] = self.components.fingerprint
        return rec

    # ------------------------------------------------------------ steps

    def params(self, epoch: int = 0) -> GenerationParams:
        """Decoding parameters; when sampling, epoch k uses seed + k (greedy keeps the seed, so
        repeated epochs are answered from the response cache)."""
        g = self.candidate.generation
        seed = g.seed + epoch if g.temperature > 0 else g.seed
        stop = list(g.stop)
        if self.components.toolset is not None:
            stop += [s for s in self.components.toolset.stop_sequences() if s not in stop]
        return GenerationParams(max_new_tokens=g.max_new_tokens, temperature=g.temperature,
                                top_p=g.top_p, seed=seed, stop=tuple(stop),
                                repetition_penalty=g.repetition_penalty)

    def retrieve(self, requests: list[Request]) -> tuple[list[list[RetrievedChunk]], float]:
        """Chunks for every request (one batch) and the time per request in ms."""
        retriever = self.components.retriever
        if retriever is None or not requests:
            return [[] for _ in requests], 0.0
        t0 = time.perf_counter()
        filters = [retriever.filters_for(r.metadata) for r in requests]
        found = retriever.search_batch([r.question for r in requests], filters)
        return found, (time.perf_counter() - t0) * 1000 / len(requests)

    def build_messages(self, request: Request, retrieved: list[RetrievedChunk] | None = None,
                       schema: str | None = None, trace: Trace | None = None) -> list[Message]:
        """The system prompt (blocks, inline prompt, output format, tools, sources) + the request."""
        builder = self.components.builder(schema)
        tools = self.components.toolset.system_prompt_section() if self.components.toolset else ""
        if builder is None:  # a pipeline built without a project: the inline system prompt only
            messages: list[Message] = []
            if self.candidate.system_prompt.strip():
                messages.append({"role": "system", "content": self.candidate.system_prompt})
            return messages + request.chat()
        built = builder.build(request, retrieved or [], tools_section=tools)
        if trace is not None and built.block_versions:
            trace.events.append(built.event())
        messages = built.messages
        if self.components.toolset is not None and schema is None:
            # small models call tools only after seeing it done: a worked example goes between
            # the system prompt and the conversation
            at = 1 if messages and messages[0]["role"] == "system" else 0
            messages = messages[:at] + self.components.toolset.example_messages() + messages[at:]
        return messages

    def prepare(self, request: Request, retrieved: list[RetrievedChunk], epoch: int = 0) -> Prepared:
        t0 = time.perf_counter()
        schema = self.components.schema_for(request.schema)
        trace = Trace(retrieved=list(retrieved))
        # an extractive answer quotes the sources itself: the model, whose reply only decides
        # whether to refuse, is not shown them (a third of the prompt tokens)
        messages = self.build_messages(request, [] if self._extractive_mode(schema) else retrieved, schema, trace)
        trace.prompt = [dict(m) for m in messages]
        params = self.params(epoch)
        if schema is not None and self.candidate.constrained_decoding:
            params = replace(params, json_schema=self.components.json_schema(schema))
        gen = GenRequest.chat(messages, params, self.candidate.adapter)
        prepared = Prepared(request, gen, trace, schema)
        prepared.timings_ms["prompt"] = (time.perf_counter() - t0) * 1000
        return prepared

    def generate(self, prepared: list[Prepared],
                 progress: ProgressCallback | None = None) -> list[Generated]:
        """Free-text requests (with tool rounds when the candidate has tools) and schema
        requests (validate / repair / retry), each group batched."""
        out: list[Generated | None] = [None] * len(prepared)
        free = [i for i, p in enumerate(prepared) if p.schema is None]
        typed = [i for i, p in enumerate(prepared) if p.schema is not None]
        done = 0

        def shifted(offset: int) -> ProgressCallback | None:
            if progress is None:
                return None
            return lambda d, _t: progress(offset + d, len(prepared))

        if free:
            reqs = [prepared[i].gen for i in free]
            toolset = self.components.toolset
            if toolset is not None:
                from rung.pipeline.tools.protocol import run_tool_rounds

                contexts = [prepared[i].request.metadata for i in free]
                comps, calls = run_tool_rounds(self.model, reqs, toolset, contexts=contexts,
                                               progress=shifted(done))
            else:
                comps, calls = _generate(self.model, reqs, shifted(done)), [[] for _ in free]
            for i, c, tc in zip(free, comps, calls):
                out[i] = Generated(c, tool_calls=tc, error=c.error)
            done += len(free)
        if typed:
            from rung.pipeline.structured import enforce_batch

            t0 = time.perf_counter()
            results = enforce_batch(self.model, [prepared[i].gen for i in typed],
                                    [self.components.enforcer(cast(str, prepared[i].schema)) for i in typed],
                                    progress=shifted(done))
            wall_ms = (time.perf_counter() - t0) * 1000
            for i, r in zip(typed, results):
                merged = _merge(r.completions, r.text)
                g = Generated(merged, parsed=r.parsed, events=[r.event()])
                g.validate_ms = max(0.0, wall_ms / len(typed) - merged.total_s * 1000 / max(1, len(r.completions)))
                if r.status in ("rejected", "error"):
                    g.error = r.error
                out[i] = g
        return [g for g in out if g is not None]

    def postprocess(self, prepared: Prepared, gen: Generated) -> Answer:
        from rung.pipeline.citations import check_citations, enforce_required_citations, extract_citations

        t0 = time.perf_counter()
        completion = gen.completion
        trace = prepared.trace
        trace.tool_calls = list(gen.tool_calls)
        trace.events.extend(gen.events)
        text = completion.text.strip()
        toolset = self.components.toolset
        if toolset is not None and toolset.phrases is not None:
            rendered = toolset.render_phrases(text)
            text = rendered.text
            if (ev := rendered.trace_event()) is not None:
                trace.events.append(ev)
        if self._extractive_mode(prepared.schema) and "refusal_gate" not in completion.extra:
            text = self._extractive(prepared, text)  # (a gate refusal is kept as it is)
        # sources are labelled by chunk id in the prompt (not numbered), so "[2]" is not a citation
        citations = extract_citations(text) if trace.retrieved else []
        if trace.retrieved or citations:
            check = check_citations(citations, trace.retrieved)
            trace.events.append({"type": "citations", "cited": citations, "unknown": check.unknown_ids,
                                 "valid": check.valid})
        if self.candidate.require_citations and prepared.schema is None:
            text, refused, reason = enforce_required_citations(text, citations, trace.retrieved)
            if refused:
                trace.events.append({"type": "citations", "event": "refused", "reason": reason})
                citations = []
        timings = dict(prepared.timings_ms)
        timings["generate"] = completion.total_s * 1000
        if gen.tool_calls:
            timings["tools"] = sum(tc.duration_ms for tc in gen.tool_calls)
        if prepared.schema is not None:
            timings["validate"] = gen.validate_ms
        error = gen.error or completion.error or (
            "generation failed" if completion.finish_reason == "error" else None)
        answer = Answer(
            text=text, citations=citations, parsed=gen.parsed, trace=trace,
            tokens_in=completion.tokens_in, tokens_out=completion.tokens_out, timings_ms=timings,
            model_id=completion.model_id or self.model.model_id,
            adapter=completion.adapter if completion.adapter is not None else self.candidate.adapter,
            cached=completion.cached, error=error,
        )
        if completion.finish_reason == "length":
            trace.events.append({"step": "generate", "event": "truncated",
                                 "max_new_tokens": prepared.gen.params.max_new_tokens})
        timings["postprocess"] = (time.perf_counter() - t0) * 1000 - timings.get("extract", 0.0)
        timings["total"] = sum(v for k, v in timings.items() if k != "total")
        return answer

    def _extractive_mode(self, schema: str | None) -> bool:
        """Whether free-text answers are quoted from the sources (answers with a schema never are)."""
        return self.candidate.answer.mode == "extractive" and schema is None

    def _extractive(self, prepared: Prepared, model_text: str) -> str:
        """The quoted answer, unless the model refused (its refusal is kept)."""
        from rung.pipeline.extractive import extract_answer
        from rung.text.refusal import detect_refusal

        verdict = detect_refusal(model_text)
        if verdict.refused and model_text:
            prepared.trace.events.append({"type": "extractive", "kept": "model refusal",
                                          "refusal": verdict.to_dict()})
            return model_text
        t0 = time.perf_counter()
        retriever = self.components.retriever
        assert retriever is not None  # the config requires retrieval for extractive answers
        extracted = extract_answer(prepared.request.question, prepared.trace.retrieved,
                                   retriever.index.embedder, self.candidate.answer)
        prepared.timings_ms["extract"] = (time.perf_counter() - t0) * 1000
        prepared.trace.events.append(extracted.event(model_text))
        return extracted.text

    # ------------------------------------------------------------ all together

    def answer_batch(self, requests: list[Request], progress: ProgressCallback | None = None,
                     *, epoch: int = 0) -> list[Answer]:
        """Answer every request (eval cases are requests): one retrieval batch, then batched
        generation."""
        if not requests:
            return []
        retrieved, retrieve_ms = self.retrieve(requests)
        prepared = [self.prepare(q, r, epoch) for q, r in zip(requests, retrieved)]
        if self.components.retriever is not None:
            for p in prepared:
                p.timings_ms = {"retrieve": retrieve_ms, **p.timings_ms}
                p.trace.events.insert(0, {"type": "retrieval", "chunks": len(p.trace.retrieved),
                                          "filters": self.components.retriever.filters_for(p.request.metadata)})
        gated = self._gate(prepared)
        rest = [p for i, p in enumerate(prepared) if i not in gated]
        inner = progress
        if progress is not None and gated:  # gated requests count as done
            progress(len(gated), len(prepared))
            inner = lambda d, _n: progress(len(gated) + d, len(prepared))  # noqa: E731
        generated = iter(self.generate(rest, inner) if rest else [])
        return [self.postprocess(p, gated[i] if i in gated else next(generated))
                for i, p in enumerate(prepared)]

    def _gate(self, prepared: list[Prepared]) -> dict[int, Generated]:
        """The requests the refusal gate refuses (by position), answered without the model."""
        gate = self.components.refusal_gate
        if gate is None or not prepared:
            return {}
        t0 = time.perf_counter()
        probs = gate.probabilities([p.request.question for p in prepared])
        per_request = (time.perf_counter() - t0) * 1000 / len(prepared)
        out: dict[int, Generated] = {}
        for i, (p, prob) in enumerate(zip(prepared, probs)):
            p.timings_ms["gate"] = per_request
            p.trace.events.append(gate.event(prob))
            if prob >= gate.config.threshold:
                out[i] = Generated(Completion(text=gate.config.message, tokens_in=0, tokens_out=0,
                                              ttft_s=0.0, total_s=0.0, model_id=self.model.model_id,
                                              adapter=self.candidate.adapter,
                                              extra={"refusal_gate": round(float(prob), 4)}))
        return out

    def answer(self, request: Request) -> Answer:
        return self.answer_batch([request])[0]


def _generate(model: Model, requests: list[GenRequest], progress: ProgressCallback | None) -> list[Completion]:
    completions = model.generate(requests, progress=progress)
    if len(completions) != len(requests):
        from rung.errors import ModelError

        raise ModelError(f"model {model.model_id!r} returned {len(completions)} completions "
                         f"for {len(requests)} requests")
    return completions


def _merge(completions: list[Completion], text: str) -> Completion:
    """One completion standing for all the attempts of a schema answer: the final text, tokens
    and time summed over attempts."""
    last = completions[-1]
    return Completion(text=text, tokens_in=sum(c.tokens_in for c in completions),
                      tokens_out=sum(c.tokens_out for c in completions), ttft_s=completions[0].ttft_s,
                      total_s=sum(c.total_s for c in completions), model_id=last.model_id,
                      adapter=last.adapter, cached=all(c.cached for c in completions),
                      finish_reason=last.finish_reason, error=last.error,
                      extra={"attempts": len(completions)})


def build_pipeline(config: RungConfig, candidate: str | None = None, use_cache: bool = True,
                   progress: ProgressCallback | None = None) -> Pipeline:
    """The named candidate of a project: its level-0 parts (corpus index built or loaded, prompt
    blocks, tools, schemas) and its model, the process-wide shared one (rung.models.pool: every
    pipeline on the same base gets the same object, loaded once on first use; nothing is loaded
    here) behind the project's response cache."""
    from rung.models.pool import model_pool
    from rung.pipeline.components import build_components

    name, cand = config.candidate(candidate)
    components = build_components(config, cand, progress)
    model = model_pool().project_model(config, cand.model, use_cache=use_cache)
    return Pipeline(name, cand, model, model_config=config.models[cand.model], components=components)
