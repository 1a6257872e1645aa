"""One definition of a candidate's identity (rung.pipeline.candidate): its parts, the complexity
order "simplest first" means, and its lineage. The ladder runs level-0 candidates in the order
the decision checklist ranks them, so the candidate the ladder reaches first among the passing
ones is the one `decide` ships."""

from __future__ import annotations

from rung.config import (
    AnswerConfig,
    CandidateConfig,
    Constraints,
    ModelConfig,
    PromptConfig,
    RefusalGateConfig,
    RetrievalConfig,
    RungConfig,
)
from rung.decide.evidence import Evidence
from rung.decide.readiness import Readiness
from rung.decide.recommend import decide_from_evidence
from rung.evals.aggregate import MetricSummary, RunSummary
from rung.ladder import level_order
from rung.pipeline.candidate import (
    candidate_complexity,
    candidate_parts,
    complexity,
    level0_counterpart,
    recipe,
    with_adapter,
)

RAG = RetrievalConfig(corpus="kb")

# declared in an order that is neither simplest- nor richest-first
CANDIDATES = {
    "full": CandidateConfig(system_prompt="p", retrieval=RAG, tools=["calculator"], schema="ticket"),
    "schema-only": CandidateConfig(schema="ticket"),
    "rag": CandidateConfig(system_prompt="p", retrieval=RAG),
    "bare": CandidateConfig(),
    "tools-only": CandidateConfig(tools=["calculator"]),
    "rag-extractive": CandidateConfig(system_prompt="p", retrieval=RAG,
                                      answer=AnswerConfig(mode="extractive")),
    "blocks": CandidateConfig(prompt=PromptConfig(blocks=["persona"])),
    "gated": CandidateConfig(system_prompt="p", retrieval=RAG, answer=AnswerConfig(mode="extractive"),
                             refusal_gate=RefusalGateConfig(examples="cases.jsonl")),
    "cited-rag": CandidateConfig(system_prompt="p", retrieval=RAG, require_citations=True),
}


def _config() -> RungConfig:
    return RungConfig(models={"default": ModelConfig(backend="openai", base_url="http://127.0.0.1:1",
                                                     model="m")},
                      knowledge={"kb": {"path": "kb"}}, schemas={"ticket": "ticket.json"},
                      candidates=dict(CANDIDATES))


def _passing(name: str, cand: CandidateConfig) -> Evidence:
    """A run of `name` that meets every target, with the same cost and latency as every other."""
    ms = {"task_success": MetricSummary("task_success", True, 60, 0, 0.95, 0.9, 0.99, binary=True,
                                        unit_interval=True),
          "hallucination": MetricSummary("hallucination", False, 60, 0, 0.0, 0.0, 0.02, binary=True,
                                         unit_interval=True)}
    summary = RunSummary(run_id=f"run-{name}", candidate=name, suite="s", level=0, epochs=1,
                         n_cases=60, n_results=60, metrics=ms, latencies_ms=[100.0, 200.0],
                         p50_latency_ms=100.0, p95_latency_ms=200.0, p99_latency_ms=210.0,
                         tokens_in_mean=100.0, tokens_out_mean=20.0, cost_per_1k_requests=None,
                         safety_violations=0, errors=0, tags={})
    return Evidence(candidate=name, level=0, run_id=f"run-{name}", summary=summary, model="default",
                    parts=candidate_parts(cand))


def test_parts_name_every_level0_part_in_one_order() -> None:
    assert candidate_parts(CANDIDATES["bare"]) == []
    assert candidate_parts(CANDIDATES["blocks"]) == ["prompt"]
    assert candidate_parts(CANDIDATES["gated"]) == ["prompt", "retrieval", "refusal-gate", "extractive"]
    assert candidate_parts(CANDIDATES["full"]) == ["prompt", "retrieval", "tools", "schema"]
    assert candidate_parts(CandidateConfig(prompt=PromptConfig(variables={"a": "b"}))) == []
    assert complexity(["retrieval", "prompt"]) == complexity(["prompt", "retrieval"])


def test_prompt_plus_retrieval_is_simpler_than_a_schema_everywhere() -> None:
    """The disagreement that was: prompt + retrieval (2 parts) ran before schema-only (1 part) on
    the ladder, while the checklist ranked schema-only first."""
    assert candidate_complexity(CANDIDATES["rag"]) < candidate_complexity(CANDIDATES["schema-only"])
    cfg = _config()
    order = level_order(cfg, 0)
    assert order.index("rag") < order.index("schema-only")
    d = decide_from_evidence([_passing(n, CANDIDATES[n]) for n in ("schema-only", "rag")],
                             _ready(), Constraints(p95_latency_ms=1500))
    assert d.action == "ship" and d.candidate == "rag", d.headline


def test_the_ladder_order_is_the_order_the_checklist_ships_in() -> None:
    cfg = _config()
    order = level_order(cfg, 0)
    assert order[0] == "bare" and order[-1] == "full"
    shipped = []
    remaining = list(CANDIDATES)
    while remaining:  # the checklist ships the simplest passing candidate; take it away, again
        d = decide_from_evidence([_passing(n, CANDIDATES[n]) for n in remaining], _ready(),
                                 Constraints(p95_latency_ms=1500))
        assert d.action == "ship", d.headline
        shipped.append(d.candidate)
        remaining.remove(d.candidate)
    assert shipped == order


def test_lineage_finds_the_level0_recipe_an_adapter_was_built_on() -> None:
    cands = dict(CANDIDATES)
    cands["rag-lora"] = with_adapter(cands["rag"], "tenant-a", "rag with an adapter")
    assert cands["rag-lora"].effective_level == 1 and recipe(cands["rag-lora"]) == recipe(cands["rag"])
    assert level0_counterpart("rag-lora", cands) == "rag"
    assert level0_counterpart("bare", cands) is None  # a level-0 candidate is its own base
    assert level0_counterpart("nope", cands) is None


def _ready() -> Readiness:
    return Readiness(suite="s", n_cases=60, with_expectation=60, refusal_labels=(12, 48),
                     with_sources=50, scorers=["contains", "groundedness", "safety"])
