"""Task-success, schema and usage scorers on hand-made cases whose right score is known."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from rung.config import load_config
from rung.core import Answer, Case, Score
from rung.core.schemas import load_schemas
from rung.errors import ConfigError, ScorerError
from rung.evals.scorers import build_scorer
from rung.evals.scorers.base import ScoreContext
from rung.text.jsonx import JSONExtractError, extract_json
from rung.text.textnorm import contains, normalize


def case(**kw) -> Case:
    kw.setdefault("id", "c1")
    kw.setdefault("input", "question?")
    return Case(**kw)


def run(scorer_type: str, c: Case, text: str, ctx: ScoreContext | None = None, **params) -> Score:
    scores = build_scorer(scorer_type, **params).score(c, Answer(text=text), ctx or ScoreContext())
    assert len(scores) == 1
    return scores[0]


# ---------------------------------------------------------------- normalisation and JSON


@pytest.mark.parametrize("a, b", [
    ("30 days", "30-day"), ("Thirty days", "30 days"), ("twenty-one", "21"), ("$1,000.00", "1000"),
    ("15%", "15 percent"), ("Refunds!", "refund"), ("  The  ANSWER. ", "the answer"),
])
def test_normalize_equates_phrasings(a, b):
    assert normalize(a) == normalize(b)


def test_contains_is_token_bounded():
    assert contains("returns within a 30-day window", "30 days")
    assert not contains("returns within 130 days", "30 days")
    assert not contains("a refundable fee", "refund")


@pytest.mark.parametrize("text", [
    '{"a": 1}',
    'Sure! Here it is:\n```json\n{"a": 1}\n```\nAnything else?',
    '```\n{"a": 1}\n```',
    'The result is {"a": 1} as requested.',
    'Note {not json} then {"a": 1}',
])
def test_extract_json_tolerates_wrapping(text):
    assert extract_json(text) == {"a": 1}


def test_extract_json_reports_parse_error():
    with pytest.raises(JSONExtractError, match="delimiter|Expecting"):
        extract_json('{"a": 1 "b": 2}')
    with pytest.raises(JSONExtractError, match="no JSON"):
        extract_json("just words")


# ---------------------------------------------------------------- exact


def test_exact_normalised_and_strict():
    c = case(reference="Paris")
    assert run("exact", c, "paris.").value == 1.0
    s = run("exact", c, "Lyon")
    assert s.value == 0.0 and "Paris" in s.reason and s.details["method"] == "exact"
    assert run("exact", c, "paris.", normalize=False).value == 0.0
    assert run("exact", c, "Paris", normalize=False).value == 1.0


def test_exact_without_reference_is_not_measured():
    s = run("exact", case(), "anything")
    assert s.value is None and s.name == "task_success" and "no reference" in s.reason


# ---------------------------------------------------------------- contains


def test_contains_reference_and_number_forms():
    c = case(reference="30 days")
    assert run("contains", c, "You have a 30-day return window.").value == 1.0
    assert run("contains", c, "You have 14 days.").value == 0.0


def test_contains_must_include_takes_precedence_and_names_missing():
    c = case(reference="irrelevant long reference", metadata={"must_include": ["30 days", "receipt"]})
    s = run("contains", c, "Bring the receipt within thirty days.")
    assert s.value == 1.0 and s.details["facts_from"] == "case metadata"
    s = run("contains", c, "Returns are accepted within 30 days.")
    assert s.value == 0.0
    assert s.details["missing"] == ["receipt"] and "receipt" in s.reason


def test_contains_any_of_from_case_and_from_params():
    c = case(metadata={"any_of": ["store credit", "full refund"]})
    assert run("contains", c, "You will get a full refund.").value == 1.0
    assert run("contains", c, "You get nothing.").value == 0.0
    c2 = case(reference="ignored")
    assert run("contains", c2, "Yes, a store credit.", any_of=["store credit", "voucher"]).value == 1.0
    s = run("contains", c2, "We refund.", all_of=["refund", "5 business days"])
    assert s.value == 0.0 and s.details["missing"] == ["5 business days"]


def test_contains_not_measured_and_bad_metadata():
    assert run("contains", case(), "x").value is None
    s = run("contains", case(metadata={"must_include": 30}), "x")
    assert s.value is None and "metadata.must_include" in s.reason
    with pytest.raises(ScorerError, match="any_of"):
        build_scorer("contains", any_of=5)


# ---------------------------------------------------------------- regex


def test_regex_pattern_and_must_not_match():
    c = case()
    params = {"pattern": r"\b30\s*days?\b", "must_not_match": [r"\bguarantee"]}
    assert run("regex", c, "Within 30 days.", **params).value == 1.0
    s = run("regex", c, "Within 30 days, guaranteed!", **params)
    assert s.value == 0.0 and s.details["forbidden_matched"] == [r"\bguarantee"] and "forbidden" in s.reason
    s = run("regex", c, "Within 14 days.", **params)
    assert s.value == 0.0 and s.details["unmatched"] == [r"\b30\s*days?\b"]


def test_regex_from_reference_and_case_forbidden_patterns():
    c = case(reference=r"ORD-\d{4}", metadata={"must_not_match": ["refund (is|was) approved"]})
    assert run("regex", c, "Your order ord-1234 is on its way.", from_reference=True).value == 1.0
    assert run("regex", c, "Order ORD-1234: refund was approved.", from_reference=True).value == 0.0
    assert run("regex", c, "ord-1234", from_reference=True, ignore_case=False).value == 0.0


def test_regex_errors_and_not_measured():
    with pytest.raises(ScorerError, match="invalid regular expression"):
        build_scorer("regex", pattern="(unclosed")
    s = run("regex", case(reference="(bad"), "x", from_reference=True)
    assert s.value is None and "reference" in s.reason
    assert run("regex", case(), "x", from_reference=True).value is None


# ---------------------------------------------------------------- json_match


def test_json_match_partial_share_and_threshold():
    ref = json.dumps({"intent": "return_refund", "priority": "high", "order": 1234})
    c = case(reference=ref)
    s = run("json_match", c, '```json\n{"intent": "return_refund", "priority": "low", "order": "1234"}\n```')
    assert s.value == pytest.approx(2 / 3)
    assert s.details["passed"] is False
    assert s.details["fields"]["priority"] == {"match": False, "mode": "exact", "expected": "high", "got": "low"}
    assert "priority" in s.reason
    s = run("json_match", c, '{"intent": "return_refund", "priority": "low", "order": 1234}', threshold=0.6)
    assert s.details["passed"] is True


def test_json_match_fields_modes_nested_and_expected_metadata():
    c = case(metadata={"expected": {"customer": {"name": "Ana"}, "answer": "30 days", "tags": ["eu"]}})
    answer = 'Result: {"customer": {"name": "ana"}, "answer": "You have a 30-day window.", "tags": ["eu", "vip"]}'
    s = run("json_match", c, answer, fields={"customer.name": "exact", "answer": "contains", "tags": "contains"})
    assert s.value == 1.0 and s.details["passed"]
    s = run("json_match", c, answer, fields=["customer.name", "answer"])
    assert s.value == 0.5
    assert s.details["fields"]["answer"]["match"] is False


def test_json_match_malformed_answer_missing_field_and_parsed():
    c = case(reference='{"a": 1, "b": 2}')
    s = run("json_match", c, '{"a": 1, "b": }')
    assert s.value == 0.0 and s.reason.startswith("not JSON:")
    s = run("json_match", c, '{"a": 1}')
    assert s.value == 0.5 and s.details["fields"]["b"]["error"] == "missing"
    scorer = build_scorer("json_match")
    (s,) = scorer.score(c, Answer(text="ignored", parsed={"a": 1, "b": 2}), ScoreContext())
    assert s.value == 1.0


def test_json_match_not_measured_paths():
    assert run("json_match", case(), "{}").value is None
    s = run("json_match", case(reference="not json at all"), "{}")
    assert s.value is None and "reference is not JSON" in s.reason
    with pytest.raises(ScorerError, match="mode"):
        build_scorer("json_match", mode="fuzzy")
    with pytest.raises(ScorerError, match="threshold: expected a number, got 'high'"):
        build_scorer("json_match", threshold="high")


# ---------------------------------------------------------------- python


def test_python_scorer_all_return_kinds(tmp_path, monkeypatch):
    (tmp_path / "my_checks.py").write_text(textwrap.dedent("""
        from rung.core import Score
        def mentions_ref(case, answer):
            return case.reference.lower() in answer.text.lower()
        def length_share(case, answer):
            return min(1.0, len(answer.text) / 10)
        def nothing(case, answer):
            return None
        def custom(case, answer):
            return Score("tone", 0.25, reason="too curt")
        def bad(case, answer):
            return "yes"
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    c = case(reference="Paris")
    s = run("python", c, "It is paris", function="my_checks:mentions_ref")
    assert s.value == 1.0 and s.name == "task_success" and s.details["function"] == "my_checks:mentions_ref"
    assert run("python", c, "Lyon", function="my_checks:mentions_ref").value == 0.0
    assert run("python", c, "12345", function="my_checks:length_share", name="brevity").value == 0.5
    assert run("python", c, "x", function="my_checks:nothing").value is None
    s = run("python", c, "x", function="my_checks:custom")
    assert (s.name, s.value, s.reason) == ("tone", 0.25, "too curt")
    with pytest.raises(ScorerError, match="returned str"):
        build_scorer("python", function="my_checks:bad").score(c, Answer(text="x"), ScoreContext())
    with pytest.raises(ScorerError, match="has no attribute"):
        build_scorer("python", function="my_checks:missing")
    with pytest.raises(ScorerError, match="module.path:function"):
        build_scorer("python", function="my_checks")


