"""Output schemas enforced: repair of broken JSON, bounded retries, early rejection, bookkeeping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel

from rung.config import CandidateConfig, RungConfig
from rung.core import Case
from rung.errors import ConfigError
from rung.models.base import Completion, GenerationParams, GenRequest, Model
from rung.pipeline.jsonrepair import repair_json
from rung.pipeline.structured import STATUSES, SchemaEnforcer, SchemaRejected, enforce_batch, status_counts

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "support-desk"
TRIAGE = json.loads((EXAMPLE / "schemas" / "triage.json").read_text(encoding="utf-8"))
GOOD = {"intent": "shipping", "priority": "normal", "answer": "It ships in 2 days.", "citations": ["shipping-eu"]}
GOOD_TEXT = json.dumps(GOOD)


class ScriptedModel:
    """Test stand-in for rung.models.base.Model: answers each request from a script keyed by the
    request's first user message (a list of answers, one per attempt; the last one repeats) and
    records every generate call."""

    def __init__(self, script: dict[str, list[str | None]]) -> None:
        self.script = script
        self.calls: list[list[GenRequest]] = []

    @property
    def model_id(self) -> str:
        return "test-stand-in"

    def fingerprint(self, adapter: str | None = None) -> str:
        return "stand-in"

    def adapters(self) -> list[str]:
        return []

    def generate(self, requests, progress=None):
        self.calls.append(list(requests))
        out = []
        for n, r in enumerate(requests, 1):
            key = next(m["content"] for m in r.messages if m["role"] == "user")
            attempt = sum(1 for m in r.messages if m["role"] == "assistant")
            answers = self.script[key]
            text = answers[min(attempt, len(answers) - 1)]
            if text is None:
                out.append(Completion("", 5, 0, 0.0, 0.0, self.model_id, finish_reason="error",
                                      error="prompt too long"))
            else:
                out.append(Completion(text, 5, len(text.split()), 0.01, 0.02, self.model_id))
            if progress is not None:
                progress(n, len(requests))
        return out


def _ask(question: str) -> GenRequest:
    return GenRequest.chat([{"role": "system", "content": "Triage."}, {"role": "user", "content": question}],
                        GenerationParams(max_new_tokens=64))


# ---------------------------------------------------------------- repair


@pytest.mark.parametrize(("broken", "fix"), [
    ('```json\n{"a": 1, "b": "x"}\n```', "removed code fence"),
    ('Here is the triage:\n{"a": 1, "b": "x"}\nHope this helps!', "removed text around the JSON"),
    ('{"a": 1, "b": "x",}', "removed trailing comma"),
    ("{'a': 1, 'b': 'x'}", "replaced single quotes"),
    ('{"a": 1, "b": "x", "c": True, "d": False, "e": None}', "replaced Python literals"),
    ('{"a": 1, "b": "x"', "added missing } at the end"),
    ('{"a": 1, "b": "x", "l": [1, 2', "added missing ] } at the end"),
    ("{\u201ca\u201d: 1, \u201cb\u201d: \u201cx\u201d}", "replaced smart quotes"),
    ('{a: 1, b: "x"}', "quoted keys"),
])
def test_repair_each_kind_of_broken_json(broken, fix):
    fixed = repair_json(broken)
    assert fixed.error is None and fix in fixed.fixes
    data = json.loads(fixed.text)
    assert data["a"] == 1 and data["b"] == "x"
    assert data.get("c", True) is True and data.get("d", False) is False and data.get("e") is None


def test_repair_keeps_content_and_gives_up_on_real_damage():
    fixed = repair_json("{'answer': 'say \"hi\"', 'n': [1, 2,],}")
    assert json.loads(fixed.text) == {"answer": 'say "hi"', "n": [1, 2]}
    assert json.loads(repair_json('{"answer": "it\u2019s fine"').text) == {"answer": "it\u2019s fine"}
    assert json.loads(repair_json('{"a": "two\nlines"}').text) == {"a": "two\nlines"}
    assert repair_json('{"answer": "You have 14 da').error.startswith("unterminated string")
    assert "after a key" in repair_json('{"intent": "billing", "priority":').error
    assert repair_json("I cannot answer that.").error == "no JSON object or array found"
    assert repair_json('{"a": maybe}').error.startswith("unexpected word 'maybe'")
    assert repair_json("").error == "empty answer"


# ---------------------------------------------------------------- check


def test_check_states_with_error_paths():
    enf = SchemaEnforcer("triage", TRIAGE, max_retries=2)
    first = enf.check("  " + GOOD_TEXT + "\n")
    assert (first.state, first.parsed, first.errors) == ("valid_first_try", GOOD, [])
    repaired = enf.check("```json\n" + GOOD_TEXT.replace('"', "'") + "\n```")
    assert repaired.state == "repaired" and repaired.parsed == GOOD and json.loads(repaired.text) == GOOD
    assert repaired.fixes == ["removed code fence", "replaced single quotes"]
    bad = enf.check(json.dumps({**GOOD, "priority": "asap"}))
    assert bad.state == "invalid" and bad.parsed is None
    assert bad.error.startswith("$.priority: 'asap' is not one of")
    missing = enf.check('{"intent": "billing"')  # repaired syntax, still missing fields
    assert missing.state == "invalid" and "is a required property" in missing.error
    prose = enf.check("Sorry, I can't classify that.")
    assert prose.state == "invalid" and prose.error == "not JSON: no JSON object or array found"


def test_pydantic_schema_and_config_errors():
    class Ticket(BaseModel):
        intent: Literal["billing", "shipping"]
        urgent: bool

    enf = SchemaEnforcer("ticket", Ticket, max_retries=1)
    assert enf.check('{"intent": "billing", "urgent": False}').state == "repaired"
    assert enf.check('{"intent": "refund", "urgent": true}').error.startswith("$.intent:")
    assert '"billing", "shipping"' in enf.instructions()
    with pytest.raises(ConfigError, match="max_retries must be >= 0"):
        SchemaEnforcer("x", TRIAGE, max_retries=-1)
    with pytest.raises(ConfigError, match="expected a JSON Schema dict or a pydantic model class, got str"):
        SchemaEnforcer("x", "triage.json")  # type: ignore[arg-type]


def test_from_config_uses_the_candidates_schema_and_retries():
    config = RungConfig(schemas={"triage": str(EXAMPLE / "schemas" / "triage.json")})
    config.root = EXAMPLE
    from rung.core.schemas import load_schemas

    schemas = load_schemas(config)
    enf = SchemaEnforcer.from_config(CandidateConfig(schema="triage", schema_retries=3), schemas)
    assert enf is not None and (enf.name, enf.max_retries, enf.schema) == ("triage", 3, TRIAGE)
    assert SchemaEnforcer.from_config(CandidateConfig(), schemas) is None
    with pytest.raises(ConfigError, match="rung.yaml: schemas: no schema named 'nope'"):
        SchemaEnforcer.from_config(CandidateConfig(schema="nope"), schemas)
    text = enf.instructions()
    assert "intent (string, required)" in text and '"urgent"' in text and "citations (array of strings" in text


def test_retry_messages_quote_the_error_and_keep_the_conversation():
    enf = SchemaEnforcer("triage", TRIAGE)
    base = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
    msgs = enf.retry_messages(base, "{bad", ["$.priority: 'asap' is not one of [...]"], truncated=True)
    assert msgs[:2] == base and msgs[2] == {"role": "assistant", "content": "{bad"}
    assert msgs[3]["role"] == "user" and "$.priority: 'asap'" in msgs[3]["content"]
    assert "corrected JSON object only" in msgs[3]["content"] and "cut off" in msgs[3]["content"]


# ---------------------------------------------------------------- the batched driver


def test_enforce_batch_resends_only_invalid_requests_then_rejects():
    wrong = json.dumps({**GOOD, "priority": "asap"})
    model = ScriptedModel({
        "valid": [GOOD_TEXT],
        "fenced": ["Sure:\n```json\n" + GOOD_TEXT + "\n```"],
        "second": ["I think it is about shipping.", GOOD_TEXT],
        "hopeless": [wrong],
    })
    assert isinstance(model, Model)
    enf = SchemaEnforcer("triage", TRIAGE, max_retries=2)
    seen: list[tuple[int, int]] = []
    results = enforce_batch(model, [_ask(q) for q in ("valid", "fenced", "second", "hopeless")], enf,
                            progress=lambda d, t: seen.append((d, t)))

    assert [len(c) for c in model.calls] == [4, 2, 1]  # one generate call per round, invalid only
    valid, fenced, second, hopeless = results
    assert (valid.status, valid.attempts, valid.errors, valid.parsed) == ("first_try", 1, [], GOOD)
    assert (fenced.status, fenced.attempts, fenced.parsed) == ("repaired", 1, GOOD)
    assert fenced.text == json.dumps(GOOD) and "removed code fence" in fenced.fixes
    assert (second.status, second.attempts, second.parsed) == ("retried", 2, GOOD)
    assert second.errors == ["not JSON: no JSON object or array found"]
    assert (hopeless.status, hopeless.attempts, hopeless.parsed) == ("rejected", 3, None)
    assert len(hopeless.errors) == 3 and all(e.startswith("$.priority: 'asap'") for e in hopeless.errors)
    assert hopeless.error == f"schema rejected: triage: invalid after 3 attempts: {hopeless.errors[-1]}"
    assert isinstance(hopeless.rejection(), SchemaRejected) and hopeless.text == wrong
    assert [r.error for r in (valid, fenced, second)] == [None, None, None]
    # usage covers every attempt
    assert hopeless.tokens_in == 15 and len(hopeless.completions) == 3
    # the retry carried the bad answer and its validation error
    retry = model.calls[1][0]
    assert retry.messages[-2] == {"role": "assistant", "content": "I think it is about shipping."}
    assert "no JSON object or array found" in retry.messages[-1]["content"]
    assert retry.params == _ask("x").params

    counts = status_counts(results)
    assert counts == {"first_try": 1, "repaired": 1, "retried": 1, "rejected": 1, "error": 0}
    events = [r.event() for r in results] + [{"type": "prompt", "blocks": {}}]
    assert status_counts(events) == counts
    assert hopeless.event() == {"type": "schema", "schema": "triage", "status": "rejected", "attempts": 3,
                                "errors": hopeless.errors}
    # progress counts generations: 4, then +2, then +1
    assert seen[-1] == (7, 7) and all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))


def test_retry_succeeds_on_the_second_attempt_with_its_own_budget():
    model = ScriptedModel({"q1": ['{"intent": "billing"}', GOOD_TEXT], "q2": ["nope"]})
    tight = SchemaEnforcer("triage", TRIAGE, max_retries=0)
    loose = SchemaEnforcer("triage", TRIAGE, max_retries=1)
    r1, r2 = enforce_batch(model, [_ask("q1"), _ask("q2")], [loose, tight])
    assert (r1.status, r1.attempts, r1.parsed) == ("retried", 2, GOOD)
    assert "is a required property" in r1.errors[0]
    assert (r2.status, r2.attempts) == ("rejected", 1)
    assert [len(c) for c in model.calls] == [2, 1]


def test_generation_errors_are_not_retried():
    model = ScriptedModel({"q": [None]})
    (r,) = enforce_batch(model, [_ask("q")], SchemaEnforcer("triage", TRIAGE, max_retries=3))
    assert (r.status, r.attempts, r.error) == ("error", 1, "generation failed: prompt too long")
    assert len(model.calls) == 1 and set(status_counts([r])) == set(STATUSES)
    with pytest.raises(ValueError, match="2 enforcers for 1 requests"):
        enforce_batch(model, [_ask("q")], [SchemaEnforcer("t", TRIAGE)] * 2)


# ---------------------------------------------------------------- the real embedded model


@pytest.fixture(scope="module")
def local_model():
    from rung.config import ModelConfig
    from rung.models.factory import load_model

    return load_model(ModelConfig(dtype="float32", max_batch_size=4), root=EXAMPLE)


@pytest.mark.slow
def test_embedded_model_triage_through_enforce_batch(local_model):
    enf = SchemaEnforcer("triage", TRIAGE, max_retries=1)
    cases = [Case(id="a", input="My Ember T2 thermostat shows error E4 and the heating is off."),
             Case(id="b", input="I was charged twice for my Vault subscription this month.")]
    system = "You triage support tickets of Havrel Home Devices.\n\n" + enf.instructions()
    requests = [GenRequest.chat([{"role": "system", "content": system}, *c.chat()],
                             GenerationParams(max_new_tokens=48)) for c in cases]
    model = BatchRecorder(local_model)
    results = enforce_batch(model, requests, enf)

    assert len(results) == 2
    for r in results:
        assert r.status in STATUSES and r.attempts == len(r.completions) and 1 <= r.attempts <= 2
        assert r.tokens_out == sum(c.tokens_out for c in r.completions) > 0
        if r.ok:
            assert enf.validate(r.parsed) == [] and json.loads(r.text) == r.parsed
            assert len(r.errors) == r.attempts - 1 and r.error is None
        else:
            assert r.parsed is None and r.error and len(r.errors) == r.attempts
        if r.status in ("first_try", "repaired"):
            assert r.attempts == 1
        if r.status == "rejected":
            assert r.attempts == enf.max_retries + 1 and r.error.startswith("schema rejected: triage:")
    retried = sum(r.attempts > 1 for r in results)
    assert model.batches == ([2, retried] if retried else [2])
    assert sum(status_counts(results).values()) == 2


class BatchRecorder:
    """Wraps the real model and records the size of every generate call (test helper)."""

    def __init__(self, inner) -> None:
        self.inner, self.batches = inner, []

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def fingerprint(self, adapter=None) -> str:
        return self.inner.fingerprint(adapter)

    def adapters(self) -> list[str]:
        return self.inner.adapters()

    def generate(self, requests, progress=None):
        self.batches.append(len(requests))
        return self.inner.generate(requests, progress)


# ---------------------------------------------------------------- constrained decoding


def _walk(grammar, text):
    state = grammar.start()
    for n, ch in enumerate(text):
        state = grammar.feed(state, ch)
        if state is None:
            return n  # where the grammar refused
    return state


def test_grammar_accepts_valid_triage_json_and_refuses_the_rest():
    from rung.models.constrained import JsonGrammar

    g = JsonGrammar.from_schema(TRIAGE)
    good = '{"intent": "shipping", "priority": "normal", "answer": "Soon.", "citations": ["shipping-eu", "faq"]}'
    end = _walk(g, good)
    assert g.done(end) and SchemaEnforcer("triage", TRIAGE).check(good).state == "valid_first_try"
    prefix = '{"intent": "shipping", "priority": "normal", "answer": "'
    assert _walk(g, '{"intent": "shopping"') == len('{"intent": "sh')  # not an enum value
    assert _walk(g, prefix + '"') == len(prefix)  # minLength 1: an empty answer cannot close
    assert _walk(g, prefix + 'a\\n') == len(prefix) + 1  # no backslashes in free strings
    items = prefix + 'ok", "citations": ['
    assert _walk(g, items + '"-x"]}') == len(items) + 1  # pattern: the first character is [a-z0-9]
    assert _walk(g, items + '"a", "a"') == len(items) + 7  # uniqueItems
    # the shortest completion from any point is valid JSON for the schema (bar the pattern's
    # placeholder, which is a valid id)
    for cut in (0, 5, 20, len(prefix) + 1, len(items) + 2):
        state = _walk(g, good[:cut])
        assert json.loads(good[:cut] + g.shortest(state))
    assert g.forced(_walk(g, "{")) == '"intent": "'  # fixed text up to the enum's choice


def test_grammar_rejects_unsupported_schemas():
    from rung.models.constrained import JsonGrammar

    with pytest.raises(ConfigError, match="must be an object with properties"):
        JsonGrammar.from_schema({"type": "array"})
    with pytest.raises(ConfigError, match="property 'qty' has an unsupported type \\(integer\\)"):
        JsonGrammar.from_schema({"type": "object", "properties": {"qty": {"type": "integer"}}})


@pytest.mark.slow
def test_constrained_decoding_with_the_embedded_model(local_model):
    import torch
    from transformers import LogitsProcessorList

    from rung.models.constrained import JsonGrammar

    local_model.load()
    tok, hf = local_model._tok, local_model._model  # the backend's loaded tokenizer and model
    enf = SchemaEnforcer("triage", TRIAGE)
    system = "You triage support tickets.\n\n" + enf.instructions()
    prompts = [local_model.prompt_ids([{"role": "system", "content": system}, {"role": "user", "content": q}])
               for q in ("My thermostat smells of burning plastic!", "Where is my parcel?")]
    enc = tok.pad({"input_ids": prompts}, padding=True, return_tensors="pt")
    budget = 48  # tight on purpose: the processor must still close the JSON
    proc = JsonGrammar.from_schema(TRIAGE).logits_processor(tok, budget)
    with torch.inference_mode():
        out = hf.generate(**enc, max_new_tokens=budget, do_sample=False, pad_token_id=tok.pad_token_id,
                          eos_token_id=tok.eos_token_id, logits_processor=LogitsProcessorList([proc]))
    for row in out[:, enc["input_ids"].shape[1]:].tolist():
        text = tok.decode(row, skip_special_tokens=True)
        outcome = enf.check(text)
        assert outcome.state == "valid_first_try", (text, outcome.errors)
