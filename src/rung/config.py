"""rung.yaml: the project file, as pydantic models.

`load_config(path)` reads and validates it. Every error names the file, the line, the key path
and what was expected; unknown keys are errors with a "did you mean". Paths in the file are
resolved relative to the file's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rung.errors import ConfigError, did_you_mean
from rung.yamlfile import parse_yaml, validation_message

EMBEDDED_LLM = "embedded:smollm2-135m-instruct"
EMBEDDED_EMBEDDER = "embedded:all-minilm-l6-v2"
PER_CASE_SCHEMA = "case"  # candidate `schema: case`: follow the schema each case names


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


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


class CorpusConfig(_Strict):
    """A folder of documents (Markdown, text, HTML, PDF, JSONL records) to retrieve from."""

    path: str
    chunk_tokens: int = Field(200, ge=16)
    chunk_overlap: int = Field(40, ge=0)
    embedder: str | None = None  # default: the project's `embedder`
    index_dir: str | None = None  # default: .rung/index/<corpus name>


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


class Constraints(_Strict):
    """The framework's four questions (latency and cost, data sensitivity, change velocity,
    evaluation readiness), the targets, and the cost model's prices (`rung decide`,
    docs/decide.md). Money is in the currency of the models' `price`."""

    p95_latency_ms: float | None = Field(None, gt=0)
    cost_per_1k_requests: float | None = Field(None, ge=0)
    requests_per_month: int | None = Field(None, ge=0)
    data_may_leave_network: bool = True
    policy_changes_per_month: float = Field(0.0, ge=0)
    task_success_target: float = Field(0.8, ge=0, le=1)
    hallucination_bound: float = Field(0.03, ge=0, le=0.05)
    min_cases_per_tag: int = Field(10, ge=1)
    # tags (glob patterns, e.g. "topic:*") that need not reach min_cases_per_tag
    readiness_exempt_tags: list[str] = Field(default_factory=list)
    # style / format: schema_valid and refusal_correct must reach this where they are measured
    format_target: float = Field(0.9, ge=0, le=1)
    max_safety_violations: int = Field(0, ge=0)  # cases with safety_violation = 1
    # which rungs of the ladder the team may climb
    allow_level1: bool = True
    allow_level2: bool = True
    min_train_examples_level2: int = Field(1000, ge=0)  # a full fine-tune needs this much data
    # cost model: self-hosted serving = compute_price_per_hour x mean latency / serving_concurrency
    compute_price_per_hour: float = Field(2.0, ge=0)  # one serving instance (GPU or CPU box)
    serving_concurrency: float = Field(8.0, gt=0)  # requests one instance answers at once
    # training: hours x price, amortised over `amortisation_months`, repeated per policy change
    training_price_per_hour: float = Field(4.0, ge=0)
    training_hours_level1: float = Field(1.0, ge=0)  # estimate when no artifact measured it
    training_hours_level2: float = Field(8.0, ge=0)
    amortisation_months: float = Field(12.0, gt=0)


class PathsConfig(_Strict):
    store: str = ".rung/rung.db"
    cache: str = ".rung/cache.db"
    artifacts: str = ".rung/artifacts"
    datasets: str = ".rung/datasets"


class DataChecksConfig(_Strict):
    """Thresholds and severities of the dataset checks (rung.tune.data.checks)."""

    near_duplicate_threshold: float = Field(0.9, gt=0, le=1)  # TF-IDF cosine of two examples' text
    near_duplicates: Literal["error", "warning"] = "warning"
    leakage_threshold: float = Field(0.6, gt=0, le=1)  # TF-IDF cosine of a prompt and an eval case's
    # suites to check leakage against (None: every suite except one whose path is tune.data.train)
    leakage_suites: list[str] | None = None
    min_counter_fraction: float = Field(0.05, ge=0, le=1)  # share of label "counter" expected
    counter_examples: Literal["error", "warning"] = "warning"


