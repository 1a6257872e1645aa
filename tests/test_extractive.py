"""Extractive answers (answer.mode: extractive) and the retrieval options they are used with
(superseded / untrusted: drop): evidence units from real chunk text, ranking with the embedded
embedder, abstention, the pipeline over a real index with the OpenAI-compatible stub on
127.0.0.1 as the model."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from clirun import run_rung

from rung.config import AnswerConfig, CandidateConfig, RetrievalConfig, load_config
from rung.core import Case, RetrievedChunk
from rung.pipeline.extractive import evidence_units, extract_answer, rank_evidence


def chunk(cid: str, text: str, **meta) -> RetrievedChunk:
    return RetrievedChunk(cid, cid.split("#")[0], text, 1.0, meta)


PRICES = chunk("prices#1", "Price list (EU), 2026 > Arc R6 router\n\n| Item | Price |\n|---|---|\n"
                           "| Arc R6 router (single unit) | EUR 149 |\n| Arc R6 satellite (add-on) | EUR 119 |")
PLANS = chunk("prices#3", "Price list (EU), 2026 > Havrel Vault\n\n| Plan | Storage | Monthly |\n|---|---|---|\n"
                          "| Vault Plus | 2 TB | EUR 9.99 |")
ERRORS = chunk("storage#1", "Vault guide > Error codes\n\n- VLT-409, file conflict: the same file was changed "
                            "twice. Vault\n  keeps both versions. - VLT-413, file too large: a single file "
                            "can be at most 5 GB on Vault Basic.")
REFUNDS = chunk("refunds#0", "Refunds (EU)\n\nYou may withdraw within 14 days of delivery. The return "
                             "label is free.\n\n1. Open the app.\n2. Choose Return an item.")


# ---------------------------------------------------------------- units


def test_table_rows_become_label_value_units():
    assert [u.text for u in evidence_units(PRICES)] == [
        "Arc R6 router (single unit): EUR 149", "Arc R6 satellite (add-on): EUR 119"]
    assert [u.text for u in evidence_units(PLANS)] == ["Vault Plus: Storage 2 TB, Monthly EUR 9.99"]
    assert evidence_units(PRICES)[0].heading == "Arc R6 router"


def test_sentences_and_list_items_are_units():
    assert [u.text for u in evidence_units(REFUNDS)] == [
        "You may withdraw within 14 days of delivery.", "The return label is free.",
        "Open the app.", "Choose Return an item."]
    # list items the chunker joined on one line are split again
    texts = [u.text for u in evidence_units(ERRORS)]
    assert texts[0].startswith("VLT-409, file conflict") and texts[-1].startswith("VLT-413, file too large")


def test_chunk_starting_mid_sentence_drops_the_fragment():
    tail = chunk("guide#2", "Guide > Reset\n\nbefore doing anything. Hold the reset button for 15 seconds.")
    assert [u.text for u in evidence_units(tail)] == ["Hold the reset button for 15 seconds."]


def test_chunk_without_heading_line_and_tiny_pieces():
    plain = chunk("note#0", "Ok. Call us on 1-800-555-0148 from 9 am to 5 pm.")
    assert [u.text for u in evidence_units(plain)] == ["Call us on 1-800-555-0148 from 9 am to 5 pm."]
    assert evidence_units(chunk("empty#0", "Title\n\n")) == []


# ---------------------------------------------------------------- ranking and answers (real embedder)


@pytest.fixture(scope="module")
def embedder():
    from rung.pipeline.retrieval.index import get_embedder  # the process-wide instance

    return get_embedder("embedded:all-minilm-l6-v2")


def test_rank_prefers_the_unit_that_answers(embedder):
    units = [u for c in (PRICES, PLANS, REFUNDS) for u in evidence_units(c)]
    ranked = rank_evidence("How much does a single Arc R6 router cost?", units, embedder)
    assert ranked[0].text == "Arc R6 router (single unit): EUR 149"
    assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)
    ranked = rank_evidence("How long do I have to withdraw after delivery?", units, embedder)
    assert "14 days" in ranked[0].text


def test_extract_answer_quotes_and_cites(embedder):
    out = extract_answer("What does a Vault Plus plan cost per month?", [PRICES, PLANS], embedder,
                         AnswerConfig(mode="extractive", max_sentences=1))
    assert out.text == "Vault Plus: Storage 2 TB, Monthly EUR 9.99 [prices#3]."
    assert not out.abstained and len(out.selected) == 1
    event = out.event("model said this")
    assert event["model_text"] == "model said this" and event["selected"][0]["chunk"] == "prices#3"


def test_extract_answer_abstains_when_nothing_matches(embedder):
    cfg = AnswerConfig(mode="extractive", min_score=0.6, abstain="No source covers that.")
    out = extract_answer("Which stocks should I buy with my refund?", [PRICES, REFUNDS], embedder, cfg)
    assert out.abstained and out.text == "No source covers that." and out.selected == []
    assert out.best_score is not None and out.best_score < 0.6
    assert extract_answer("anything", [], embedder, cfg).abstained


def test_extract_answer_never_quotes_untrusted_and_drops_repeats(embedder):
    forum = chunk("forum#0", "Forum\n\nYou may withdraw within 14 days of delivery, or get a full refund "
                             "after months.", untrusted=True)
    again = chunk("refunds#1", "Refunds (EU)\n\nYou may withdraw within 14 days of delivery.")
    out = extract_answer("How long can I withdraw after delivery?", [forum, REFUNDS, again], embedder,
                         AnswerConfig(mode="extractive", max_sentences=3, min_score=0.0))
    cited = [e.chunk_id for e in out.selected]
    assert "forum#0" not in cited
    texts = [e.text for e in out.selected]
    assert len(texts) == len(set(texts)) == 3


# ---------------------------------------------------------------- config


def test_extractive_needs_retrieval():
    with pytest.raises(ValueError, match="extractive.*retrieval"):
        CandidateConfig(answer={"mode": "extractive"})
    CandidateConfig(answer={"mode": "extractive"}, retrieval={"corpus": "kb"})


def test_new_options_at_their_defaults_keep_candidate_hashes():
    from rung.pipeline.candidate import candidate_hash, candidate_identity

    plain = CandidateConfig(retrieval={"corpus": "kb"})
    identity = candidate_identity(plain, None, "fp")
    assert "superseded" not in identity["level0"]["retrieval"] and "answer" not in identity["level0"]
    dropped = CandidateConfig(retrieval={"corpus": "kb", "superseded": "drop"})
    quoted = CandidateConfig(retrieval={"corpus": "kb"}, answer={"mode": "extractive"})
    hashes = {candidate_hash("x", c, None, "fp") for c in (plain, dropped, quoted)}
    assert len(hashes) == 3


# ---------------------------------------------------------------- retrieval: superseded / untrusted


@pytest.fixture
def versions(tmp_path: Path) -> Path:
    kb = tmp_path / "kb"
    kb.mkdir()
    future = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    docs = {
        "policy-v1": "effective_date: 2024-01-01\n",
        "policy-v2": "effective_date: 2025-01-01\nsupersedes: policy-v1\n",
        "policy-v3": f"effective_date: {future}\nsupersedes: [policy-v2]\n",
        "forum": "untrusted: true\n",
    }
    for name, meta in docs.items():
        (kb / f"{name}.md").write_text(f"---\nid: {name}\n{meta}---\n# {name}\n\n"
                                       f"Returns are accepted within a number of days ({name}).\n")
    return kb


def _retriever(kb: Path, **options):
    from rung.config import CorpusConfig
    from rung.pipeline.retrieval import CorpusIndex, Retriever

    index = CorpusIndex.build_or_load(CorpusConfig(path=str(kb)), "kb", kb.parent, "embedded:all-minilm-l6-v2")
    return Retriever(index, RetrievalConfig(corpus="kb", top_k=10, **options))


def test_superseded_drop_keeps_the_version_in_force(versions: Path):
    keep = {c.doc_id for c in _retriever(versions).search("returns days")}
    assert keep == {"policy-v1", "policy-v2", "policy-v3", "forum"}
    drop = {c.doc_id for c in _retriever(versions, superseded="drop").search("returns days")}
    # v2 supersedes v1 and is in force; v3 is not in force yet, so v2 still applies
    assert drop == {"policy-v2", "policy-v3", "forum"}
    later = _retriever(versions, superseded="drop").current_mask(dt.date.today() + dt.timedelta(days=60))
    assert later.sum() == 2  # policy-v3 and the forum post


def test_untrusted_drop(versions: Path):
    found = {c.doc_id for c in _retriever(versions, untrusted="drop", superseded="drop").search("returns")}
    assert found == {"policy-v2", "policy-v3"}


# ---------------------------------------------------------------- the pipeline


@pytest.fixture
def project(tmp_path: Path, stub) -> Path:
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "refunds-eu.md").write_text(
        "---\nid: refunds-eu\njurisdiction: EU\n---\n# Refunds (EU)\n\n"
        "You may withdraw within 14 days of delivery. The return label is free.\n")
    (kb / "prices.md").write_text(
        "---\nid: prices\njurisdiction: EU\n---\n# Prices\n\n| Item | Price |\n|---|---|\n"
        "| Arc R6 router | EUR 149 |\n")
    (tmp_path / "rung.yaml").write_text(f"""
