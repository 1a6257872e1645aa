"""Rerankers: rescore the fused candidates of a search before the top-k cut.

Specs (RetrievalConfig.reranker):
- "none": keep the fused order.
- "embedding": cosine of the query and each candidate with the index's embedder (the stored
  chunk vectors, so it costs a dot product).
- "llm" or "llm:MODEL": the probability a causal LM gives to "yes" (vs "no") when asked whether
  the chunk is relevant to the question; MODEL defaults to the embedded SmolLM2 (embedded:...), or a
  folder / .gguf file. Only the first `depth` (10) candidates are rescored, in batches.
- "cross-encoder:PATH": a sentence-transformers CrossEncoder loaded from a local folder.

Each reranker returns one score per candidate it was given (higher is better); candidates past
its `depth` keep their fused order after the rescored ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rung.errors import ConfigError

RERANKERS = ("none", "embedding", "llm", "cross-encoder:PATH")


class Reranker(Protocol):
    name: str
    depth: int | None  # how many top candidates it rescores (None: all)

    def scores(self, query: str, texts: list[str], query_vec: np.ndarray | None,
               chunk_vecs: np.ndarray | None) -> np.ndarray: ...


@dataclass
class EmbeddingReranker:
    """Cosine of query and chunk embeddings (the index's stored, normalised vectors)."""

    name: str = "embedding"
    depth: int | None = None

    def scores(self, query: str, texts: list[str], query_vec: np.ndarray | None,
               chunk_vecs: np.ndarray | None) -> np.ndarray:
        if query_vec is None or chunk_vecs is None:
            raise ValueError("the embedding reranker needs the query and chunk vectors")
        return chunk_vecs @ query_vec


_LLMS: dict[str, tuple[Any, Any]] = {}

# Of four prompts tried with SmolLM2-135M on 19 (question, source chunk, distractor chunk) triples
# of the bundled example, this one ranked the source first most often (14 of 19; a system prompt
# and "does it answer" wording: 12). A model that small is a weak judge either way.
_USER = "Question: {query}\n\nDocument:\n{doc}\n\nIs this document relevant to the question? Answer yes or no."


@dataclass
class LLMReranker:
    """P(yes) of a causal LM asked whether the chunk answers the question."""

    model: str = "embedded:smollm2-135m-instruct"
    root: Path | None = None
    depth: int | None = 10
    batch_size: int = 8
    max_doc_tokens: int = 256
    name: str = "llm"
    _ids: tuple[list[int], list[int]] | None = field(default=None, repr=False)

    def _load(self) -> tuple[Any, Any]:
        from rung.models.embedded import quiet_loading, resolve_llm

        source = resolve_llm(self.model, self.root).pretrained_path()
        if source not in _LLMS:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            with quiet_loading():
                tok = AutoTokenizer.from_pretrained(source)
                lm = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
            lm.eval()
            tok.padding_side = "left"
            if tok.pad_token_id is None:
                tok.pad_token = tok.eos_token
            _LLMS[source] = (tok, lm)
        return _LLMS[source]

    def _answer_ids(self, tok: Any) -> tuple[list[int], list[int]]:
        if self._ids is None:
            def first(words: tuple[str, ...]) -> list[int]:
                return sorted({tok.encode(w, add_special_tokens=False)[0] for w in words})

            self._ids = (first(("yes", "Yes", " yes", " Yes")), first(("no", "No", " no", " No")))
        return self._ids

    def scores(self, query: str, texts: list[str], query_vec: np.ndarray | None = None,
               chunk_vecs: np.ndarray | None = None) -> np.ndarray:
        import torch

        tok, lm = self._load()
        yes, no = self._answer_ids(tok)
        prompts = []
        for text in texts:
            ids = tok.encode(text, add_special_tokens=False)[: self.max_doc_tokens]
            doc = tok.decode(ids)
            messages = [{"role": "user", "content": _USER.format(doc=doc, query=query)}]
            prompts.append(tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        out: list[float] = []
        with torch.inference_mode():
            for start in range(0, len(prompts), self.batch_size):
                enc = tok(prompts[start:start + self.batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False)
                logits = lm(**enc).logits[:, -1, :].float()
                lse_yes = torch.logsumexp(logits[:, yes], dim=-1)
                lse_all = torch.logsumexp(logits[:, yes + no], dim=-1)
                out.extend(torch.exp(lse_yes - lse_all).tolist())
        return np.asarray(out, dtype=np.float32)


_CROSS: dict[str, Any] = {}


@dataclass
class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder from a local folder."""

    path: Path
    depth: int | None = None
    batch_size: int = 16
    name: str = "cross-encoder"

    def scores(self, query: str, texts: list[str], query_vec: np.ndarray | None = None,
               chunk_vecs: np.ndarray | None = None) -> np.ndarray:
        key = str(self.path)
        if key not in _CROSS:
            from sentence_transformers import CrossEncoder

            from rung.models.embedded import quiet_loading

            with quiet_loading():
                _CROSS[key] = CrossEncoder(key, device="cpu")
        if not texts:
            return np.zeros(0, dtype=np.float32)
        pred = _CROSS[key].predict([(query, t) for t in texts], batch_size=self.batch_size,
                                   show_progress_bar=False, convert_to_numpy=True)
        pred = np.asarray(pred, dtype=np.float32)
        return pred if pred.ndim == 1 else pred[:, -1]


def build_reranker(spec: str, root: Path | None = None) -> Reranker | None:
    """The reranker a spec names (None for "none"); unknown specs or missing paths -> ConfigError."""
    s = (spec or "none").strip()
    if s.lower() == "none":
        return None
    if s.lower() == "embedding":
        return EmbeddingReranker()
    if s.lower() == "llm":
        return LLMReranker(root=root)
    if s.lower().startswith("llm:"):
        return LLMReranker(model=s[4:].strip(), root=root)
    if s.lower().startswith("cross-encoder:"):
        raw = s.split(":", 1)[1].strip()
        if not raw:
            raise ConfigError("reranker 'cross-encoder:PATH' needs a folder path after the colon")
        path = Path(raw).expanduser()
        if not path.is_absolute() and root is not None:
            path = root / path
        if not path.is_dir():
            raise ConfigError(f"reranker {spec!r}: cross-encoder folder {path} does not exist")
        return CrossEncoderReranker(path)
    raise ConfigError(f"unknown reranker {spec!r}; expected one of: {', '.join(RERANKERS)}")
