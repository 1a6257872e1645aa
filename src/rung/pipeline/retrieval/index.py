"""A corpus index persisted on disk: chunks, a BM25 index and dense embeddings.

`CorpusIndex.build_or_load(corpus_cfg, name, root, embedder_spec)` loads the knowledge folder,
and reuses the index under `index_dir` (default <root>/.rung/index/<name>) when nothing that
shapes it changed: the documents' content hashes, the chunking parameters, the BM25 tokenizer and
the embedder (its spec and a hash of its weight files). Otherwise it rebuilds: chunks of
unchanged documents keep their embeddings (only changed or new documents are embedded again);
the BM25 index is always rebuilt (it takes a fraction of a second). The folder is written in a
temporary folder beside it and renamed into place, so a crash never leaves half an index.

On disk: manifest.json, chunks.jsonl, embeddings.npy (float32, L2-normalised, one row per chunk)
and bm25/ (bm25s' own save format).

The embedder is loaded once per process and spec (`get_embedder`), and only when needed: a
BM25-only search of an unchanged index never loads it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rung.config import CorpusConfig, paths
from rung.errors import ConfigError
from rung.pipeline.retrieval.chunking import Chunk, check_params, chunk_document
from rung.pipeline.retrieval.documents import MAX_BYTES, Document, Skipped, load_documents

Progress = Callable[[int, int], None]

INDEX_FORMAT = 1
TOKENIZER_ID = "words-v1"  # bump when bm25_tokens changes
EMBED_BATCH = 256  # chunks per progress step
SMALL_BATCH = 4  # query batches up to this size are embedded on one thread

_WORD = re.compile(r"\w+")
_STOPWORDS: frozenset[str] | None = None


def bm25_tokens(text: str) -> list[str]:
    """Lower-cased words without English stop words (single letters dropped, digits kept)."""
    global _STOPWORDS
    if _STOPWORDS is None:
        from bm25s.stopwords import STOPWORDS_EN

        _STOPWORDS = frozenset(STOPWORDS_EN)
    return [w for w in _WORD.findall(text.lower())
            if w not in _STOPWORDS and (len(w) > 1 or w.isdigit())]


# ---------------------------------------------------------------- embedder

_EMBEDDERS: dict[tuple[str, str], Any] = {}
_EMBEDDER_IDS: dict[tuple[str, str], str] = {}


def get_embedder(spec: str, root: Path | None = None) -> Any:
    """The SentenceTransformer for spec, loaded once per process."""
    key = (spec, str(root or ""))
    if key not in _EMBEDDERS:
        from rung.models.embedded import load_embedder

        _EMBEDDERS[key] = load_embedder(spec, root)
    return _EMBEDDERS[key]


def embedder_id(spec: str, root: Path | None = None) -> str:
    """spec plus a hash of its weight files (a replaced model folder changes it)."""
    key = (spec, str(root or ""))
    if key not in _EMBEDDER_IDS:
        from rung.models.embedded import embedder_path, hash_files

        path = Path(embedder_path(spec, root))
        files = []
        if path.is_dir():
            pats = ("*.safetensors", "*.bin", "config.json", "tokenizer.json", "modules.json",
                    "sentence_bert_config.json")
            files = sorted({f for pat in pats for f in path.glob(pat) if f.is_file()})
        from rung.models.device import cpu_has_bf16

        precision = "bf16" if cpu_has_bf16() else "fp32"  # embeddings are computed on the CPU
        _EMBEDDER_IDS[key] = (f"{spec}@{hash_files(files)[:16]}" if files else spec) + f"/{precision}"
    return _EMBEDDER_IDS[key]


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch ops on n intra-op threads inside the block (process-wide while it runs)."""
    import torch

    before = torch.get_num_threads()
    if before == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _dim(model: Any) -> int:
    get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = get()
    return int(dim) if dim else int(model.encode(["x"], convert_to_numpy=True).shape[1])


def _bf16(model: Any) -> bool:
    """Embed in bfloat16 (autocast) on CPUs with native bf16: twice as fast here, cosine to the
    float32 vectors >= 0.99997 (measured on 600 fitz-gov chunks)."""
    from rung.models.device import cpu_has_bf16

    return str(getattr(model, "device", "cpu")).startswith("cpu") and cpu_has_bf16()


def embed(model: Any, texts: list[str], batch_size: int = 32) -> np.ndarray:
    """L2-normalised float32 embeddings, one row per text."""
    if not texts:
        return np.zeros((0, _dim(model)), dtype=np.float32)
    import torch

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=_bf16(model)):
        vecs = model.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    vecs = np.asarray(vecs, dtype=np.float32)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return np.ascontiguousarray(vecs / np.maximum(norms, 1e-12), dtype=np.float32)


