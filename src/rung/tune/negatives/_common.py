"""What every hard-negative generator shares: deriving a child example with its lineage, reading a
parent's question / sources / jurisdiction / language, the project's knowledge as documents and
chunks, lexical relevance, and adding fenced sources to a prompt the way the level-0 pipeline does
(at the end of the system message, see rung.pipeline.prompt and rung.pipeline.context)."""

from __future__ import annotations

import copy
import functools
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from types import EllipsisType
from typing import Any, Protocol

from rung.config import RungConfig
from rung.core import Message, RetrievedChunk
from rung.models.base import ProgressCallback
from rung.pipeline.context import CLOSE_FENCE, OPEN_FENCE, format_context, format_source
from rung.tune.example import Example, Lineage

DEFAULT_REFUSAL = "I'm sorry, I can't help with that."


class Generator(Protocol):
    def __call__(self, examples: list[Example], *, config: RungConfig, rng: random.Random,
                 skipped: Counter[str] | None = None,
                 progress: ProgressCallback | None = None) -> list[Example]: ...


# ---------------------------------------------------------------- deriving a child

def derive(parent: Example, generator: str, key: str, messages: list[Message], *,
           tags: Sequence[str] = (), metadata: dict[str, Any] | None = None,
           label: str | None = None, rejected: str | None | EllipsisType = ...,
           inherit: bool = True) -> Example:
    """A new example made from `parent` by `generator`. Its id is "<parent id>~<generator>-<key>";
    lineage source "negative", ref "<generator>:<parent id>", the parent's product / policy
    version, annotator and created_at; tags "negative:<generator>" + `tags` + the parent's;
    metadata the parent's plus `metadata`. Label and rejected default to the parent's.

    inherit=False is for variants that replace the parent's question with another one: the
    parent's tags and metadata describe that question (intent, product, jurisdiction, sources),
    so they are not copied; lineage still names the parent."""
    lin = parent.lineage
    lineage = Lineage(source="negative", ref=f"{generator}:{parent.id}",
                      product_version=lin.product_version, policy_version=lin.policy_version,
                      annotator=lin.annotator, created_at=lin.created_at,
                      generator=generator, parent=parent.id)
    all_tags = list(dict.fromkeys([f"negative:{generator}", *tags, *(parent.tags if inherit else [])]))
    meta = copy.deepcopy(parent.metadata) if inherit else {}
    meta.update(copy.deepcopy(metadata or {}))
    return Example(id=f"{parent.id}~{generator}-{key}", messages=[dict(m) for m in messages],
                   lineage=lineage, label=label or parent.label,  # type: ignore[arg-type]
                   rejected=parent.rejected if rejected is ... else rejected,  # type: ignore[arg-type]
                   tags=all_tags, metadata=meta)


def count(skipped: Counter[str] | None, reason: str) -> None:
    if skipped is not None:
        skipped[reason] += 1


def usable_parents(examples: list[Example], skipped: Counter[str] | None) -> list[Example]:
    """Examples a generator may derive from: a user turn and a non-empty assistant target, and
    not themselves negatives (no negatives of negatives)."""
    out = []
    for ex in examples:
        if ex.lineage.source == "negative":
            count(skipped, "parent is itself a negative")
        elif not ex.target.strip() or last_user_index(ex.messages) is None:
            count(skipped, "no user turn or no assistant target")
        else:
            out.append(ex)
    return out


def sample_parents(parents: list[Example], fraction: float, rng: random.Random) -> list[Example]:
    """A deterministic share of the parents (all of them at fraction 1), in their order."""
    if fraction >= 1.0:
        return list(parents)
    k = max(1, round(fraction * len(parents))) if parents else 0
    keep = set(rng.sample(range(len(parents)), k))
    return [p for i, p in enumerate(parents) if i in keep]


# ---------------------------------------------------------------- reading a parent

def last_user_index(messages: list[Message]) -> int | None:
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "user":
            return i
    return None


def question(ex: Example) -> str:
    i = last_user_index(ex.messages)
    return "" if i is None else ex.messages[i].get("content", "") or ""


def with_question(ex: Example, text: str, target: str | None = None) -> list[Message]:
    """The parent's messages with the last user turn replaced (and the target, when given)."""
    msgs = [dict(m) for m in ex.messages]
    i = last_user_index(msgs)
    assert i is not None
    msgs[i]["content"] = text
    if target is not None:
        msgs[-1]["content"] = target
    return msgs


def cited_sources(ex: Example) -> list[str]:
    """Document ids the parent relies on: metadata `sources` (a case's sources) and the ids
    cited in square brackets in its target, in that order, without repeats."""
    ids: list[str] = []
    meta_sources = ex.metadata.get("sources")
    if isinstance(meta_sources, list):
        ids.extend(str(s) for s in meta_sources)
    ids.extend(cited_docs(ex.target))
    return list(dict.fromkeys(ids))


