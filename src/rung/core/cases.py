"""Case files: eval cases (or labelled requests) from JSONL, YAML or a folder of those.

`load_cases(path)` reads every case and validates it with a pydantic model. Nothing is
half-loaded: all problems (up to MAX_ERRORS) are collected first and raised as one SuiteError
whose lines each name the file, the line and the field, e.g.

    cases.jsonl:17: field 'should_refuse': expected true/false, got 'yes'

rung.evals.suite.load_suite wraps it into a named Suite; the pipeline's refusal gate reads its
labelled examples with it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from rung.core.request import Case
from rung.errors import SuiteError, did_you_mean
from rung.yamlfile import line_of, load_with_nodes, syntax_error

MAX_ERRORS = 20
SUFFIXES = (".jsonl", ".yaml", ".yml")


# ---------------------------------------------------------------- validation model

class _MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: StrictStr


class _CaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: Any
    input: StrictStr | None = None
    messages: list[_MessageIn] | None = None
    reference: Any = None
    should_refuse: StrictBool | None = None
    sources: list[StrictStr] = Field(default_factory=list)
    schema_: StrictStr | None = Field(None, alias="schema")
    tags: list[StrictStr] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _id(cls, v: Any) -> str:
        if isinstance(v, bool) or not isinstance(v, (str, int)) or not str(v).strip():
            raise ValueError(f"expected a non-empty string, got {_short(v)}")
        return str(v)

    @field_validator("input")
    @classmethod
    def _input(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("is empty; a case needs a question to send to the model")
        return v

    @field_validator("messages")
    @classmethod
    def _messages(cls, v: list[_MessageIn] | None) -> list[_MessageIn] | None:
        if v is not None:
            if not v:
                raise ValueError("expected at least one message")
            if v[-1].role != "user":
                raise ValueError(f"the last message must have role 'user', got {v[-1].role!r}")
            if not v[-1].content.strip():
                raise ValueError("the last (user) message is empty; a case needs a question to send")
        return v

    @model_validator(mode="after")
    def _one_form(self) -> _CaseIn:
        if (self.input is None) == (self.messages is None):
            both = "both" if self.input is not None else "neither"
            raise ValueError(f"a case needs exactly one of 'input' or 'messages' (got {both})")
        return self

    def to_case(self, file: str, line: int) -> Case:
        ref = self.reference
        if ref is not None and not isinstance(ref, str):
            ref = json.dumps(ref, sort_keys=True, ensure_ascii=False)
        return Case(
            id=self.id,
            input=self.input,
            messages=[m.model_dump() for m in self.messages] if self.messages is not None else None,
            reference=ref,
            should_refuse=self.should_refuse,
            sources=list(self.sources),
            schema=self.schema_,
            tags=list(self.tags),
            metadata=json.loads(json.dumps(self.metadata, default=str)),
            file=file,
            line=line,
        )


_KEYS = ["id", "input", "messages", "reference", "should_refuse", "sources", "schema", "tags", "metadata"]

_EXPECTED = {
    "missing": "missing required field",
    "bool_type": "expected true/false",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
}


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def _field_name(loc: tuple[Any, ...]) -> str:
    out = ""
    for p in loc:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


def _describe(err: Mapping[str, Any]) -> str:
    """One pydantic error as "field 'x': expected ..., got ..."."""
    loc = tuple(err["loc"])
    name = _field_name(loc)
    etype = err["type"]
    if etype == "extra_forbidden":
        key = str(loc[-1])
        options = _KEYS if len(loc) == 1 else ["role", "content"]
        hint = did_you_mean(key, options) or f"; expected one of: {', '.join(options)}"
        return f"unknown field {name!r}{hint}"
    if etype == "missing":
        return f"missing required field {name!r}"
    if etype in ("value_error", "assertion_error"):
        msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        return f"field {name!r}: {msg}" if name else msg
    expected = _EXPECTED.get(etype)
    if expected is None:
        msg = err["msg"]
        expected = "expected " + msg.removeprefix("Input should be ") if msg.startswith("Input should be") else msg
    got = f", got {_short(err['input'])}" if "input" in err else ""
    return f"field {name!r}: {expected}{got}"


# ---------------------------------------------------------------- reading files

@dataclass
class _Collector:
    errors: list[str] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)  # id -> "file:line"

    @property
    def full(self) -> bool:
        return len(self.errors) >= MAX_ERRORS

    def error(self, where: str, msg: str) -> None:
        if not self.full:
            self.errors.append(f"{where}: {msg}")

    def add(self, data: Any, file: str, line: int, line_of: Any = None) -> None:
        """Validate one raw case; line_of(loc) gives the line of a field (YAML) or None."""
        where = f"{file}:{line}"
        if not isinstance(data, dict):
            self.error(where, f"expected a case (a mapping with id, input, ...), got {type(data).__name__}")
            return
        try:
            parsed = _CaseIn.model_validate(data)
        except ValidationError as e:
            for err in e.errors():
                at = line_of(tuple(err["loc"])) if line_of else None
                self.error(f"{file}:{at or line}", _describe(err))
            return
        if parsed.id in self.seen:
            self.error(where, f"duplicate id {parsed.id!r} (first defined at {self.seen[parsed.id]})")
            return
        self.seen[parsed.id] = where
        self.cases.append(parsed.to_case(file, line))


def _read_text(path: Path, shown: str, out: _Collector) -> str | None:
    """The file's text, or None once the problem (`file:line: not valid UTF-8 ...`, unreadable)
    is recorded."""
    from rung.fileio import read_text

    try:
        return read_text(path, SuiteError, shown)
    except SuiteError as e:
        if not out.full:
            out.errors.append(str(e))
        return None


def _read_jsonl(path: Path, shown: str, out: _Collector) -> None:
    content = _read_text(path, shown, out)
    if content is None:
        return
    for n, raw in enumerate(content.split("\n"), start=1):
        if out.full:
            return
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            out.error(f"{shown}:{n}", f"not valid JSON: {e.msg} (column {e.colno})")
            continue
        out.add(data, shown, n)


def _read_yaml(path: Path, shown: str, out: _Collector) -> None:
    text = _read_text(path, shown, out)
    if text is None:
        return
    try:
        data, root = load_with_nodes(text)
    except yaml.YAMLError as e:
        where, problem = syntax_error(e, shown)
        out.error(where, f"not valid YAML: {problem}")
        return
    if data is None:
        return
    assert root is not None  # a document that is not empty has a node
    items_node = root
    if isinstance(data, dict):
        extra = sorted(set(data) - {"cases"})
        if "cases" not in data or extra:
            key = extra[0] if extra else "(none)"
            hint = did_you_mean(str(key), ["cases"])
            out.error(f"{shown}:1", f"expected a list of cases or a mapping with only the key 'cases', "
                                    f"got key {key!r}{hint}")
            return
        data = data["cases"]
        items_node = next(v for k, v in root.value if k.value == "cases")
        if data is None:
            return
    if not isinstance(data, list):
        out.error(f"{shown}:{items_node.start_mark.line + 1}", f"expected a list of cases, got {type(data).__name__}")
        return
    for item, node in zip(data, items_node.value):
        if out.full:
            return
        out.add(item, shown, node.start_mark.line + 1, line_of=lambda loc, node=node: line_of(node, loc))


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*")
                      if p.is_file() and p.suffix in SUFFIXES
                      and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if path.suffix not in SUFFIXES:
        raise SuiteError(f"{path}: unsupported suite file type {path.suffix!r}; expected .jsonl, .yaml or .yml")
    return [path]


def load_cases(path: str | Path) -> list[Case]:
    """Every case of a JSONL file, a YAML file or a folder of those (sorted, recursive).

    Raises SuiteError listing every bad case (file:line: field: what was expected).
    """
    p = Path(path)
    if not p.exists():
        raise SuiteError(f"{p}: no such suite file or folder")
    files = _files(p)
    if not files:
        raise SuiteError(f"{p}: folder has no case files (*.jsonl, *.yaml, *.yml)")
    out = _Collector()
    for f in files:
        if out.full:
            break
        reader = _read_jsonl if f.suffix == ".jsonl" else _read_yaml
        reader(f, str(f), out)
    if out.errors:
        if len(out.errors) == 1:
            raise SuiteError(out.errors[0])
        more = f" (stopped at the first {MAX_ERRORS})" if out.full else ""
        head = f"{p}: {len(out.errors)} problems{more}:"
        raise SuiteError("\n".join([head, *out.errors]))
    if not out.cases:
        raise SuiteError(f"{p}: no cases (an empty suite cannot be evaluated)")
    return out.cases
