"""`knowledge:` corpora and `candidates:`: the recipe of each rung of the ladder (model, prompt,
retrieval, answer mode, refusal gate, schema, tools, adapter)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from rung.config.base import _Strict
from rung.config.models import GenerationConfig
from rung.config.serving import GuardrailsConfig


class CorpusConfig(_Strict):
    """A folder of documents (Markdown, text, HTML, PDF, JSONL records) to retrieve from."""

    path: str
    chunk_tokens: int = Field(200, ge=16)
    chunk_overlap: int = Field(40, ge=0)
    embedder: str | None = None  # default: the project's `embedder`
    index_dir: str | None = None  # default: rung.config.paths.index_dir (.rung/index/<corpus name>)


class RetrievalConfig(_Strict):
    """How a candidate retrieves context. Filter values may use Jinja over the case's metadata,
    e.g. {jurisdiction: ["{{ jurisdiction }}", global]}; a list is a set; {from:, to:} a range."""

    corpus: str = "default"
    mode: Literal["hybrid", "bm25", "dense"] = "hybrid"
    top_k: int = Field(4, ge=1)
    fetch_k: int = Field(30, ge=1)
    filters: dict[str, Any] = Field(default_factory=dict)
    reranker: str = "none"  # none | embedding | llm | cross-encoder:PATH
    context_tokens: int = Field(800, ge=32)
    # drop: a document that another document of the corpus `supersedes` and that is already in
    # force (effective date today or earlier) is never retrieved; keep: every version is
    superseded: Literal["keep", "drop"] = "keep"
    # drop: chunks of documents marked `untrusted: true` (forum posts, reviews, partner notes)
    # are never retrieved; keep: they are, labelled untrusted in the prompt
    untrusted: Literal["keep", "drop"] = "keep"


class RefusalGateConfig(_Strict):
    """A classifier fitted on labelled requests (`examples`: a suite file or folder whose cases
    say `should_refuse`) that refuses before the model runs (rung/pipeline/refusal_gate.py)."""

    examples: str
    threshold: float = Field(0.5, gt=0, lt=1)
    regularization: float = Field(1.0, gt=0)  # logistic regression C: smaller = smoother
    message: str = "I'm sorry, I can't help with that request."


class AnswerConfig(_Strict):
    """How the final answer is made. `generate`: the model's text. `extractive`: the sentences
    of the retrieved sources that best match the question, quoted verbatim and cited; the model
    (prompted without the sources) only decides whether to refuse: its refusal is kept. When no
    source sentence scores `min_score` or more the answer is `abstain`. For models too small to
    read a context."""

    mode: Literal["generate", "extractive"] = "generate"
    max_sentences: int = Field(2, ge=1, le=10)
    min_score: float = Field(0.45, ge=0, le=2)
    abstain: str = ("I'm sorry, I can't find this in our documentation, so I can't answer it "
                    "reliably. I can pass you to a colleague.")


class PromptConfig(_Strict):
    """The system prompt assembled from named, versioned blocks (files in `prompt_blocks`).
    Block names may use Jinja over case metadata, e.g. "jurisdiction-{{ jurisdiction }}"."""

    blocks: list[str] = Field(default_factory=list)
    template: str | None = None  # a Jinja template file; default: blocks joined, then context
    variables: dict[str, str] = Field(default_factory=dict)


class CandidateConfig(_Strict):
    """The full recipe for answering at one level. Level 0 is model + prompt (+ retrieval,
    schema, tools); an adapter makes it level 1; fine-tuned weights (level: 2) make it level 2."""

    model: str = "default"
    adapter: str | None = None
    system_prompt: str = ""
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    level: int | None = Field(None, ge=0, le=2)
    description: str = ""
    # level 0 parts (all optional)
    prompt: PromptConfig | None = None
    retrieval: RetrievalConfig | None = None
    # a name in `schemas` (every answer follows it), or "case": each case's own `schema`
    output_schema: str | None = Field(None, alias="schema")
    schema_retries: int = Field(2, ge=0)
    constrained_decoding: bool = False
    tools: list[str] = Field(default_factory=list)  # calculator | policy_lookup | phrases
    require_citations: bool = False
    answer: AnswerConfig = Field(default_factory=AnswerConfig)
    refusal_gate: RefusalGateConfig | None = None
    guardrails: GuardrailsConfig | None = None  # `rung serve` checks (rung.config.serving)

    @model_validator(mode="after")
    def _extractive_needs_retrieval(self) -> CandidateConfig:
        if self.answer.mode == "extractive" and self.retrieval is None:
            raise ValueError("answer.mode 'extractive' quotes retrieved sources: add `retrieval`")
        return self

    @property
    def effective_level(self) -> int:
        if self.level is not None:
            return self.level
        return 1 if self.adapter else 0
