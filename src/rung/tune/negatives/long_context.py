"""`long_context`: the parent's prompt padded with distractor passages up to a token length.

The prompt (every message before the target) is grown to at least `long_context_tokens`
(rung.yaml `tune.data.long_context_tokens`, counted with rung's tokenizer-free estimate
`approx_tokens`, the one the retrieval context budget uses) by adding fenced sources at the end of
the system message, the way the level-0 pipeline places retrieved context:

- distractors: chunks of knowledge-base documents that are not among the parent's sources,
  topically close ones first (content words shared with the question, plus a little random
  jitter, so variants differ), added whole until the target length is reached, so the prompt ends
  up between the target and the target plus one chunk;
- the needle: for each parent source found in the knowledge base, its chunk that shares the most
  words with the target, put at a random position among the distractors, so the answer stays
  supported by the context.

The target is the parent's target unchanged. Parents whose prompt is already that long, and
parents for which the knowledge base does not hold enough distractor text, are skipped and
counted. Limits: distractors are whole chunks of the project's own documents (untrusted ones
included: they are realistic noise), so a small knowledge base caps the reachable length; the
estimate is approximate (about 1.2 tokens per word or punctuation mark, measured on SmolLM2's
tokenizer), so the real token count differs by some percent.
"""

from __future__ import annotations

import random
from collections import Counter

from rung.config import RungConfig
from rung.core import RetrievedChunk
from rung.models.base import ProgressCallback
from rung.pipeline.context import format_source
from rung.pipeline.retrieval.chunking import approx_tokens
from rung.tune.example import Example
from rung.tune.negatives._common import (
    Knowledge,
    best_chunk,
    cited_sources,
    count,
    derive,
    load_knowledge,
    prompt_tokens,
    question,
    sample_parents,
    usable_parents,
    with_sources,
    words,
)

NAME = "long_context"
_JITTER = 0.15


def generate(examples: list[Example], *, config: RungConfig, rng: random.Random,
             skipped: Counter[str] | None = None, progress: ProgressCallback | None = None) -> list[Example]:
    """Long-context variants of the examples (see the module docstring)."""
    data = config.tune.data
    parents = sample_parents(usable_parents(examples, skipped), data.negatives_fraction, rng)
    if not config.knowledge:
        count(skipped, "no knowledge corpus in rung.yaml to draw distractors from")
        return []
    kb = load_knowledge(config)
    out: list[Example] = []
    for i, parent in enumerate(parents):
        for k in range(data.negatives_per_example):
            ex = _variant(parent, str(k), kb, data.long_context_tokens, rng, skipped)
            if ex is None:
                break
            out.append(ex)
        if progress is not None:
            progress(i + 1, len(parents))
    return out


def _variant(parent: Example, key: str, kb: Knowledge, target_tokens: int, rng: random.Random,
             skipped: Counter[str] | None) -> Example | None:
    base = prompt_tokens(parent.messages)
    if base >= target_tokens:
        count(skipped, "prompt already at the token target")
        return None
    sources = [s for s in cited_sources(parent) if s in kb.docs]
    about_target = words(parent.target)
    needles = [best_chunk(kb.chunks[s], about_target) for s in sources if kb.chunks[s]]
    about = words(question(parent))
    pool = [c for d in sorted(kb.docs) if d not in sources for c in kb.chunks[d]]
    scored = sorted(pool, key=lambda c: -(_similarity(about, c) + rng.random() * _JITTER))
    # each fenced source costs its text plus its label; the instruction comes once: estimate
    # with the fenced sources, then measure the built prompt near the target
    estimate = base + sum(approx_tokens(format_source(n)) for n in needles) + _header_tokens(parent, pool)
    chosen: list[RetrievedChunk] = []
    prompt = parent.prompt
    positions: list[int] = []
    for chunk in scored:
        chosen.append(chunk)
        estimate += approx_tokens(format_source(chunk))
        if estimate < target_tokens:
            continue
        prompt, positions = _placed(parent, chosen, needles, rng)
        tokens = prompt_tokens(prompt + [{"role": "assistant", "content": ""}])
        if tokens >= target_tokens:
            break
    else:
        count(skipped, "knowledge base too small to reach the token target")
        return None
    info = {"target_tokens": target_tokens, "prompt_tokens": tokens, "distractors": [c.id for c in chosen],
            "needles": [c.id for c in needles], "needle_positions": positions}
    return derive(parent, NAME, key, prompt + [dict(parent.messages[-1])], tags=["long-context"],
                  metadata={"negative": info})


def _placed(parent: Example, distractors: list[RetrievedChunk], needles: list[RetrievedChunk],
            rng: random.Random) -> tuple[list[dict[str, str]], list[int]]:
    """The prompt with distractors and needles (each at a random position), and those positions."""
    order = list(distractors)
    for n in needles:
        order.insert(rng.randrange(len(order) + 1), n)
    positions = [order.index(n) for n in needles]
    return with_sources(parent.prompt, order), positions


def _header_tokens(parent: Example, pool: list[RetrievedChunk]) -> int:
    """What adding sources costs besides the fenced sources (the instruction), estimated."""
    if not pool:
        return 0
    one = with_sources(parent.prompt, pool[:1])
    return max(0, prompt_tokens(one + [{"role": "assistant", "content": ""}]) - prompt_tokens(parent.messages)
               - approx_tokens(format_source(pool[0])))


def _similarity(about: set[str], chunk: RetrievedChunk) -> float:
    w = words(chunk.text)
    return len(about & w) / (len(about) or 1) if w else 0.0