class BalanceConfig(_Strict):
    """How `rung data build` rebalances the examples (downsampling only, deterministic with `seed`)."""

    long_words: int = Field(120, ge=1)  # an example with more words (prompt + target) is "long"
    long_fraction: float | None = Field(None, ge=0, le=1)  # target share of long examples
    counter_fraction: float | None = Field(None, ge=0, le=1)  # target share of label "counter"
    # tag quotas: "product:" (a prefix: every value) or "product:router" (one tag) -> the most
    # examples to keep, or "equal" (every value of the prefix capped at the smallest one's count)
    tags: dict[str, int | Literal["equal"]] = Field(default_factory=dict)
    max_examples: int | None = Field(None, ge=1)


class DatasetConfig(_Strict):
    """How `rung data build` assembles a training set (rung.tune.data)."""

    train: str | None = None  # train cases, same format as a suite (JSONL / YAML)
    files: list[str] = Field(default_factory=list)  # chat JSONL, prompt/completion JSONL, HF datasets on disk
    runs: list[str] = Field(default_factory=list)  # run ids whose scored answers become examples
    negatives: list[str] = Field(default_factory=list)  # hard-negative generators to apply
    # hard negatives (rung.tune.negatives): variants per parent, share of eligible parents used,
    # long_context's prompt length (approx. tokens), multilingual's languages and translator model
    negatives_per_example: int = Field(1, ge=1, le=10)
    negatives_fraction: float = Field(1.0, gt=0, le=1)
    long_context_tokens: int = Field(2000, ge=64)
    languages: list[str] = Field(default_factory=lambda: ["es", "fr", "de"])
    translator: str | None = None  # a name in `models`; None: curated templates (refusals only)
    product_version: str = ""
    policy_version: str = ""
    annotator: str = ""
    seed: int = 0
    # the target of a should_refuse case (or trace) that has no reference
    refusal_target: str = "I'm sorry, I can't help with that."
    checks: DataChecksConfig = Field(default_factory=DataChecksConfig)
    balance: BalanceConfig = Field(default_factory=BalanceConfig)


class TrainConfig(_Strict):
    """Defaults of `rung tune` (rung.tune.train); command-line flags override them.

    The defaults suit the 135M embedded model on a small CPU (docs/tuning.md has the numbers)."""

    method: Literal["lora", "prefix", "full"] = "lora"
    model: str = "default"  # a name in `models` (a local backend): the base model
    seed: int = 0
    # schedule
    max_steps: int | None = Field(None, ge=1)  # None: `epochs` passes over the train split
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    learning_rate: float | None = Field(None, gt=0)  # None: lora 2e-4, prefix 1e-2, full 5e-5
    lr_scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    bf16: Literal["auto", "on", "off"] = "auto"  # autocast; auto: on for GPUs and bf16 CPUs
    # sequences
    max_seq_len: int = Field(512, ge=16)
    packing: bool = False  # concatenate examples into max_seq_len blocks (not for prefix)
    # methods
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_targets: list[str] | Literal["all-linear"] = "all-linear"
    prefix_tokens: int = Field(16, ge=1)  # prefix tuning: virtual tokens
    # evaluation during training (on a held-out dev split of the dataset)
    dev_size: int = Field(8, ge=0)  # 0: no dev split, no evaluation, the last step is kept
    eval_every: int = Field(50, ge=1)
    eval_max_new_tokens: int = Field(96, ge=1)
    eval_metric: str = "token_f1"  # token_f1 | eval_loss | a score name of eval_suite's scorers
    eval_suite: str | None = None  # a suite in `suites` whose scorers score the dev answers
    patience: int = Field(3, ge=0)  # stop after N evaluations without improvement (0: never)
    # checkpoints
    save_every: int = Field(50, ge=1)
    keep_checkpoints: int = Field(2, ge=1)


class TuneConfig(_Strict):
    data: DatasetConfig = Field(default_factory=DatasetConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)