# ---------------------------------------------------------------- manifest

@dataclass
class Manifest:
    format: int
    chunk_tokens: int
    chunk_overlap: int
    tokenizer: str
    embedder: str  # embedder_id
    docs: dict[str, str]  # doc id -> content hash
    n_chunks: int = 0
    dim: int = 0
    built_at: str = ""

    def same_shape(self, other: Manifest) -> bool:
        """Chunks and embeddings of unchanged documents can be reused between the two."""
        return (self.format, self.chunk_tokens, self.chunk_overlap, self.embedder) == (
            other.format, other.chunk_tokens, other.chunk_overlap, other.embedder)

    def same(self, other: Manifest) -> bool:
        return self.same_shape(other) and self.tokenizer == other.tokenizer and self.docs == other.docs


# ---------------------------------------------------------------- the index

@dataclass
class CorpusIndex:
    """Chunks with their BM25 index and embeddings, for one named corpus."""

    name: str
    path: Path  # the index folder
    chunks: list[Chunk]
    embeddings: np.ndarray  # (n_chunks, dim) float32, normalised
    bm25: Any  # bm25s.BM25
    manifest: Manifest
    embedder_spec: str
    root: Path | None = None
    skipped: list[Skipped] = field(default_factory=list)
    status: str = "loaded"  # loaded | built | updated
    embedded: int = 0  # chunks embedded by this call (0 when loaded)

    # ------------------------------------------------------------ building

    @classmethod
    def build_or_load(cls, corpus_cfg: CorpusConfig, name: str, root: str | Path,
                      embedder_spec: str, progress: Progress | None = None, *,
                      max_bytes: int = MAX_BYTES) -> CorpusIndex:
        """The index of corpus `name`, rebuilt only when its inputs changed."""
        root = Path(root)
        check_params(corpus_cfg.chunk_tokens, corpus_cfg.chunk_overlap)
        folder = _resolve(root, corpus_cfg.path)
        docs, skipped = load_documents(folder, max_bytes=max_bytes)
        if not docs:
            why = "; ".join(str(s) for s in skipped[:3])
            raise ConfigError(f"knowledge.{name}: {folder} has no loadable documents"
                              + (f" (skipped: {why})" if why else ""))
        spec = corpus_cfg.embedder or embedder_spec
        index_dir = _resolve(root, corpus_cfg.index_dir) if corpus_cfg.index_dir else paths.index_dir(root, name)
        wanted = Manifest(INDEX_FORMAT, corpus_cfg.chunk_tokens, corpus_cfg.chunk_overlap, TOKENIZER_ID,
                          embedder_id(spec, root), {d.id: d.content_hash for d in docs})
        old = _read(index_dir)
        if old is not None and old[0].same(wanted):
            manifest, chunks, vectors, bm25 = old
            return cls(name, index_dir, chunks, vectors, bm25, manifest, spec, root, skipped, "loaded", 0)
        reuse = old if old is not None and old[0].same_shape(wanted) else None
        chunks, vectors, n_new = _assemble(docs, wanted, reuse, spec, root, progress)
        if not chunks:
            raise ConfigError(f"knowledge.{name}: the documents in {folder} have no text to index")
        bm25 = build_bm25(chunks)
        wanted.n_chunks, wanted.dim = len(chunks), int(vectors.shape[1])
        wanted.built_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        _write(index_dir, wanted, chunks, vectors, bm25)
        status = "updated" if reuse is not None else "built"
        return cls(name, index_dir, chunks, vectors, bm25, wanted, spec, root, skipped, status, n_new)

    # ------------------------------------------------------------ use

    @property
    def embedder(self) -> Any:
        return get_embedder(self.embedder_spec, self.root)

    def embed_queries(self, queries: list[str]) -> np.ndarray:
        """Normalised query vectors. A few queries are embedded on one torch thread: for such
        small inputs a second thread only adds synchronisation (measured: 30 ms vs 180 ms per
        query on 2 busy cores)."""
        if len(queries) > SMALL_BATCH:
            return embed(self.embedder, list(queries), batch_size=64)
        with torch_threads(1):
            return embed(self.embedder, list(queries), batch_size=64)

    def bm25_scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for query (zeros when no query word is in the corpus)."""
        ids = self.bm25.get_tokens_ids(bm25_tokens(query))
        if not ids:
            return np.zeros(len(self.chunks), dtype=np.float32)
        return np.asarray(self.bm25.get_scores_from_ids(ids), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.chunks)


def _resolve(root: Path, p: str) -> Path:
    path = Path(p).expanduser()
    return path if path.is_absolute() else root / path


def build_bm25(chunks: list[Chunk]) -> Any:
    import bm25s

    bm25 = bm25s.BM25()
    bm25.index([bm25_tokens(c.text) for c in chunks], show_progress=False)
    return bm25


def _assemble(docs: list[Document], wanted: Manifest, reuse: tuple | None, spec: str, root: Path,
              progress: Progress | None) -> tuple[list[Chunk], np.ndarray, int]:
    """Chunks and embeddings for docs, reusing those of unchanged documents."""
    old_rows: dict[str, list[int]] = {}
    if reuse is not None:
        old_manifest, old_chunks, _, _ = reuse
        for i, c in enumerate(old_chunks):
            old_rows.setdefault(c.doc_id, []).append(i)
    plan: list[tuple[list[Chunk], list[int] | None]] = []  # chunks, old rows (None: embed)
    for d in docs:
        if reuse is not None and old_manifest.docs.get(d.id) == d.content_hash and d.id in old_rows:
            rows = old_rows[d.id]
            plan.append(([reuse[1][i] for i in rows], rows))
        else:
            plan.append((chunk_document(d, wanted.chunk_tokens, wanted.chunk_overlap), None))
    todo = [c.text for cs, rows in plan if rows is None for c in cs]
    fresh = _embed_with_progress(todo, spec, root, progress)
    parts: list[np.ndarray] = []
    chunks: list[Chunk] = []
    k = 0
    for cs, rows in plan:
        chunks.extend(cs)
        if rows is None:
            parts.append(fresh[k:k + len(cs)])
            k += len(cs)
        else:
            parts.append(reuse[2][rows])
    dim = fresh.shape[1] if len(todo) else (reuse[2].shape[1] if reuse is not None else 0)
    vectors = np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, dim), np.float32)
    return chunks, vectors, len(todo)


def _embed_with_progress(texts: list[str], spec: str, root: Path, progress: Progress | None) -> np.ndarray:
    """Embeddings of texts, computed shortest first (less padding), reported per EMBED_BATCH."""
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    model = get_embedder(spec, root)
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), _dim(model)), dtype=np.float32)
    if progress:
        progress(0, len(texts))
    for start in range(0, len(texts), EMBED_BATCH):
        rows = order[start:start + EMBED_BATCH]
        out[rows] = embed(model, [texts[i] for i in rows])
        if progress:
            progress(min(start + EMBED_BATCH, len(texts)), len(texts))
    return out


# ---------------------------------------------------------------- disk

def _read(index_dir: Path) -> tuple[Manifest, list[Chunk], np.ndarray, Any] | None:
    """The stored index, or None when it is missing, from another format or damaged."""
    try:
        data = json.loads((index_dir / "manifest.json").read_text(encoding="utf-8"))
        if data.get("format") != INDEX_FORMAT:
            return None
        manifest = Manifest(**data)
        with open(index_dir / "chunks.jsonl", encoding="utf-8") as f:
            chunks = [Chunk.from_dict(json.loads(line)) for line in f if line.strip()]
        vectors = np.load(index_dir / "embeddings.npy", allow_pickle=False)
        import bm25s

        bm25 = bm25s.BM25.load(str(index_dir / "bm25"), show_progress=False)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    n = len(chunks)
    if n != manifest.n_chunks or vectors.shape != (n, manifest.dim) or int(bm25.scores["num_docs"]) != n:
        return None
    return manifest, chunks, np.ascontiguousarray(vectors, dtype=np.float32), bm25


def _write(index_dir: Path, manifest: Manifest, chunks: list[Chunk], vectors: np.ndarray, bm25: Any) -> None:
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{index_dir.name}.tmp-", dir=index_dir.parent))
    try:
        with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as f:
            for c in chunks:
                f.write(json.dumps(c.to_dict(), ensure_ascii=False) + "\n")
        np.save(tmp / "embeddings.npy", vectors, allow_pickle=False)
        bm25.save(str(tmp / "bm25"), show_progress=False)
        (tmp / "manifest.json").write_text(json.dumps(asdict(manifest), indent=1), encoding="utf-8")
        old = index_dir.with_name(f".{index_dir.name}.old-{uuid.uuid4().hex[:8]}")
        if index_dir.exists():
            index_dir.rename(old)
        tmp.rename(index_dir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
