"""Candidate identity: its content hash and its level on the ladder.

The hash covers everything that changes answers: the model's fingerprint (weights, or endpoint +
model name), the adapter (name and weights, via the fingerprint), the system prompt and the
decoding parameters, plus the model settings that change outputs (path, GGUF file, dtype). It
leaves out what does not change answers: the candidate's name and description, prices,
timeouts, concurrency. So renaming a candidate keeps its runs resumable and comparable.
"""

from __future__ import annotations

import hashlib
import json
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