class RungConfig(_Strict):
    project: str = "rung-project"
    models: dict[str, ModelConfig] = Field(default_factory=lambda: {"default": ModelConfig()})
    candidates: dict[str, CandidateConfig] = Field(default_factory=dict)
    suites: dict[str, SuiteConfig] = Field(default_factory=dict)
    gate: GateConfig = Field(default_factory=GateConfig)
    constraints: Constraints = Field(default_factory=Constraints)
    paths: PathsConfig = Field(default_factory=PathsConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    knowledge: dict[str, CorpusConfig] = Field(default_factory=dict)
    prompt_blocks: str = "policies"  # folder of prompt block files (name = file stem)
    tool_data: dict[str, str] = Field(default_factory=dict)  # policy_lookup / phrases -> YAML file
    schemas: dict[str, str] = Field(default_factory=dict)  # name -> JSON Schema file or "module:PydanticModel"
    embedder: str = EMBEDDED_EMBEDDER
    judge: str | None = None  # name of a model in `models` used as LLM judge

    # set by load_config, not part of the file
    root: Path = Field(default=Path("."), exclude=True)
    source: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _check_refs(self) -> RungConfig:
        for name, cand in self.candidates.items():
            if cand.model not in self.models:
                raise ValueError(
                    f"candidates.{name}.model: no model named {cand.model!r}"
                    f"{did_you_mean(cand.model, self.models)}; models are {sorted(self.models)}")
            model = self.models[cand.model]
            if cand.adapter and model.backend == "local" and cand.adapter not in model.adapters:
                raise ValueError(
                    f"candidates.{name}.adapter: model {cand.model!r} has no adapter "
                    f"{cand.adapter!r}{did_you_mean(cand.adapter, model.adapters)}")
            if cand.retrieval and cand.retrieval.corpus not in self.knowledge:
                raise ValueError(
                    f"candidates.{name}.retrieval.corpus: no corpus named {cand.retrieval.corpus!r} under "
                    f"`knowledge`{did_you_mean(cand.retrieval.corpus, self.knowledge)}")
            if cand.output_schema and cand.output_schema != PER_CASE_SCHEMA \
                    and cand.output_schema not in self.schemas:
                raise ValueError(
                    f"candidates.{name}.schema: no schema named {cand.output_schema!r} under "
                    f"`schemas`{did_you_mean(cand.output_schema, self.schemas)}")
        if self.judge and self.judge not in self.models:
            raise ValueError(f"judge: no model named {self.judge!r}{did_you_mean(self.judge, self.models)}")
        return self

    def resolve(self, path: str | Path) -> Path:
        """A path from the file, relative to the file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.root / p)

    def candidate(self, name: str | None) -> tuple[str, CandidateConfig]:
        """The named candidate; with None, the only one (or a bare one over the default model)."""
        if name is None:
            if len(self.candidates) == 1:
                return next(iter(self.candidates.items()))
            if not self.candidates:
                first = next(iter(self.models))
                return "bare", CandidateConfig(model=first)
            raise ConfigError(
                f"{self.source}: several candidates ({', '.join(self.candidates)}); pick one with --candidate")
        if name not in self.candidates:
            raise ConfigError(
                f"{self.source}: no candidate named {name!r}{did_you_mean(name, self.candidates)}; "
                f"candidates are {', '.join(self.candidates) or '(none)'}")
        return name, self.candidates[name]

    def suite(self, name: str | None) -> tuple[str, SuiteConfig]:
        if name is None:
            if len(self.suites) == 1:
                return next(iter(self.suites.items()))
            if not self.suites:
                raise ConfigError(f"{self.source}: no suites defined")
            raise ConfigError(f"{self.source}: several suites ({', '.join(self.suites)}); pick one with --suite")
        if name not in self.suites:
            raise ConfigError(
                f"{self.source}: no suite named {name!r}{did_you_mean(name, self.suites)}")
        return name, self.suites[name]


# ---------------------------------------------------------------- loading with good errors

def load_config(path: str | Path) -> RungConfig:
    """Read and validate a rung.yaml. Raises ConfigError with file:line: key: what was expected."""
    p = Path(path)
    if p.is_dir():
        p = p / "rung.yaml"
    if not p.exists():
        raise ConfigError(f"{p}: no such file (create one with `rung init DIR`)")
    data, node = parse_yaml(p.read_text(encoding="utf-8"), str(p))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}:1: expected a mapping of keys (project, models, candidates, ...), "
                          f"got {type(data).__name__}")
    try:
        cfg = RungConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(validation_message(e, str(p), node, RungConfig)) from None
    cfg.root = p.parent.resolve()
    cfg.source = p
    return cfg
