"""Retrieval at scale and retrieval quality, measured.

1. Scale: the fitz-gov corpus (MIT, 5,043 documents in site-packages/fitz_gov; 19 ids that occur
   twice with different text get a "~2" suffix, records without text are skipped) is chunked
   small (chunk_tokens 112, overlap 16) into >10k chunks and indexed: build time (chunking,
   embedding, BM25, writing), reload time, then single-query latency of `Retriever.search`
   (query embedding included) over 200 fitz-gov queries, p50/p95 for bm25, dense and hybrid,
   wall-clock and CPU time (the process's CPU time: what a query costs when the cores are shared);
   hit@5 of each mode on those queries (their `relevant_docs`).
2. Quality: the bundled example (examples/support-desk: knowledge + labelled eval cases with
   `sources`), default chunking (200/40): hit@5 (a source among the top 5 chunks), MRR and
   nDCG@10 (over distinct documents in rank order) for BM25, dense, hybrid, and hybrid + each
   reranker, with the metadata filters of the example off and on:
   {jurisdiction?: ["{{ jurisdiction }}", global], product?: ["{{ product }}", all]}.

3. Extractive answers (answer.mode: extractive) with the retrieval of the example's
   `rag-extractive` candidate: on the answerable cases with required facts (`must_include`), how
   often the retrieved chunks hold every fact, the best unit, the best two units; then the share
   of answerable and of must-refuse cases that would abstain at several `min_score` values.
   Superseded/untrusted documents dropped or kept shows what those options add.

Run: python benchmarks/retrieval.py [--rerankers embedding,llm] [--threads N] [--skip-scale]
The index goes to a temporary folder (or --workdir). Prints the numbers; --json writes them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from rung.config import EMBEDDED_EMBEDDER, CorpusConfig, RetrievalConfig
from rung.evals.suite import load_suite
from rung.pipeline.retrieval import CorpusIndex, Retriever, build_reranker

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "support-desk"
FILTERS = {"jurisdiction?": ["{{ jurisdiction }}", "global"], "product?": ["{{ product }}", "all"]}
SEED = 7


def fitz_dir() -> Path:
    spec = importlib.util.find_spec("fitz_gov")
    if spec is None or not spec.origin:
        raise SystemExit("fitz-gov is not installed (pip install --no-deps fitz-gov==4.1.0)")
    return Path(spec.origin).parent / "data"


def write_fitz_corpus(folder: Path) -> int:
    """fitz-gov's documents as one JSONL file, duplicate ids made unique."""
    folder.mkdir(parents=True, exist_ok=True)
    seen: dict[str, int] = {}
    n = 0
    with open(fitz_dir() / "corpus" / "documents.jsonl", encoding="utf-8") as src, \
            open(folder / "fitz-gov.jsonl", "w", encoding="utf-8") as out:
        for line in src:
            rec = json.loads(line)
            k = seen[rec["id"]] = seen.get(rec["id"], 0) + 1
            if k > 1:
                rec["id"] = f"{rec['id']}~{k}"
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    return n


def fitz_queries(n: int) -> list[tuple[str, set[str]]]:
    data = json.loads((fitz_dir() / "queries" / "query_mappings.json").read_text(encoding="utf-8"))
    pool = [(q["query"], set(q["relevant_docs"])) for cat in data["mappings"].values()
            for q in cat.values() if q.get("relevant_docs")]
    random.Random(SEED).shuffle(pool)
    return pool[:n]


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(xs), p))


# ---------------------------------------------------------------- metrics

def doc_ranking(chunks: list[Any]) -> list[str]:
    return list(dict.fromkeys(c.doc_id for c in chunks))


