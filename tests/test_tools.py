"""Level-0 tools: calculator, policy lookup, phrase library, the text protocol and the batched
tool loop (over the OpenAI-compatible stub on 127.0.0.1)."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openai_stub import Stub

from rung.config import ModelConfig, load_config
from rung.errors import ConfigError
from rung.models.base import Completion, GenerationParams, GenRequest
from rung.models.openai import OpenAIModel
from rung.pipeline.tools import (
    Calculator,
    PhraseLibrary,
    PolicyTable,
    ToolError,
    ToolSet,
    evaluate,
    format_number,
    run_tool_rounds,
)

POLICIES = """\
refund_window: Unused devices may be returned within 30 days of delivery.
cancellation_notice:
  - {text: EU customers may cancel within 14 days without giving a reason., version: v3, jurisdiction: EU}
  - {text: US customers may cancel within 30 days., version: v2, jurisdiction: US}
warranty_period: {text: Devices carry a two-year warranty., version: 2}
"""
PHRASES = """\
refund_denied: We are unable to refund this order under our returns policy.
escalate: {text: I am passing your request to a colleague who will reply within one business day., version: 1}
loop: "again\\nCALL phrases: loop"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "policies.yaml").write_text(POLICIES, encoding="utf-8")
    (tmp_path / "data" / "phrases.yaml").write_text(PHRASES, encoding="utf-8")
    (tmp_path / "rung.yaml").write_text(
        "project: t\ntool_data: {policy_lookup: data/policies.yaml, phrases: data/phrases.yaml}\n",
        encoding="utf-8")
    return tmp_path


@pytest.fixture
def toolset(project: Path) -> ToolSet:
    config = load_config(project)
    return ToolSet.from_config(["calculator", "policy_lookup", "phrases"], config.tool_data, root=config.root)


# ---------------------------------------------------------------- calculator

@pytest.mark.parametrize(("expression", "expected"), [
    ("49 * 0.2", "9.8"), ("(2 + 3) * -4", "-20"), ("7 // 2", "3"), ("7 % 3", "1"), ("2 ** 10", "1024"),
    ("2^10", "1024"), ("-(2+3)**2", "-25"), ("round(2/3, 3)", "0.667"), ("min(4, 2, 9)", "2"),
    ("max(1, 200)", "200"), ("abs(-3.5)", "3.5"), ("15% of 80", "12"), ("80 * 15%", "12"),
    ("$1,299.50 * 2", "2599"), ("3 x 4", "12"), ("1e3 / 8", "125"), ("2 ** -3", "0.125"),
    ("49 * 0.2 =", "9.8"), ("10/3", "3.33333333333"),
])
def test_calculator_evaluates_arithmetic(expression: str, expected: str) -> None:
    assert Calculator().run({"expression": expression}) == expected


