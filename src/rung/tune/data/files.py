"""Examples from user files: JSONL (chat or prompt/completion) and HF datasets saved on disk.

One record per JSONL line (or per row of a `datasets.load_from_disk` folder) in one of these forms:

- chat: {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}; the last
  message is the assistant target;
- prompt/completion: {"prompt": "..." or [messages], "completion": "..." or [assistant message]}
  ("chosen" is accepted in place of "completion", as in preference data).

Optional fields: id, label ("positive" | "counter"), rejected (the bad answer a counter-example
replaces), tags, metadata, and the lineage fields annotator, product_version, policy_version,
created_at, which override rung.yaml for that record. Any other field is kept in metadata.

Errors are collected (up to 20) and raised as one DataError whose lines name file:line (for a
HF dataset, path:row, 1-based) and what was expected. Lineage: source "file", ref "<path>:<line>".
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from rung.errors import DataError
from rung.tune.data.sources import LineageDefaults, file_time
from rung.tune.example import Example

MAX_ERRORS = 20
_FORM_KEYS = ["messages", "prompt", "completion", "chosen"]
_KNOWN = ["id", "label", "rejected", "tags", "metadata", "annotator", "product_version",
          "policy_version", "created_at", *_FORM_KEYS]


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: StrictStr


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: StrictStr | int | None = None
    messages: list[_Msg] | None = None
    prompt: StrictStr | list[_Msg] | None = None
    completion: StrictStr | list[_Msg] | None = None
    chosen: StrictStr | list[_Msg] | None = None
    rejected: StrictStr | list[_Msg] | None = None
    label: Literal["positive", "counter"] = "positive"
    tags: list[StrictStr] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    annotator: StrictStr | None = None
    product_version: StrictStr | None = None
    policy_version: StrictStr | None = None
    created_at: StrictStr | None = None


def _text_of(v: str | list[_Msg] | None) -> str | None:
    if v is None or isinstance(v, str):
        return v
    return v[-1].content if v else ""


def _messages(rec: _Record) -> list[dict[str, str]]:
    """The conversation ending with the target; raises ValueError saying what is expected."""
    completion = rec.completion if rec.completion is not None else rec.chosen
    if rec.messages is not None:
        if rec.prompt is not None or completion is not None:
            raise ValueError("use either 'messages' or 'prompt' + 'completion', not both")
        if not rec.messages:
            raise ValueError("field 'messages': expected at least one message")
        if rec.messages[-1].role != "assistant":
            raise ValueError(f"field 'messages': the last message must be the assistant's target, "
                             f"got role {rec.messages[-1].role!r}")
        return [m.model_dump() for m in rec.messages]
    if rec.prompt is None or completion is None:
        missing = "prompt" if rec.prompt is None else "completion"
        raise ValueError(f"missing field {missing!r}: expected 'messages' (chat) or 'prompt' + "
                         "'completion' (prompt/completion)")
    if rec.completion is not None and rec.chosen is not None:
        raise ValueError("use either 'completion' or 'chosen', not both")
    convo = ([{"role": "user", "content": rec.prompt}] if isinstance(rec.prompt, str)
             else [m.model_dump() for m in rec.prompt])
    if not convo:
        raise ValueError("field 'prompt': expected a string or at least one message")
    if isinstance(completion, list):
        if len(completion) != 1 or completion[0].role != "assistant":
            raise ValueError("field 'completion': expected a string or one assistant message")
    return convo + [{"role": "assistant", "content": _text_of(completion) or ""}]


def _describe(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    shown = "" if isinstance(got, (dict, list)) or got is None else f", got {got!r}"[:80]
    return f"field {loc!r}: {msg}{shown}"


def record_to_example(data: Any, ref: str, defaults: LineageDefaults, created: str) -> Example:
    """One raw record -> Example. Raises ValueError with a message naming the field."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object (chat 'messages' or 'prompt' + 'completion'), "
                         f"got {type(data).__name__}")
    data = {k: v for k, v in data.items() if v is not None}  # HF rows: absent columns are None
    if not any(k in data for k in _FORM_KEYS):
        keys = sorted(str(k) for k in data)
        hints = [f"{k!r} (did you mean {m[0]!r}?)" for k in keys
                 if (m := difflib.get_close_matches(k, _KNOWN, n=1, cutoff=0.7)) and m[0] != k]
        hint = f"; unknown keys: {', '.join(hints)}" if hints else f"; got keys {keys}"
        raise ValueError(f"expected 'messages' (chat) or 'prompt' + 'completion'{hint}")
    try:
        rec = _Record.model_validate(data)
    except ValidationError as e:
        raise ValueError("; ".join(_describe(err) for err in e.errors()[:3])) from None
    messages = _messages(rec)
    metadata = dict(rec.metadata)
    metadata.update({k: v for k, v in (rec.model_extra or {}).items()})
    if rec.id is not None:
        metadata["record_id"] = str(rec.id)
    lineage = defaults.lineage("file", ref, rec.created_at or created, annotator=rec.annotator,
                               product_version=rec.product_version, policy_version=rec.policy_version)
    return Example(id=f"file:{ref}", messages=messages, lineage=lineage, label=rec.label,
                   rejected=_text_of(rec.rejected), tags=list(rec.tags),
                   metadata=json.loads(json.dumps(metadata, default=str)))


