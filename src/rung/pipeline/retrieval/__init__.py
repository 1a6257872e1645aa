"""Level-0 retrieval: load a knowledge folder, chunk it, index it on disk, search it.

    docs, skipped = load_documents(folder)
    index = CorpusIndex.build_or_load(corpus_cfg, name, root, embedder_spec, progress)
    retriever = Retriever(index, retrieval_cfg, build_reranker(retrieval_cfg.reranker, root))
    chunks = retriever.search(question, filters=render_filters(retrieval_cfg.filters, case.metadata))

or, from a project file's sections, `Retriever.from_config(candidate.retrieval,
config.knowledge[candidate.retrieval.corpus], root=config.root, embedder=config.embedder)`.
Heavy dependencies (bm25s, sentence-transformers, transformers) load on first use.
"""

from rung.pipeline.retrieval.chunking import Chunk, approx_tokens, chunk_document, chunk_documents
from rung.pipeline.retrieval.documents import Document, Skipped, load_documents
from rung.pipeline.retrieval.index import CorpusIndex, get_embedder
from rung.pipeline.retrieval.rerank import Reranker, build_reranker
from rung.pipeline.retrieval.search import Retriever, fit_budget, render_filters, rrf

__all__ = [
    "Chunk",
    "CorpusIndex",
    "Document",
    "Reranker",
    "Retriever",
    "Skipped",
    "approx_tokens",
    "build_reranker",
    "chunk_document",
    "chunk_documents",
    "fit_budget",
    "get_embedder",
    "load_documents",
    "render_filters",
    "rrf",
]