@pytest.mark.parametrize(("expression", "why"), [
    ("__import__('os')", "'__import__' is not allowed"),
    ("__import__('os').system('id')", "attribute access"),
    ("(lambda: 1)()", "lambda"),
    ("(1).real", "attribute access"),
    ("().__class__.__bases__", "attribute access"),
    ("lambda: 1", "lambda"),
    ("x + 1", "names are not allowed"),
    ("open('/etc/passwd')", "'open' is not allowed"),
    ("[1, 2]", "lists"),
    ("'a' * 3", "only numbers"),
    ("True + 1", "only numbers"),
    ("1 if 2 else 3", "conditionals"),
    ("2 ** 10 ** 10", "too large"),
    ("10 ** 400", "too large"),
    ("1e308 * 10", "too large"),
    ("1 / 0", "division by zero"),
    ("5 % 0", "division by zero"),
    ("(-8) ** 0.5", "not a real number"),
    ("round(1, 99)", "digits"),
    ("max()", "at least one number"),
    ("1 +", "not an arithmetic expression"),
    ("1" + " + 1" * 200, "longer than"),
])
def test_calculator_refuses_with_a_tool_error(expression: str, why: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(ToolError, match="^calculator: ") as err:
        evaluate(expression)
    assert why in str(err.value)
    assert time.perf_counter() - t0 < 0.05  # refused fast, huge powers never computed


def test_calculator_formats_and_reads_trailing_words() -> None:
    assert format_number(49 * 0.2) == "9.8" and format_number(2.0) == "2" and format_number(7) == "7"
    calc = Calculator()
    assert calc.parse_text("49 * 0.2 to get the discount.") == {"expression": "49 * 0.2"}
    assert calc.parse_text("(3 + 4) * 2 [model=x]") == {"expression": "(3 + 4) * 2"}
    with pytest.raises(ToolError, match="missing argument 'expression'"):
        calc.run({})


def _naughty_strings() -> list[str]:
    spec = importlib.util.find_spec("evals")
    if spec is None or spec.origin is None:
        pytest.skip("the `evals` package (naughty strings) is not installed")
    path = Path(spec.origin).parent / "registry" / "data" / "naughty_strings" / "security.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return [json.loads(line)["completion"] for line in path.read_text(encoding="utf-8").splitlines()]


def test_naughty_strings_never_escape_the_calculator_or_parser(toolset: ToolSet) -> None:
    strings = _naughty_strings()
    assert len(strings) >= 300
    for s in strings:
        try:
            evaluate(s)
        except ToolError:
            pass
        for text in (f"CALL calculator: {s}", f"<tool>{s}</tool>", s):
            for call in toolset.find_calls(text):
                assert toolset.execute(call).name  # errors are carried, never raised


# ---------------------------------------------------------------- policy lookup

def test_policy_lookup_hits_and_jurisdictions(project: Path) -> None:
    table = PolicyTable.from_yaml(project / "data" / "policies.yaml")
    assert table.keys() == ["refund_window", "cancellation_notice", "warranty_period"]
    assert table.run({"key": "refund_window"}) == (
        "refund_window: Unused devices may be returned within 30 days of delivery.")
    assert table.run({"key": "Refund Window"}).startswith("refund_window:")  # case and separators
    assert table.run({"key": "cancellation_notice@EU"}).startswith("cancellation_notice [EU, v3]: EU")
    assert table.run({"key": "cancellation_notice", "jurisdiction": "us"}).startswith(
        "cancellation_notice [US, v2]: US")
    assert "[US, v2]" in table.run({"key": "cancellation_notice"}, {"jurisdiction": "US"})
    assert table.run({"key": "warranty_period"}, {"jurisdiction": "EU"}).startswith("warranty_period [2]:")
    assert table.lookup("refund_window", "EU").text.startswith("Unused")  # global clause applies


def test_policy_lookup_misses_suggest(project: Path) -> None:
    table = PolicyTable.from_yaml(project / "data" / "policies.yaml")
    with pytest.raises(ToolError, match=r"no clause 'refund_windw'; did you mean 'refund_window'\?"):
        table.run({"key": "refund_windw"})
    with pytest.raises(ToolError, match=r"known keys: refund_window, cancellation_notice"):
        table.run({"key": "shipping"})
    with pytest.raises(ToolError, match=r"differs by jurisdiction \(EU, US\); ask e.g. cancellation_notice@EU"):
        table.run({"key": "cancellation_notice"})
    with pytest.raises(ToolError, match="no CA clause for 'cancellation_notice'; it exists for EU, US"):
        table.run({"key": "cancellation_notice@CA"})


@pytest.mark.parametrize(("text", "expected"), [
    ("refund_window", {"key": "refund_window"}),
    ("cancellation_notice@EU", {"key": "cancellation_notice@EU"}),
    ("cancellation_notice, US", {"key": "cancellation_notice", "jurisdiction": "US"}),
    ("cancellation notice EU", {"key": "cancellation notice", "jurisdiction": "EU"}),
    ("cancellation_notice jurisdiction=EU", {"key": "cancellation_notice", "jurisdiction": "EU"}),
    ("refund_window to check the window", {"key": "refund_window"}),
    ('"warranty_period".', {"key": "warranty_period"}),
    ("refund_window: Unused devices may be returned", {"key": "refund_window"}),
])
def test_policy_lookup_reads_line_arguments(project: Path, text: str, expected: dict[str, str]) -> None:
    assert PolicyTable.from_yaml(project / "data" / "policies.yaml").parse_text(text) == expected


def test_policy_file_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("a: ok\nb: {txt: typo}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"p.yaml:2: b: unknown field 'txt' \(did you mean 'text'\?\)"):
        PolicyTable.from_yaml(bad)
    bad.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"p.yaml:1: the policy_lookup file must be a mapping"):
        PolicyTable.from_yaml(bad)
    bad.write_text("a: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        PolicyTable.from_yaml(bad)
    bad.write_text("a:\n  - {text: x, jurisdiction: EU}\n  - {text: y, jurisdiction: EU}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="two clauses for jurisdiction 'EU'"):
        PolicyTable.from_yaml(bad)
    with pytest.raises(ConfigError, match="no such file"):
        PolicyTable.from_yaml(tmp_path / "missing.yaml")


# ---------------------------------------------------------------- phrases

def test_phrases_replaced_and_unknown_reported(project: Path) -> None:
    lib = PhraseLibrary.from_yaml(project / "data" / "phrases.yaml")
    out = lib.render("Sorry. {{phrase:refund_denied}} [[ phrase: Escalate ]] Also {{phrase:refund_deny}}.")
    assert out.text == ("Sorry. We are unable to refund this order under our returns policy. I am passing "
                        "your request to a colleague who will reply within one business day. Also.")
    assert out.used == ["refund_denied", "escalate"]
    assert out.unknown == ["refund_deny"]
    assert out.errors == ["phrases: unknown phrase key 'refund_deny' (did you mean 'refund_denied'?)"]
    assert out.trace_event() == {"step": "phrases", "used": ["refund_denied", "escalate"],
                                 "unknown": ["refund_deny"], "errors": out.errors}
    plain = lib.render("No markers here.")
    assert plain.text == "No markers here." and plain.trace_event() is None
    assert lib.run({"key": "{{phrase:escalate}}"}).startswith("I am passing")
    with pytest.raises(ToolError, match="unknown phrase key 'nope'"):
        lib.run({"key": "nope"})


def test_phrase_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "ph.yaml"
    bad.write_text("ok: fine\nempty: ''\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"ph.yaml:2: empty: expected the approved text"):
        PhraseLibrary.from_yaml(bad)


# ---------------------------------------------------------------- toolset from config

def test_toolset_from_config_and_prompt(toolset: ToolSet) -> None:
    assert toolset.names == ["calculator", "policy_lookup", "phrases"]
    section = toolset.system_prompt_section()
    assert "CALL <tool>: <input>" in section and "TOOL RESULT <tool>" in section
    assert "Example: CALL calculator: 49 * 0.2" in section
    assert "Keys: refund_window, cancellation_notice, warranty_period" in section
    assert "{{phrase:refund_denied}}" in section and "Keys: refund_denied, escalate, loop" in section
    msgs = toolset.add_to_messages([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q"}])
    assert msgs[0]["content"] == "Be brief.\n\n" + section and msgs[1] == {"role": "user", "content": "q"}
    assert toolset.add_to_messages([{"role": "user", "content": "q"}])[0] == {"role": "system", "content": section}
    assert toolset.stop_sequences() == ["TOOL RESULT"]
    empty = ToolSet([])
    assert not empty and empty.system_prompt_section() == "" and empty.find_calls("CALL calculator: 1+1") == []


def test_example_messages_demonstrate_true_calls(toolset: ToolSet) -> None:
    shots = toolset.example_messages()
    assert [m["role"] for m in shots] == ["user", "assistant", "user", "assistant"] * 2
    assert shots[1]["content"] == "CALL calculator: 12 * 7"
    assert shots[2]["content"].startswith("TOOL RESULT calculator: 84\n") and shots[3]["content"] == "12 * 7 = 84."
    assert shots[5]["content"] == "CALL policy_lookup: refund_window"
    assert shots[7]["content"] == "Unused devices may be returned within 30 days of delivery."
    for m in shots[1::4]:  # every demonstrated call parses back to a call that succeeds
        [call] = toolset.find_calls(m["content"])
        assert toolset.execute(call).error is None


def test_toolset_config_errors(project: Path) -> None:
    config = load_config(project)
    with pytest.raises(ConfigError, match=r"unknown tool 'calculater' \(did you mean 'calculator'\?\); known tools"):
        ToolSet.from_config(["calculater"], config.tool_data, root=config.root)
    config.tool_data.pop("phrases")
    with pytest.raises(ConfigError, match=r"tool_data.phrases: not set"):
        ToolSet.from_config(["phrases"], config.tool_data, root=config.root, where=str(config.source))


def test_openai_tools_are_valid_json_schema(toolset: ToolSet) -> None:
    tools = toolset.openai_tools()
    assert [t["function"]["name"] for t in tools] == toolset.names
    for t in tools:
        assert t["type"] == "function" and t["function"]["description"]
        jsonschema.Draft202012Validator.check_schema(t["function"]["parameters"])
    calc = tools[0]["function"]["parameters"]
    jsonschema.validate({"expression": "1+1"}, calc)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"expr": "1+1"}, calc)


# ---------------------------------------------------------------- protocol parsing

@pytest.mark.parametrize(("text", "name", "arguments"), [
    ("CALL calculator: 49 * 0.2", "calculator", {"expression": "49 * 0.2"}),
    ("Sure.\n  call Calculator:   49*0.2   to get the discount", "calculator", {"expression": "49*0.2"}),
    ("```\nCALL calculator(round(2/3, 2)) then answer\n```", "calculator", {"expression": "round(2/3, 2)"}),
    ("**CALL calculator:** 3 x 4", "calculator", {"expression": "3 x 4"}),
    ("- `CALL policy lookup: cancellation_notice@EU`", "policy_lookup", {"key": "cancellation_notice@EU"}),
    ("CALL calculator 5*5", "calculator", {"expression": "5*5"}),
    ("Let me compute that. CALL calculator: 12 * 3 and then answer", "calculator", {"expression": "12 * 3"}),
    ('I will check. <tool>{"name": "calculator", "arguments": {"expression": "1+1"}}</tool> ok',
     "calculator", {"expression": "1+1"}),
    ('<TOOL_CALL> {"name": "policy_lookup", "arguments": "{\\"key\\": \\"refund_window\\"}"}',
     "policy_lookup", {"key": "refund_window"}),
    ("<tool>{'name': 'calculator', 'arguments': {'expression': '2**8'}}</tool>", "calculator",
     {"expression": "2**8"}),
    ('<tool>{"name": "calculator", "arguments": "7*6"}</tool>', "calculator", {"expression": "7*6"}),
    ('<tool>\n```json\n{"name": "calc", "expression": "1+2"}\n```\n</tool>', "calculator", {"expression": "1+2"}),
    ('```json\n{"name": "calculator", "arguments": {"expression": "7*6"}}\n```', "calculator",
     {"expression": "7*6"}),
])
def test_find_calls_both_syntaxes_with_noise(toolset: ToolSet, text: str, name: str,
                                             arguments: dict[str, Any]) -> None:
    [call] = toolset.find_calls(text)
    assert (call.name, call.arguments, call.error) == (name, arguments, None)
    assert toolset.execute(call).error is None


@pytest.mark.parametrize(("text", "name", "arguments"), [
    ("CALL 49 * 0.2 = 0.49.", "calculator", {"expression": "49 * 0.2"}),
    ("CALL 15% of 80", "calculator", {"expression": "15% of 80"}),
    ("CALL cancellation_notice: 30 days.", "policy_lookup", {"key": "cancellation_notice"}),
    ("CALL refund_window@EU", "policy_lookup", {"key": "refund_window@EU"}),
    ("CALL refund_denied", "phrases", {"key": "refund_denied"}),
])
def test_nameless_calls_are_inferred(toolset: ToolSet, text: str, name: str, arguments: dict[str, Any]) -> None:
    # SmolLM2-135M often writes "CALL <input>" without the tool's name
    [call] = toolset.find_calls(text)
    assert (call.name, call.arguments) == (name, arguments)


@pytest.mark.parametrize("text", [
    "Call support: 555-0100, or call us tomorrow.",
    "Call 555 1234 for help.",
    "CALL me maybe",
    "CALL 2024",
    "call 12 * 3",
    "You can recall the order: it ships Monday.",
    "Our agents call calculator: owners first.",
    '{"name": "Ada", "arguments": "none"}',
    "The <tool> shed is open.",
])
def test_find_calls_ignores_ordinary_text(toolset: ToolSet, text: str) -> None:
    assert [c for c in toolset.find_calls(text) if c.error is None] == []


def test_bad_calls_carry_errors(toolset: ToolSet) -> None:
    [broken] = toolset.find_calls('<tool>{"name": "calculator", "arguments": {"expression": "2+"</tool>')
    assert broken.name == "calculator" and broken.error and "could not read the tool call JSON" in broken.error
    [typo] = toolset.find_calls("CALL calculater: 2+2")
    traced = toolset.execute(typo)
    assert traced.result == "" and traced.error
    assert "unknown tool 'calculater' (did you mean 'calculator'?)" in traced.error
    [div] = toolset.find_calls("CALL calculator: 1/0")
    call = toolset.execute(div)
    assert call.error == "calculator: division by zero in '1/0'" and call.duration_ms >= 0


def test_strip_calls_removes_calls_and_invented_results(toolset: ToolSet) -> None:
    text = "First. CALL calculator: 2+2\nTOOL RESULT calculator: 5\nSo it is 4."
    assert toolset.strip_calls(text) == "First.\nSo it is 4."
    assert toolset.strip_calls('Check <tool>{"name": "calculator", "arguments": "1"}</tool> done') == "Check done"


# ---------------------------------------------------------------- the loop, over HTTP

class BatchRecorder:
    """Delegates to a real model and records the size of every generate() batch."""

    def __init__(self, model: OpenAIModel) -> None:
        self.model = model
        self.batches: list[int] = []

    @property
    def model_id(self) -> str:
        return self.model.model_id

    def fingerprint(self, adapter: str | None = None) -> str:
        return self.model.fingerprint(adapter)

    def adapters(self) -> list[str]:
        return self.model.adapters()

    def generate(self, requests: list[GenRequest], progress: Any = None) -> list[Completion]:
        self.batches.append(len(requests))
        return self.model.generate(requests, progress)


def _model(stub: Stub) -> BatchRecorder:
    cfg = ModelConfig(backend="openai", base_url=stub.url, model=stub.state.model, timeout_s=5.0, max_retries=0)
    return BatchRecorder(OpenAIModel.from_config(cfg))


def _ask(text: str) -> GenRequest:
    return GenRequest.chat([{"role": "system", "content": "tools"}, {"role": "user", "content": text}],
                        GenerationParams(max_new_tokens=64))


def test_loop_batches_only_requests_that_call(stub: Stub, toolset: ToolSet) -> None:
    model = _model(stub)
    requests = [_ask("hello"), _ask("please\nCALL calculator: 49 * 0.2"),
                _ask('<tool>{"name": "policy_lookup", "arguments": {"key": "cancellation_notice"}}</tool>')]
    final, calls = run_tool_rounds(model, requests, toolset, contexts=[None, None, {"jurisdiction": "EU"}])
    assert model.batches == [3, 2] and stub.state.chat_calls == 5
    assert final[0].text == "echo: hello [model=stub-model]" and "tool_rounds" not in final[0].extra
    assert calls[0] == []
    [calc] = calls[1]
    assert (calc.name, calc.arguments, calc.result, calc.error) == (
        "calculator", {"expression": "49 * 0.2"}, "9.8", None)
    [policy] = calls[2]
    assert policy.result.startswith("cancellation_notice [EU, v3]: EU customers may cancel")
    follow_up = next(b for b in stub.state.requests[3:] if "9.8" in b["messages"][-1]["content"])
    assert follow_up["messages"][:2] == [dict(m) for m in requests[1].messages]
    assert follow_up["messages"][2] == {"role": "assistant",
                                        "content": "echo: please\nCALL calculator: 49 * 0.2 [model=stub-model]"}
    assert follow_up["messages"][3]["content"] == (
        "TOOL RESULT calculator: 9.8\nContinue your answer using the result above.")
    assert final[1].text.startswith("echo: TOOL RESULT calculator: 9.8")
    assert final[1].extra["tool_rounds"] == 1 and final[1].extra["tool_rounds_exhausted"] is False
    assert final[1].extra["tool_messages"] == follow_up["messages"][2:]
    prompt_words = sum(len(m["content"].split()) for b in stub.state.requests if
                       b["messages"][1]["content"].startswith("please") for m in b["messages"])
    assert final[1].tokens_in == prompt_words  # usage summed over both rounds


def test_loop_rounds_are_bounded(stub: Stub, toolset: ToolSet) -> None:
    # the phrase "loop" contains a call, so the echoing stub calls it again every round
    model = _model(stub)
    final, calls = run_tool_rounds(model, [_ask("start\nCALL phrases: loop")], toolset, max_rounds=2)
    assert model.batches == [1, 1, 1] and len(calls[0]) == 2
    assert all(c.name == "phrases" and c.result == "again\nCALL phrases: loop" for c in calls[0])
    assert final[0].extra["tool_rounds"] == 2 and final[0].extra["tool_rounds_exhausted"] is True
    assert "CALL" not in final[0].text
    model = _model(stub)
    final, calls = run_tool_rounds(model, [_ask("x\nCALL calculator: 1+1")], toolset, max_rounds=0)
    assert model.batches == [1] and calls == [[]]
    assert final[0].text == "echo: x" and final[0].extra["tool_rounds_exhausted"] is True


def test_loop_returns_errors_and_drops_invented_results(stub: Stub, toolset: ToolSet) -> None:
    model = _model(stub)
    _, calls = run_tool_rounds(model, [_ask("a\nCALL calculator: 1/0\nTOOL RESULT calculator: 5")], toolset)
    assert calls[0][0].error == "calculator: division by zero in '1/0'"
    body = stub.state.requests[1]
    assert body["messages"][2]["content"] == "echo: a\nCALL calculator: 1/0"
    assert body["messages"][3]["content"].startswith("TOOL RESULT calculator: ERROR: division by zero")


class ScriptedModel:
    """TEST STAND-IN (not a model): answers with scripted completions, for a failed generation,
    which the HTTP backend raises instead of returning."""

    model_id = "scripted"

    def __init__(self, completions: list[Completion]) -> None:
        self.completions = completions
        self.calls = 0

    def fingerprint(self, adapter: str | None = None) -> str:
        return "scripted"

    def adapters(self) -> list[str]:
        return []

    def generate(self, requests: list[GenRequest], progress: Any = None) -> list[Completion]:
        self.calls += 1
        return self.completions[: len(requests)]


def test_failed_generation_is_not_a_tool_round(toolset: ToolSet) -> None:
    failed = Completion("CALL calculator: 1+1", 3, 0, 0.0, 0.1, "scripted", finish_reason="error", error="boom")
    model = ScriptedModel([failed])
    final, calls = run_tool_rounds(model, [_ask("q")], toolset)
    assert model.calls == 1 and calls == [[]] and final[0] is failed
    with pytest.raises(ConfigError, match="max_rounds must be >= 0"):
        run_tool_rounds(model, [_ask("q")], toolset, max_rounds=-1)