def cited_docs(text: str) -> list[str]:
    """The documents `text` cites, as the pipeline reads citations ("[doc]", "[doc#2]",
    "[a, b]", ...): a chunk id counts as its document."""
    from rung.pipeline.citations import extract_citations

    return list(dict.fromkeys(c.split("#")[0] for c in extract_citations(text)))


def tag_value(ex: Example, key: str) -> str | None:
    """metadata[key], else the value of a "key:VALUE" tag."""
    value = ex.metadata.get(key)
    if value not in (None, ""):
        return str(value)
    for t in ex.tags:
        if t.startswith(key + ":"):
            return t.split(":", 1)[1]
    return None


def language(ex: Example) -> str:
    """The parent's language: metadata `lang` or a "lang:xx" tag, else "en"."""
    return (tag_value(ex, "lang") or "en").lower()


def is_refusal(ex: Example, phrase: str) -> bool:
    """Whether the parent's target is a refusal: metadata should_refuse, else the target starts
    with the project's refusal phrase."""
    flag = ex.metadata.get("should_refuse")
    if isinstance(flag, bool):
        return flag
    return ex.target.strip().lower().startswith(phrase.strip().lower())


def refusal_phrase(config: RungConfig) -> str:
    """The project's refusal wording: key `refusal` of the phrase library (rung.yaml
    `tool_data.phrases`) when there is one, else `tune.data.refusal_target` (default "I'm sorry,
    I can't help with that.")."""
    path = config.tool_data.get("phrases")
    if path:
        from rung.pipeline.tools.phrases import PhraseLibrary

        found = PhraseLibrary.from_yaml(config.resolve(path)).find("refusal")
        if found is not None:
            return found.text
    return str(getattr(config.tune.data, "refusal_target", "") or DEFAULT_REFUSAL)


# ---------------------------------------------------------------- knowledge

@dataclass
class Knowledge:
    """Every document and chunk of the project's corpora (rung.yaml `knowledge`)."""

    docs: dict[str, Any]  # doc id -> rung.pipeline.retrieval.Document
    chunks: dict[str, list[RetrievedChunk]]  # doc id -> its chunks, in order

    def is_untrusted(self, doc_id: str) -> bool:
        from rung.pipeline.retrieval.documents import flag

        return flag(self.docs[doc_id].metadata.get("untrusted"))


def load_knowledge(config: RungConfig) -> Knowledge:
    """Documents and chunks of every corpus (chunked with the corpus' own settings)."""
    from rung.pipeline.retrieval.chunking import chunk_document
    from rung.pipeline.retrieval.documents import load_documents

    docs: dict[str, Any] = {}
    chunks: dict[str, list[RetrievedChunk]] = {}
    for corpus in config.knowledge.values():
        found, _skipped = load_documents(config.resolve(corpus.path))
        for d in found:
            if d.id in docs:
                continue  # the same document id in two corpora: the first one wins
            docs[d.id] = d
            chunks[d.id] = [c.retrieved(0.0) for c in chunk_document(d, corpus.chunk_tokens, corpus.chunk_overlap)]
    return Knowledge(docs, chunks)


@functools.lru_cache(maxsize=65536)
def words(text: str) -> frozenset[str]:
    """Content words of a text (stemmed, no stopwords), memoised: chunks are compared often."""
    from rung.text.claims import content_tokens

    return frozenset(content_tokens(text))


def best_chunk(chunks: list[RetrievedChunk], about: frozenset[str]) -> RetrievedChunk:
    """The chunk with the most words in common with `about` (the first on ties)."""
    return max(chunks, key=lambda c: len(about & words(c.text)))  # max keeps the first of equals


# ---------------------------------------------------------------- adding sources to a prompt

def with_sources(messages: list[Message], chunks: Sequence[RetrievedChunk]) -> list[Message]:
    """The messages with `chunks` fenced and labelled at the end of the system message (a new
    system message first when there is none). A system message that already holds a sources
    section gets the new sources appended to it, without a second instruction."""
    msgs = [dict(m) for m in messages]
    if not chunks:
        return msgs
    if msgs and msgs[0].get("role") == "system":
        text = msgs[0].get("content", "") or ""
        if OPEN_FENCE in text and CLOSE_FENCE in text:
            addition = "\n\n".join(format_source(c) for c in chunks)
        else:
            addition = format_context(chunks)
        msgs[0]["content"] = f"{text}\n\n{addition}".strip()
    else:
        msgs.insert(0, {"role": "system", "content": format_context(chunks)})
    return msgs


def doc_in_prompt(messages: list[Message], doc_id: str) -> bool:
    """Whether a fenced source of document `doc_id` is already in the prompt."""
    system = messages[0].get("content", "") if messages and messages[0].get("role") == "system" else ""
    return f"doc={doc_id} " in system or f"doc={doc_id}>" in system or f'doc="{doc_id}"' in system


def prompt_tokens(messages: list[Message]) -> int:
    """Approximate tokens of the conversation before the target (rung's tokenizer-free count)."""
    from rung.pipeline.retrieval.chunking import approx_tokens

    return approx_tokens("\n\n".join(m.get("content", "") or "" for m in messages[:-1]))