# ---------------------------------------------------------------- schema


TRIAGE = {
    "type": "object",
    "properties": {
        "intent": {"type": "string", "enum": ["refund", "billing"]},
        "items": {"type": "array",
                  "items": {"type": "object", "properties": {"qty": {"type": "integer", "minimum": 1}}}},
    },
    "required": ["intent"],
    "additionalProperties": False,
}


def schema_ctx() -> ScoreContext:
    from pydantic import BaseModel, Field

    class Order(BaseModel):
        sku: str
        qty: int = Field(ge=1)

    return ScoreContext(schemas={"triage": TRIAGE, "order": Order})


def test_schema_valid_invalid_and_malformed():
    ctx = schema_ctx()
    c = case(schema="triage")
    assert run("schema", c, '```json\n{"intent": "refund", "items": [{"qty": 2}]}\n```', ctx).value == 1.0
    s = run("schema", c, '{"intent": "refund", "items": [{"qty": 0}]}', ctx)
    assert s.value == 0.0 and s.name == "schema_valid"
    assert s.reason.startswith("$.items[0].qty:") and "minimum" in s.reason
    s = run("schema", c, '{"intent": "refund", "extra": 1}', ctx)
    assert s.value == 0.0 and "extra" in s.reason
    s = run("schema", c, '{"intent": "refund",', ctx)
    assert s.value == 0.0 and s.reason.startswith("not JSON:")