def metrics(ranked_chunks: list[Any], sources: set[str]) -> dict[str, float]:
    docs = doc_ranking(ranked_chunks)
    hit5 = float(any(c.doc_id in sources for c in ranked_chunks[:5]))
    rr = next((1.0 / r for r, d in enumerate(docs, start=1) if d in sources), 0.0)
    dcg = sum(1.0 / math.log2(r + 1) for r, d in enumerate(docs[:10], start=1) if d in sources)
    ideal = sum(1.0 / math.log2(r + 1) for r in range(1, min(len(sources), 10) + 1))
    return {"hit@5": hit5, "mrr": rr, "ndcg@10": dcg / ideal if ideal else 0.0}


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(sum(r[k] for r in rows) / len(rows), 3) for k in rows[0]}


# ---------------------------------------------------------------- 1. scale

def scale(work: Path, n_queries: int) -> dict[str, Any]:
    corpus = work / "fitz-corpus"
    n_docs = write_fitz_corpus(corpus)
    cfg = CorpusConfig(path=str(corpus), chunk_tokens=112, chunk_overlap=16, index_dir=str(work / "fitz-index"))
    t = time.perf_counter()
    index = CorpusIndex.build_or_load(cfg, "fitz", work, EMBEDDED_EMBEDDER)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    again = CorpusIndex.build_or_load(cfg, "fitz", work, EMBEDDED_EMBEDDER)
    reload_s = time.perf_counter() - t
    out: dict[str, Any] = {
        "documents_in_file": n_docs, "documents": len(index.manifest.docs), "skipped": len(index.skipped),
        "chunks": len(index), "build_s": round(build_s, 1), "reload_s": round(reload_s, 2),
        "reload_status": again.status,
    }
    print(f"fitz-gov: {out['documents']} documents ({out['skipped']} records skipped) -> {len(index)} chunks; "
          f"build {build_s:.1f} s (embedding {index.embedded} chunks), reload {reload_s:.2f} s ({again.status})")
    queries = fitz_queries(n_queries)
    for q, _ in queries[:5]:  # warm-up
        Retriever(index, RetrievalConfig(mode="hybrid", top_k=5)).search(q)
    for mode in ("bm25", "dense", "hybrid"):
        r = Retriever(index, RetrievalConfig(mode=mode, top_k=5, context_tokens=100_000))
        lat, cpu, embed_ms, hits = [], [], [], []
        for q, rel in queries:
            t, c = time.perf_counter(), time.process_time()
            got = r.search(q)
            lat.append((time.perf_counter() - t) * 1000)
            cpu.append((time.process_time() - c) * 1000)
            embed_ms.append(r.timings_ms["embed"])
            hits.append(float(any(c.doc_id in rel for c in got)))
        row = {"p50_ms": round(pct(lat, 50), 2), "p95_ms": round(pct(lat, 95), 2),
               "cpu_p50_ms": round(pct(cpu, 50), 2), "cpu_p95_ms": round(pct(cpu, 95), 2),
               "embed_p50_ms": round(pct(embed_ms, 50), 2), "hit@5": round(sum(hits) / len(hits), 3)}
        out[mode] = row
        print(f"  {mode:6s} single query over {len(queries)} queries: p50 {row['p50_ms']:.1f} ms, "
              f"p95 {row['p95_ms']:.1f} ms (query embedding p50 {row['embed_p50_ms']:.1f} ms; CPU time "
              f"p50 {row['cpu_p50_ms']:.1f} ms, p95 {row['cpu_p95_ms']:.1f} ms); "
              f"hit@5 {row['hit@5']:.3f}")
    return out


# ---------------------------------------------------------------- 2. quality

