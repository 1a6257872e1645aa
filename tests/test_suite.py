"""Suite loading: JSONL / YAML / folders; every bad case named by file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rung.core.cases import MAX_ERRORS
from rung.errors import SuiteError
from rung.evals.suite import Suite, cases_by_tag, load_suite

DATA = Path(__file__).parent / "data" / "suites"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(SuiteError) as e:
        load_suite(path)
    return str(e.value)


# ---------------------------------------------------------------- good inputs

def test_jsonl_with_all_fields_comments_and_blank_lines():
    suite = load_suite(DATA / "good.jsonl")
    assert suite.name == "good"
    assert [c.id for c in suite.cases] == ["refund-window", "chat-form", "json-ref", "7"]
    first, chat, js, numeric = suite.cases
    assert first.input == "How many days do I have to ask for a refund?"
    assert first.reference == "30 days" and first.should_refuse is False
    assert first.sources == ["refunds-eu"] and first.tags == ["policy", "eu"]
    assert first.metadata == {"product": "desk"}
    assert (first.file, first.line) == (str(DATA / "good.jsonl"), 2)  # line 1 is a comment
    assert chat.messages[-1] == {"role": "user", "content": "And in France?"}
    assert chat.question == "And in France?" and chat.input is None
    assert chat.line == 4  # a blank line is skipped, its number still counts
    # an object reference is kept as canonical JSON for json_match
    assert json.loads(js.reference) == {"amount": 45, "currency": "EUR"}
    assert js.schema == "refund"
    assert numeric.id == "7"


def test_yaml_list_and_cases_mapping_give_the_same_cases_and_hash(tmp_path):
    body = "- id: a\n  input: hello\n  tags: [x]\n- id: b\n  input: bye\n  should_refuse: true\n"
    as_list = load_suite(write(tmp_path / "list.yaml", body))
    nested = "cases:\n" + "".join("  " + line + "\n" for line in body.splitlines())
    as_map = load_suite(write(tmp_path / "map.yml", nested))
    assert [c.id for c in as_list.cases] == ["a", "b"]
    assert as_list.cases[1].should_refuse is True
    assert as_list.hash == as_map.hash
    assert as_list.cases[1].line == 4 and as_map.cases[1].line == 5


def test_folder_is_read_sorted_and_recursively(tmp_path):
    write(tmp_path / "b.jsonl", '{"id": "b1", "input": "q"}\n')
    write(tmp_path / "a.yaml", "- id: a1\n  input: q\n")
    write(tmp_path / "sub" / "c.jsonl", '{"id": "c1", "input": "q"}\n')
    write(tmp_path / "notes.txt", "not a case file")
    write(tmp_path / ".hidden" / "x.jsonl", '{"id": "hidden", "input": "q"}\n')
    suite = load_suite(tmp_path)
    assert [c.id for c in suite.cases] == ["a1", "b1", "c1"]
    assert suite.name == tmp_path.name
    assert suite.cases[2].file == str(tmp_path / "sub" / "c.jsonl")


def test_hash_follows_content_not_bytes_or_order(tmp_path):
    a = load_suite(write(tmp_path / "a.jsonl", '{"id": "x", "input": "q"}\n{"id": "y", "input": "r"}\n'))
    b = load_suite(write(tmp_path / "b.jsonl", '\n{"input":"r","id":"y"}\n# moved\n{"input": "q", "id": "x"}\n'))
    c = load_suite(write(tmp_path / "c.jsonl", '{"id": "x", "input": "q"}\n{"id": "y", "input": "r!"}\n'))
    assert len(a.hash) == 64
    assert a.hash == b.hash
    assert a.hash != c.hash


def test_tags_and_filter():
    suite = load_suite(DATA / "good.jsonl")
    groups = cases_by_tag(suite.cases)
    assert [c.id for c in groups["policy"]] == ["refund-window", "json-ref"]
    assert [c.id for c in groups[""]] == ["7"]
    eu = suite.filter(tags=["eu"])
    assert [c.id for c in eu.cases] == ["refund-window"]
    assert isinstance(eu, Suite) and eu.hash != suite.hash
    with pytest.raises(SuiteError, match="no case matches"):
        suite.filter(tags=["nope"])


# ---------------------------------------------------------------- bad inputs

def test_bad_json_line_names_file_and_line(tmp_path):
    p = write(tmp_path / "cases.jsonl", '{"id": "a", "input": "q"}\n{"id": "b", "input": \n')
    msg = error_of(p)
    assert msg.startswith(f"{p}:2: not valid JSON")


def test_missing_id(tmp_path):
    p = write(tmp_path / "cases.jsonl", '{"input": "q"}\n')
    assert error_of(p) == f"{p}:1: missing required field 'id'"


def test_wrong_type_says_what_was_expected(tmp_path):
    p = write(tmp_path / "cases.jsonl", "\n" * 16 + '{"id": "a", "input": "q", "should_refuse": "yes"}\n')
    assert error_of(p) == f"{p}:17: field 'should_refuse': expected true/false, got 'yes'"


def test_unknown_key_did_you_mean(tmp_path):
    p = write(tmp_path / "cases.jsonl", '{"id": "a", "input": "q", "refrence": "x"}\n')
    assert error_of(p) == f"{p}:1: unknown field 'refrence' (did you mean 'reference'?)"
    q = write(tmp_path / "other.jsonl", '{"id": "a", "input": "q", "zzz": 1}\n')
    assert "expected one of: id, input, messages" in error_of(q)


def test_input_and_messages_are_exclusive(tmp_path):
    p = write(tmp_path / "cases.jsonl",
              '{"id": "a", "input": "q", "messages": [{"role": "user", "content": "q"}]}\n'
              '{"id": "b"}\n'
              '{"id": "c", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n')
    msg = error_of(p)
    assert f"{p}:1: a case needs exactly one of 'input' or 'messages' (got both)" in msg
    assert f"{p}:2: a case needs exactly one of 'input' or 'messages' (got neither)" in msg
    assert f"{p}:3: field 'messages': the last message must have role 'user', got 'assistant'" in msg


def test_duplicate_id_names_both_locations(tmp_path):
    write(tmp_path / "a.jsonl", '{"id": "dup", "input": "q"}\n')
    write(tmp_path / "b.yaml", "- id: other\n  input: q\n- id: dup\n  input: r\n")
    msg = error_of(tmp_path)
    assert msg == f"{tmp_path / 'b.yaml'}:3: duplicate id 'dup' (first defined at {tmp_path / 'a.jsonl'}:1)"


def test_yaml_errors_point_at_the_line_of_the_field(tmp_path):
    p = write(tmp_path / "cases.yaml",
              "cases:\n"
              "  - id: a\n"
              "    input: fine\n"
              "  - id: b\n"
              "    input: hi\n"
              "    tags: oops\n"
              "  - id: c\n"
              "    messages:\n"
              "      - role: user\n"
              "        content: 3\n")
    msg = error_of(p)
    assert msg.splitlines() == [
        f"{p}: 2 problems:",
        f"{p}:6: field 'tags': expected a list, got 'oops'",
        f"{p}:10: field 'messages[0].content': expected a string, got 3",
    ]


def test_yaml_syntax_error_has_a_line(tmp_path):
    p = write(tmp_path / "cases.yaml", "- id: a\n  input: q\n- id: b\n  input: [unclosed\n")
    msg = error_of(p)
    assert msg.startswith(f"{p}:") and "not valid YAML" in msg
    line = int(msg.split(":")[1])
    assert line >= 4


def test_yaml_mapping_needs_cases_key(tmp_path):
    p = write(tmp_path / "cases.yaml", "case:\n  - id: a\n    input: q\n")
    assert "did you mean 'cases'?" in error_of(p)


def test_empty_file_and_empty_folder(tmp_path):
    assert "no cases" in error_of(write(tmp_path / "empty.jsonl", ""))
    assert "no cases" in error_of(write(tmp_path / "comments.jsonl", "# only a comment\n\n"))
    assert "no cases" in error_of(write(tmp_path / "empty.yaml", "cases: []\n"))
    (tmp_path / "nothing").mkdir()
    assert "no case files" in error_of(tmp_path / "nothing")
    assert "no such suite" in error_of(tmp_path / "missing.jsonl")
    assert "unsupported suite file type" in error_of(write(tmp_path / "cases.csv", "id,input\n"))


def test_every_problem_is_reported_at_once_and_capped(tmp_path):
    lines = [json.dumps({"id": f"c{i}", "input": "q", "tags": "x"}) for i in range(MAX_ERRORS + 5)]
    p = write(tmp_path / "cases.jsonl", "\n".join(lines) + "\n")
    msg = error_of(p).splitlines()
    assert msg[0] == f"{p}: {MAX_ERRORS} problems (stopped at the first {MAX_ERRORS}):"
    assert len(msg) == MAX_ERRORS + 1
    assert msg[1] == f"{p}:1: field 'tags': expected a list, got 'x'"


def test_a_line_that_is_not_an_object(tmp_path):
    p = write(tmp_path / "cases.jsonl", '["id", "a"]\n')
    assert error_of(p) == f"{p}:1: expected a case (a mapping with id, input, ...), got list"


def test_spread_sample_covers_tags_and_is_stable():
    from rung.core import Case
    from rung.evals.suite import spread_sample

    cases = [Case(id=f"a{i}", input="x", tags=["a"]) for i in range(10)] + \
            [Case(id=f"b{i}", input="x", tags=["b"]) for i in range(3)] + \
            [Case(id="c0", input="x", tags=["c"])]
    picked = spread_sample(cases, 6)
    assert [c.id for c in picked] == [c.id for c in spread_sample(cases, 6)]
    assert {c.tags[0] for c in picked} == {"a", "b", "c"}
    assert len(picked) == 6
    assert spread_sample(cases, 100) == cases