def test_schema_pydantic_model_and_parsed():
    ctx = schema_ctx()
    c = case(schema="order")
    assert run("schema", c, 'Order: {"sku": "A1", "qty": 3}', ctx).value == 1.0
    s = run("schema", c, '{"sku": "A1", "qty": "lots"}', ctx)
    assert s.value == 0.0 and s.reason.startswith("$.qty:")
    (s,) = build_scorer("schema").score(c, Answer(text="garbage", parsed={"sku": "B", "qty": 1}), ctx)
    assert s.value == 1.0 and s.details["source"] == "parsed"


def test_schema_no_schema_and_unknown_schema():
    ctx = schema_ctx()
    assert build_scorer("schema").score(case(), Answer(text="{}"), ctx) == []
    s = run("schema", case(schema="tirage"), "{}", ctx)
    assert s.value is None and "'tirage'" in s.reason and "triage" in s.reason


# ---------------------------------------------------------------- loading schemas from rung.yaml


def test_load_schemas_file_yaml_and_pydantic(tmp_path):
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "triage.json").write_text(json.dumps(TRIAGE))
    (tmp_path / "schemas" / "ticket.yaml").write_text("type: object\nrequired: [id]\n")
    (tmp_path / "proj_models.py").write_text(
        "from pydantic import BaseModel\nclass Ticket(BaseModel):\n    id: int\nNOT_A_MODEL = 3\n")
    (tmp_path / "rung.yaml").write_text(
        "schemas:\n  triage: schemas/triage.json\n  ticket: schemas/ticket.yaml\n  model: proj_models:Ticket\n")
    schemas = load_schemas(load_config(tmp_path))
    assert schemas["triage"] == TRIAGE
    assert schemas["ticket"]["required"] == ["id"]
    assert schemas["model"].__name__ == "Ticket"
    ctx = ScoreContext(schemas=schemas)
    assert run("schema", case(schema="model"), '{"id": 7}', ctx).value == 1.0
    assert run("schema", case(schema="ticket"), '{"name": 7}', ctx).value == 0.0


@pytest.mark.parametrize("files, ref, match", [
    ({}, "schemas/missing.json", r"schemas\.s: .*missing\.json: no such file"),
    ({"bad.json": '{"type": "object",\n "required": [}'}, "bad.json", r"bad\.json:2: not valid JSON"),
    ({"list.json": "[1, 2]"}, "list.json", "must be an object"),
    ({"wrong.json": '{"type": "objekt"}'}, "wrong.json", r"invalid JSON Schema at type"),
    ({}, "no_such_module_xyz:Model", "cannot import module 'no_such_module_xyz'"),
    ({"m.py": "X = 1\n"}, "m:X", "not a pydantic model class"),
    ({"m2.py": "X = 1\n"}, "m2:Y", "has no attribute 'Y'"),
])
def test_load_schemas_errors_name_the_problem(tmp_path: Path, files, ref, match):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "rung.yaml").write_text(f"schemas:\n  s: {ref}\n")
    with pytest.raises(ConfigError, match=match) as e:
        load_schemas(load_config(tmp_path))
    assert "rung.yaml: schemas.s" in str(e.value)


# ---------------------------------------------------------------- usage


def test_usage_latency_tokens_and_cost():
    ctx = ScoreContext(price_in_per_1k=0.5, price_out_per_1k=1.5)
    answer = Answer(text="hi", tokens_in=1200, tokens_out=300, timings_ms={"generate": 80.0, "total": 95.0})
    scores = {s.name: s for s in build_scorer("usage").score(case(), answer, ctx)}
    assert scores["latency_ms"].value == 95.0
    assert scores["tokens_in"].value == 1200 and scores["tokens_out"].value == 300
    assert scores["cost"].value == pytest.approx(1.2 * 0.5 + 0.3 * 1.5)
    assert not any(s.higher_is_better for s in scores.values())
    (latency, *_rest) = build_scorer("usage").score(case(), Answer(text="hi"), ctx)
    assert latency.name == "latency_ms" and latency.value is None