models:
  default: {{backend: openai, base_url: "{stub.url}", model: stub-model, max_retries: 0}}
knowledge:
  kb: {{path: kb, chunk_tokens: 64, chunk_overlap: 8}}
candidates:
  quote:
    system_prompt: You are a support assistant.
    retrieval: {{corpus: kb, top_k: 2}}
    answer: {{mode: extractive, max_sentences: 1, min_score: 0.4}}
    generation: {{max_new_tokens: 40}}
""")
    return tmp_path


@pytest.mark.slow
def test_pipeline_quotes_keeps_refusals_and_hides_sources_from_the_model(project: Path, stub):
    from rung.pipeline.pipeline import build_pipeline

    pipeline = build_pipeline(load_config(project), "quote", use_cache=False)
    price, refusal, weather = pipeline.answer_batch([
        Case(id="price", input="How much is the Arc R6 router?"),
        Case(id="refuse", input="I'm sorry, I can't help with that request."),  # the stub echoes it
        Case(id="weather", input="Will it rain in Paris tomorrow?"),
    ])
    assert price.text == "Arc R6 router: EUR 149 [prices#0]."
    assert price.citations == ["prices#0"]
    event = next(e for e in price.trace.events if e.get("type") == "extractive")
    assert event["model_text"].startswith("echo: How much") and not event["abstained"]
    assert "extract" in price.timings_ms
    # the model was prompted without the sources (they are quoted by rung, not read by it)
    assert all("EUR 149" not in m["content"] for m in price.trace.prompt)
    assert price.trace.retrieved  # ... but they were retrieved and are scored
    assert refusal.text.startswith("echo: I'm sorry, I can't help")
    assert any(e.get("kept") == "model refusal" for e in refusal.trace.events)
    assert weather.text == AnswerConfig().abstain


def test_ask_meta_must_be_key_value(project: Path):
    res = run_rung("ask", "-c", str(project / "rung.yaml"), "-m", "jurisdiction", "hi")
    assert res.returncode != 0 and "--meta 'jurisdiction': expected KEY=VALUE" in res.stderr + res.stdout


@pytest.mark.slow
def test_ask_shows_citations_in_the_answer(project: Path, stub):
    res = run_rung("ask", "-c", str(project / "rung.yaml"), "-C", "quote", "--no-cache",
                   "How much is the Arc R6 router?")
    assert res.returncode == 0, res.stderr
    # "[prices#0]" is text, not console markup: it must survive printing
    assert "EUR 149 [prices#0]." in res.stdout
    assert "extract" in res.stdout and "retrieve" in res.stdout


@pytest.mark.slow
def test_example_extractive_candidate_answers_from_current_sources(tmp_path: Path):
    """The bundled example's rag-extractive candidate with the real embedded model: the facts a
    correct answer needs, cited from the current (not superseded) document, with no unsupported
    claim by the groundedness scorer."""
    import shutil

    from rung.evals.scorers import ScoreContext, build_scorer
    from rung.evals.suite import load_suite
    from rung.models.embedded import load_embedder
    from rung.pipeline.pipeline import build_pipeline

    example = Path(__file__).resolve().parents[1] / "examples" / "support-desk"
    project = tmp_path / "desk"
    shutil.copytree(example, project, ignore=shutil.ignore_patterns(".rung"))
    suite = {c.id: c for c in load_suite(project / "cases" / "eval.jsonl").cases}
    # a price whose 2025 list is superseded, a price asked about against an older one, a reset time
    cases = [suite[i] for i in ("fact-eu-router-price", "conflict-eu-vault-plus-price", "trouble-thermo-reset")]
    pipeline = build_pipeline(load_config(project), "rag-extractive", use_cache=False)
    answers = pipeline.answer_batch(cases)
    ground = build_scorer("groundedness")
    ctx = ScoreContext(embedder_factory=lambda: load_embedder("embedded:all-minilm-l6-v2"))
    for case, answer in zip(cases, answers, strict=True):
        for fact in case.metadata["must_include"]:
            assert fact.lower() in answer.text.lower(), (case.id, answer.text)
        assert {c.split("#")[0] for c in answer.citations} & set(case.sources), (case.id, answer.citations)
        assert not any(ch.doc_id in ("pricing-eu-2025",) for ch in answer.trace.retrieved)
        hallucination = ground.score(case, answer, ctx)[0]
        assert hallucination.value == 0.0, (case.id, hallucination.reason)