def quality(work: Path, rerankers: list[str], llm_cases: int) -> dict[str, Any]:
    suite = load_suite(EXAMPLE / "cases" / "eval.jsonl")
    cases = [c for c in suite.cases if c.sources]
    cfg = CorpusConfig(path=str(EXAMPLE / "knowledge"), index_dir=str(work / "example-index"))
    index = CorpusIndex.build_or_load(cfg, "example", work, EMBEDDED_EMBEDDER)
    print(f"example: {len(index.manifest.docs)} documents -> {len(index)} chunks; "
          f"{len(cases)} eval cases with sources")
    setups = [("bm25", "none"), ("dense", "none"), ("hybrid", "none")]
    setups += [("hybrid", r) for r in rerankers if not r.startswith("llm")]
    out: dict[str, Any] = {"cases": len(cases)}
    for mode, rr in setups:
        for use_filters in (False, True):
            rcfg = RetrievalConfig(mode=mode, top_k=30, fetch_k=30, context_tokens=100_000,
                                   filters=FILTERS if use_filters else {}, reranker=rr)
            r = Retriever(index, rcfg, build_reranker(rr, work))
            filters = [r.filters_for(c.metadata) for c in cases]
            t = time.perf_counter()
            results = r.search_batch([c.question for c in cases], filters)
            secs = time.perf_counter() - t
            m = mean_metrics([metrics(res, set(c.sources)) for res, c in zip(results, cases, strict=True)])
            key = f"{mode}+{rr}" if rr != "none" else mode
            out[f"{key}|{'filters' if use_filters else 'no-filters'}"] = {
                **m, "ms_per_query": round(secs * 1000 / len(cases), 1)}
            print(f"  {key:17s} filters {'on ' if use_filters else 'off'}: hit@5 {m['hit@5']:.3f}  "
                  f"MRR {m['mrr']:.3f}  nDCG@10 {m['ndcg@10']:.3f}  ({secs * 1000 / len(cases):.0f} ms/query)")
    for option in ("superseded", "untrusted"):
        rcfg = RetrievalConfig(mode="hybrid", top_k=30, fetch_k=30, context_tokens=100_000,
                               filters=FILTERS, **{option: "drop"})
        r = Retriever(index, rcfg)
        results = r.search_batch([c.question for c in cases], [r.filters_for(c.metadata) for c in cases])
        m = mean_metrics([metrics(res, set(c.sources)) for res, c in zip(results, cases, strict=True)])
        out[f"hybrid|filters|{option}-drop"] = m
        print(f"  hybrid, {option}: drop, filters on: hit@5 {m['hit@5']:.3f}  MRR {m['mrr']:.3f}  "
              f"nDCG@10 {m['ndcg@10']:.3f}")
    llms = [r for r in rerankers if r.startswith("llm")]
    if llms and llm_cases > 0:
        # an LLM reranker costs seconds per query on CPU: compared on a subset, filters on
        subset = random.Random(SEED).sample(cases, min(llm_cases, len(cases)))
        print(f"  LLM rerankers on {len(subset)} random cases (filters on), against hybrid on the same cases:")
        for rr in ["none", *llms]:
            rcfg = RetrievalConfig(mode="hybrid", top_k=30, fetch_k=30, context_tokens=100_000,
                                   filters=FILTERS, reranker=rr)
            r = Retriever(index, rcfg, build_reranker(rr, work))
            if r.reranker is not None:
                r.reranker.scores("warm up", ["loading the model"], None, None)
            t = time.perf_counter()
            results = r.search_batch([c.question for c in subset], [r.filters_for(c.metadata) for c in subset])
            secs = time.perf_counter() - t
            m = mean_metrics([metrics(res, set(c.sources)) for res, c in zip(results, subset, strict=True)])
            key = f"hybrid+{rr}" if rr != "none" else "hybrid"
            out[f"{key}|filters|subset{len(subset)}"] = {**m, "ms_per_query": round(secs * 1000 / len(subset), 1)}
            print(f"    {key:15s} hit@5 {m['hit@5']:.3f}  MRR {m['mrr']:.3f}  nDCG@10 {m['ndcg@10']:.3f}  "
                  f"({secs * 1000 / len(subset):.0f} ms/query)")
    return out


