"""Evaluation during training: the model being trained answers a held-out dev split of the
dataset, and the answers are scored.

- The dev split is a seeded sample of the dataset's examples, never trained on.
- The model answers through rung.models.local.LocalModel (`from_loaded`): the same prompt
  rendering, batching and greedy decoding as serving, so what is evaluated is what is served
  (training keeps float32 weights; a served bf16 model can round differently).
- Metrics, one dict per evaluation:
  - token_f1: token overlap F1 between answer and target (rung.text.textnorm tokens), the
    simple task metric that always applies;
  - eval_loss: the teacher-forced loss on the dev targets (computed by the trainer);
  - with `tune.train.eval_suite`, every score that suite's scorers give the answers
    (rung.evals.runner.score_answer; the dev example becomes a Case whose reference is the
    target), as means over the measured ones (e.g. task_success, refusal_correct).
- `eval_metric` picks the one that selects the best checkpoint; eval_loss is lower-is-better,
  every other one follows its scorer's direction (token_f1: higher).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rung.core import Case
from rung.errors import ConfigError
from rung.text import textnorm
from rung.tune.example import Example
from rung.tune.train.collate import with_system_prompt
from rung.tune.train.job import TuneJob


def split_dev(examples: Sequence[Example], dev_size: int, seed: int) -> tuple[list[Example], list[Example]]:
    """(train, dev): dev is a seeded sample of at most dev_size examples and a quarter of them;
    too few examples (< 4) leave no dev split."""
    n = min(dev_size, len(examples) // 4)
    if n <= 0:
        return list(examples), []
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    dev_idx = set(order[:n])
    return ([e for i, e in enumerate(examples) if i not in dev_idx],
            [e for i, e in enumerate(examples) if i in dev_idx])


def token_f1(answer: str, reference: str) -> float:
    a, r = textnorm.tokens(answer), textnorm.tokens(reference)
    if not a or not r:
        return float(a == r)
    common = sum((Counter(a) & Counter(r)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(a), common / len(r)
    return 2 * precision * recall / (precision + recall)


def dev_case(example: Example, system_prompt: str) -> Case:
    meta = dict(example.metadata)
    return Case(id=example.id, messages=with_system_prompt(example.prompt, system_prompt),
                reference=example.target, should_refuse=meta.get("should_refuse"),
                sources=list(meta.get("sources", []) or []), tags=list(example.tags), metadata=meta)


@dataclass
class SuiteScoring:
    """The eval suite's scorers and their context (rung.evals.runner)."""

    scorers: list[Any]
    ctx: Any
    directions: dict[str, bool] = field(default_factory=dict)  # score name -> higher is better


def suite_scoring(job: TuneJob) -> SuiteScoring | None:
    """The scorers of `tune.train.eval_suite` (None when no suite is named)."""
    if not job.train.eval_suite:
        return None
    if not job.config_path:
        raise ConfigError("tune.train.eval_suite is set but the job has no rung.yaml to read the suite from")
    from rung.config import load_config
    from rung.evals.runner import build_scorers, make_context
    from rung.evals.scorers.base import ScoreContext

    cfg = load_config(job.config_path)
    if job.train.eval_suite not in cfg.suites:
        raise ConfigError(f"{cfg.source}: tune.train.eval_suite: no suite named {job.train.eval_suite!r}; "
                          f"suites are {', '.join(cfg.suites) or '(none)'}")
    scorers = build_scorers(cfg.suites[job.train.eval_suite])
    if job.candidate or len(cfg.candidates) <= 1:
        ctx = make_context(cfg, job.candidate)
    else:
        ctx = ScoreContext()
    return SuiteScoring(scorers, ctx)


def higher_is_better(metric: str, scoring: SuiteScoring | None) -> bool:
    if metric == "eval_loss":
        return False
    if metric == "token_f1":
        return True
    if scoring is not None and metric in scoring.directions:
        return scoring.directions[metric]
    return True


def evaluate(model: Any, tok: Any, job: TuneJob, dev: Sequence[Example],
             scoring: SuiteScoring | None) -> dict[str, Any]:
    """Generate answers to the dev split with `model` and score them; {metric: value, ...}.
    The model is switched to eval mode and back to train mode."""
    from rung.core import Answer
    from rung.evals.runner import score_answer
    from rung.models.base import GenerationParams, GenRequest
    from rung.models.local import LocalModel

    was_training = model.training
    model.eval()
    try:
        served = LocalModel.from_loaded(model, tok, job.base.path, root=Path(job.base.root),
                                        gguf_file=job.base.gguf_file,
                                        max_batch_size=max(len(dev), 1))
        params = GenerationParams(max_new_tokens=job.train.eval_max_new_tokens)
        cases = [dev_case(ex, job.system_prompt) for ex in dev]
        completions = served.generate([GenRequest.chat(c.chat(), params) for c in cases])
    finally:
        if was_training:
            model.train()
    f1s = [token_f1(c.text, ex.target) for c, ex in zip(completions, dev)]
    out: dict[str, Any] = {"n": len(dev), "token_f1": round(sum(f1s) / len(f1s), 4) if f1s else None}
    if scoring is not None:
        sums: dict[str, list[float]] = {}
        for case, comp in zip(cases, completions):
            answer = Answer(text=comp.text, tokens_in=comp.tokens_in, tokens_out=comp.tokens_out,
                            timings_ms={"total": comp.total_s * 1000}, model_id=comp.model_id,
                            error=comp.error)
            for s in score_answer(case, answer, scoring.scorers, scoring.ctx):
                scoring.directions.setdefault(s.name, s.higher_is_better)
                if s.value is not None:
                    sums.setdefault(s.name, []).append(float(s.value))
        for name in scoring.directions:
            vals = sums.get(name, [])
            out[name] = round(sum(vals) / len(vals), 4) if vals else None  # None: not measured
    out["samples"] = [{"id": ex.id, "answer": c.text[:300]} for ex, c in list(zip(dev, completions))[:3]]
    return out
