"""Candidate identity, in one place: its content hash, its level on the ladder, the level-0 parts
it uses, its complexity (the one order "simplest first" means everywhere: the ladder runs
candidates in it, the decision checklist ships the first passing one in it) and its lineage (the
level-0 recipe an adapter or fine-tuned candidate was built on).

The hash covers everything that changes answers: the model's fingerprint (weights, or endpoint +
model name), the adapter (name and weights, via the fingerprint), the system prompt and the
decoding parameters, plus the model settings that change outputs (path, GGUF file, dtype). It
leaves out what does not change answers: the candidate's name and description, prices,
timeouts, concurrency. So renaming a candidate keeps its runs resumable and comparable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from rung.config import CandidateConfig, ModelConfig

# model settings that can change the text a model produces
_MODEL_KEYS = ("backend", "path", "gguf_file", "dtype", "base_url", "model")


def candidate_identity(cand: CandidateConfig, model_cfg: ModelConfig | None,
                       model_fingerprint: str, components: str = "") -> dict[str, Any]:
    """The canonical content of a candidate: what its hash is taken over."""
    model_part: dict[str, Any] = {}
    if model_cfg is not None:
        model_part = {k: getattr(model_cfg, k) for k in _MODEL_KEYS}
        if cand.adapter:
            model_part["adapter_path"] = model_cfg.adapters.get(cand.adapter)
    level0 = cand.model_dump(mode="json", by_alias=True, include={
        "prompt", "retrieval", "output_schema", "schema_retries", "constrained_decoding",
        "tools", "require_citations"})
    # options added later enter the identity only when set, so existing runs stay reusable
    for key in ("superseded", "untrusted"):
        if level0.get("retrieval") and level0["retrieval"].get(key) == "keep":
            del level0["retrieval"][key]
    if cand.answer.mode != "generate":
        level0["answer"] = cand.answer.model_dump(mode="json")
    if cand.refusal_gate is not None:  # the examples' content is in the components fingerprint
        level0["refusal_gate"] = cand.refusal_gate.model_dump(mode="json")
    return {
        "model_fingerprint": model_fingerprint,
        "model": model_part,
        "adapter": cand.adapter,
        "system_prompt": cand.system_prompt,
        "generation": cand.generation.model_dump(mode="json"),
        # level-0 parts: their settings, and (components) the content they read: prompt
        # blocks, corpus index, tool data, schemas
        "level0": level0,
        "components": components,
    }


def candidate_hash(name: str, cand: CandidateConfig, model_cfg: ModelConfig | None,
                   model_fingerprint: str, components: str = "") -> str:
    """sha256 (hex) of the canonical JSON of everything about the candidate that changes answers.

    `name` is accepted for symmetry with the rest of the API but is not hashed: two candidates
    with the same recipe answer the same way.
    """
    del name  # deliberately not part of the identity
    blob = json.dumps(candidate_identity(cand, model_cfg, model_fingerprint, components),
                      sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def candidate_level(cand: CandidateConfig) -> int:
    """0: prompt (+ retrieval, tools); 1: an adapter; 2: fine-tuned weights (set `level: 2`)."""
    return cand.effective_level


def candidate_record(name: str, cand: CandidateConfig, model_cfg: ModelConfig | None,
                     model_fingerprint: str) -> dict[str, Any]:
    """The full configuration as stored with a run: the candidate's fields, its model's config
    and the model fingerprint."""
    return {
        "name": name,
        **cand.model_dump(mode="json"),
        "model_config": model_cfg.model_dump(mode="json") if model_cfg is not None else None,
        "model_fingerprint": model_fingerprint,
    }


# ---- parts and complexity ---------------------------------------------------------------------

# What each level-0 part adds to the bare model, the weights of the complexity order: a prompt is
# the cheapest change, retrieval adds an index to keep current, the answer-shaping parts (a
# refusal gate, extractive answers, required citations) a little more, a schema or tools the most
# (a contract to enforce, code to run). Parts are listed in this order.
PART_WEIGHTS: dict[str, int] = {"prompt": 1, "retrieval": 2, "refusal-gate": 1, "extractive": 1,
                                "citations": 1, "tools": 4, "schema": 4}

# recipe fields that are not part of the level-0 recipe: what an adapter or a level changes
_NOT_RECIPE = {"adapter", "level", "model", "description"}


def candidate_parts(cand: CandidateConfig) -> list[str]:
    """The level-0 parts a candidate uses, in `PART_WEIGHTS` order ([] = the model alone)."""
    has = {
        "prompt": bool(cand.system_prompt.strip()
                       or (cand.prompt is not None and (cand.prompt.blocks or cand.prompt.template))),
        "retrieval": cand.retrieval is not None,
        "refusal-gate": cand.refusal_gate is not None,
        "extractive": cand.answer.mode == "extractive",
        "citations": cand.require_citations,
        "tools": bool(cand.tools),
        "schema": bool(cand.output_schema),
    }
    return [part for part in PART_WEIGHTS if has[part]]


def complexity(parts: Iterable[str]) -> tuple[int, int]:
    """The complexity of a candidate with these parts: (sum of the parts' weights, number of
    parts). Smaller is simpler; compare candidates with it, never with len(parts)."""
    ps = list(dict.fromkeys(parts))
    return sum(PART_WEIGHTS.get(p, 1) for p in ps), len(ps)


def candidate_complexity(cand: CandidateConfig) -> tuple[int, int]:
    """`complexity(candidate_parts(cand))`."""
    return complexity(candidate_parts(cand))


def level_order(candidates: Mapping[str, CandidateConfig], level: int) -> list[str]:
    """The candidates at `level`, simplest first (`candidate_complexity`; ties keep their order)."""
    names = [n for n, c in candidates.items() if candidate_level(c) == level]
    return sorted(names, key=lambda n: candidate_complexity(candidates[n]))


# ---- lineage ----------------------------------------------------------------------------------


def recipe(cand: CandidateConfig) -> dict[str, Any]:
    """The level-0 recipe of a candidate: everything but its model, adapter, level and
    description. An adapter candidate built on a level-0 one has the same recipe."""
    return cand.model_dump(mode="json", exclude=_NOT_RECIPE)


def level0_counterpart(name: str, candidates: Mapping[str, CandidateConfig],
                       level0: Iterable[str] | None = None) -> str | None:
    """The level-0 candidate `name` was built on: among `level0` (default: every level-0
    candidate), the first with the same recipe; None when there is none."""
    cand = candidates.get(name)
    if cand is None:
        return None
    mine = recipe(cand)
    pool = level0 if level0 is not None else level_order(candidates, 0)
    for other in pool:
        c = candidates.get(other)
        if other != name and c is not None and candidate_level(c) == 0 and recipe(c) == mine:
            return other
    return None


def with_adapter(base: CandidateConfig, adapter: str, description: str = "") -> CandidateConfig:
    """The level-1 candidate derived from a level-0 one: the same recipe, answered through
    `adapter` (so `level0_counterpart` finds `base` again)."""
    return base.model_copy(update={"adapter": adapter, "level": None,
                                   "description": description or base.description})