def extractive() -> dict[str, Any]:
    """Section 3: how often quoting finds the required facts, and who abstains."""
    from rung.config import load_config
    from rung.pipeline.extractive import extract_answer
    from rung.pipeline.retrieval import Retriever as _Retriever

    config = load_config(EXAMPLE / "rung.yaml")
    cand = config.candidates["rag-extractive"]
    cases = load_suite(EXAMPLE / "cases" / "eval.jsonl").cases
    answerable = [c for c in cases if not c.should_refuse and c.metadata.get("must_include")]
    refuse = [c for c in cases if c.should_refuse]
    out: dict[str, Any] = {"answerable": len(answerable), "must_refuse": len(refuse)}
    print(f"extractive answers: {len(answerable)} answerable cases with required facts, "
          f"{len(refuse)} must-refuse cases")
    keep_all = cand.retrieval.model_copy(update={"superseded": "keep", "untrusted": "keep"})
    for label, rcfg in (("as configured", cand.retrieval), ("keep superseded + untrusted", keep_all)):
        r = _Retriever.from_config(rcfg, config.knowledge[rcfg.corpus], root=config.root,
                                   embedder=config.embedder)
        embedder = r.index.embedder
        every = cand.answer.model_copy(update={"min_score": 0.0})
        found = r.search_batch([c.question for c in answerable], [r.filters_for(c.metadata) for c in answerable])
        has = {"chunks": 0, "best 1": 0, "best 2": 0}
        best_answerable = []
        for c, chunks in zip(answerable, found, strict=True):
            must = [m.lower() for m in c.metadata["must_include"]]
            if all(m in " ".join(ch.text for ch in chunks).lower() for m in must):
                has["chunks"] += 1
            for k in (1, 2):
                got = extract_answer(c.question, chunks, embedder, every.model_copy(update={"max_sentences": k}))
                if all(m in got.text.lower() for m in must):
                    has[f"best {k}"] += 1
            best_answerable.append(got.best_score or 0.0)
        found = r.search_batch([c.question for c in refuse], [r.filters_for(c.metadata) for c in refuse])
        best_refuse = [extract_answer(c.question, ch, embedder, every).best_score or 0.0
                       for c, ch in zip(refuse, found, strict=True)]
        shares = {k: round(v / len(answerable), 3) for k, v in has.items()}
        print(f"  {label}: every required fact in the retrieved chunks {shares['chunks']:.3f}, "
              f"in the best unit {shares['best 1']:.3f}, in the best two {shares['best 2']:.3f}")
        abstain = {}
        for t in (0.35, 0.4, 0.45, 0.5, 0.55):
            a = float(np.mean(np.asarray(best_answerable) < t))
            b = float(np.mean(np.asarray(best_refuse) < t))
            abstain[str(t)] = {"answerable": round(a, 3), "must_refuse": round(b, 3)}
        print("    abstains at min_score " + ", ".join(
            f"{t}: {v['answerable']:.2f} / {v['must_refuse']:.2f}" for t, v in abstain.items())
            + "  (answerable / must-refuse)")
        out[label] = {"has_facts": shares, "abstain": abstain}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rerankers", default="embedding,llm", help="comma-separated reranker specs to compare")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--llm-cases", type=int, default=12, help="cases to compare an LLM reranker on")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, load average {load:.1f}")
    with tempfile.TemporaryDirectory(prefix="rung-bench-") as tmp:
        work = Path(args.workdir or tmp)
        result: dict[str, Any] = {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                                  "load_average": round(load, 1)}
        t0 = time.perf_counter()
        if not args.skip_scale:
            result["scale"] = scale(work, args.queries)
        rerankers = [r.strip() for r in args.rerankers.split(",") if r.strip() and r.strip() != "none"]
        result["quality"] = quality(work, rerankers, args.llm_cases)
        result["extractive"] = extractive()
        result["total_s"] = round(time.perf_counter() - t0, 1)
        print(f"total {result['total_s']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