def _jsonl_records(path: Path, shown: str, errors: list[str]) -> Iterator[tuple[int, Any]]:
    with path.open(encoding="utf-8") as f:
        for n, raw in enumerate(f, start=1):
            text = raw.strip()
            if not text:
                continue
            try:
                yield n, json.loads(text)
            except json.JSONDecodeError as e:
                errors.append(f"{shown}:{n}: not valid JSON: {e.msg} (column {e.colno})")


def _hf_records(path: Path, shown: str) -> Iterator[tuple[int, Any]]:
    import datasets  # heavy: only for HF folders

    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as e:
        raise DataError(f"{shown}: not a dataset saved with `save_to_disk`: {e}") from None
    if isinstance(ds, datasets.DatasetDict):
        splits = list(ds)
        if "train" in ds:
            ds = ds["train"]
        elif len(splits) == 1:
            ds = ds[splits[0]]
        else:
            raise DataError(f"{shown}: a DatasetDict with splits {splits} and no 'train' split; "
                            "save the split to use on its own")
    yield from enumerate(ds, start=1)


def is_hf_dataset(path: Path) -> bool:
    return path.is_dir() and any((path / n).exists() for n in
                                 ("dataset_info.json", "state.json", "dataset_dict.json"))


def examples_from_file(path: Path, defaults: LineageDefaults, shown: str | None = None) -> list[Example]:
    """Every record of a JSONL file or a HF dataset folder; `shown` is the path used in refs and
    errors (as the user wrote it). Raises DataError listing every bad record (file:line)."""
    shown = shown or str(path)
    if not path.exists():
        raise DataError(f"{shown}: no such file or folder")
    if path.is_dir():
        if not is_hf_dataset(path):
            raise DataError(f"{shown}: a folder but not a HF dataset saved with `save_to_disk` "
                            "(no dataset_info.json / state.json / dataset_dict.json)")
        errors: list[str] = []
        records: Iterator[tuple[int, Any]] = _hf_records(path, shown)
        created = file_time(path)
    elif path.suffix == ".jsonl":
        errors = []
        records = _jsonl_records(path, shown, errors)
        created = file_time(path)
    else:
        raise DataError(f"{shown}: unsupported training file {path.suffix!r}; expected .jsonl "
                        "(chat or prompt/completion) or a HF dataset folder")
    out: list[Example] = []
    for n, data in records:
        if len(errors) >= MAX_ERRORS:
            break
        try:
            out.append(record_to_example(data, f"{shown}:{n}", defaults, created))
        except ValueError as e:
            errors.append(f"{shown}:{n}: {e}")
    if errors:
        if len(errors) == 1:
            raise DataError(errors[0])
        more = f" (stopped at the first {MAX_ERRORS})" if len(errors) >= MAX_ERRORS else ""
        raise DataError("\n".join([f"{shown}: {len(errors)} bad records{more}:", *errors]))
    if not out:
        raise DataError(f"{shown}: no records")
    return out
