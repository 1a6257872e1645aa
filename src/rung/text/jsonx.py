"""Pulling one JSON value out of a model's answer.

Models wrap JSON in prose ("Here is the result: {...}") or in a fenced ```json block. Every
scorer that reads JSON (json_match, schema) goes through `extract_json`, so they agree on what
counts as "the answer's JSON". Order of attempts:

1. the whole text (stripped) is JSON;
2. the first fenced block (```json ... ``` or ``` ... ```) is JSON;
3. the first `{` or `[` from which a complete JSON value decodes (text around it is ignored).

When nothing decodes, `JSONExtractError` carries the parser's message for the most likely
candidate (the fenced block, else the text from the first brace), e.g.
"Expecting ',' delimiter at line 1 column 18".
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

_FENCE = re.compile(r"```[ \t]*(?:json5?|JSON)?[ \t]*\r?\n?(.*?)```", re.DOTALL)
_MAX_STARTS = 200  # brace positions tried in step 3; enough for any real answer


class JSONExtractError(ValueError):
    """The text holds no decodable JSON value; str(e) is the parse error."""


def extract_json(text: str) -> Any:
    """The JSON value in `text` (see the module doc); raises JSONExtractError."""
    stripped = (text or "").strip()
    if not stripped:
        raise JSONExtractError("empty answer")
    decoder = json.JSONDecoder()

    first_error: str | None = None
    try:
        return json.loads(stripped)
    except json.JSONDecodeError as e:
        whole_error = _describe(e)

    fence = _FENCE.search(stripped)
    if fence:
        block = fence.group(1).strip()
        try:
            return json.loads(block)
        except json.JSONDecodeError as e:
            first_error = _describe(e)

    starts = [m.start() for m in re.finditer(r"[{\[]", stripped)][:_MAX_STARTS]
    for pos in starts:
        try:
            value, _ = decoder.raw_decode(stripped, pos)
        except json.JSONDecodeError as e:
            if first_error is None:
                first_error = _describe(e, offset=pos, text=stripped)
            continue
        if isinstance(value, (dict, list)):
            return value
    if first_error is None:
        first_error = whole_error if starts else "no JSON object or array found"
    raise JSONExtractError(first_error)


def _describe(e: json.JSONDecodeError, offset: int = 0, text: str | None = None) -> str:
    """The decoder's message with line/column relative to where decoding started."""
    if text is None or offset == 0:
        return f"{e.msg} at line {e.lineno} column {e.colno}"
    segment = text[offset:e.pos]
    line = segment.count("\n") + 1
    col = len(segment) - (segment.rfind("\n") + 1) + 1
    return f"{e.msg} at line {line} column {col}"


def to_jsonable(value: Any) -> Any:
    """A pydantic model (or anything with model_dump) as plain JSON data; other values as is."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    return value


def json_objects(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The JSON objects among `lines` (JSONL, a log, a child process's stdout); lines that are
    not a JSON object (blank, partial, prose) are skipped."""
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            yield value
