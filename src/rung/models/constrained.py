"""Constrained decoding for the local backend: the model can only write JSON of the schema.

Supported schemas: an object whose properties are strings (with enum, minLength, maxLength),
booleans, or arrays of such strings (minItems, maxItems). Properties are written in the
schema's order, all of them, in one fixed layout: {"a": "x", "b": ["y", "z"], "c": true}.
Free strings may hold any character except a quote, a backslash and control characters; a
`pattern` made of character classes and literals (^[a-z0-9][a-z0-9-]*$) restricts the first and
the other characters; other patterns are left to validation. uniqueItems is enforced. Strings
without maxLength stop at DEFAULT_MAX_LENGTH characters, arrays without maxItems at
DEFAULT_MAX_ITEMS items.

    grammar = JsonGrammar.from_schema(schema)            # ConfigError for unsupported schemas
    proc = grammar.logits_processor(tokenizer, max_new_tokens)
    model.generate(**enc, logits_processor=LogitsProcessorList([proc]), max_new_tokens=...)

The processor (rung.models.json_logits) keeps one automaton per batch row, fed with the
token each row generated, and masks every token the automaton cannot accept. Where the text is
fixed (keys, punctuation) it allows the longest token that matches, as a tokenizer would write
it. When the tokens left are only just enough to close the JSON, it forces the shortest
completion, so a budget-limited answer is still valid JSON (its strings may be shorter). After
the closing brace only end-of-sequence is allowed. A new processor is needed for each
generate() call; the grammar can be made once per schema.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from rung.errors import ConfigError

DEFAULT_MAX_LENGTH = 600  # characters of a free string without maxLength
DEFAULT_MAX_ITEMS = 5  # items of an array without maxItems

# A segment's sub-state is a small tuple; a machine state is (segment index, sub-state).
State = tuple[int, Any]


@dataclass(frozen=True)
class _Literal:
    text: str

    def start(self) -> Any:
        return 0

    def step(self, pos: int, ch: str) -> Any:
        return pos + 1 if pos < len(self.text) and self.text[pos] == ch else None

    def finished(self, pos: int) -> bool:
        return pos == len(self.text)

    def expected(self, pos: int) -> set[str] | None:
        return {self.text[pos]}

    def shortest(self, pos: int) -> str:
        return self.text[pos:]


@dataclass(frozen=True)
class _Enum:
    options: tuple[str, ...]  # JSON-encoded values, e.g. '"low"', 'true'

    def start(self) -> Any:
        return ""

    def step(self, prefix: str, ch: str) -> Any:
        p = prefix + ch
        return p if any(o.startswith(p) for o in self.options) else None

    def finished(self, prefix: str) -> bool:
        return prefix in self.options

    def expected(self, prefix: str) -> set[str] | None:
        return {o[len(prefix)] for o in self.options if o.startswith(prefix) and len(o) > len(prefix)}

    def shortest(self, prefix: str) -> str:
        return min((o for o in self.options if o.startswith(prefix)), key=len)[len(prefix):]


@dataclass(frozen=True)
class _String:
    min_len: int
    max_len: int
    chars: frozenset[str] | None = None  # from a character-class pattern: the characters allowed
    first: frozenset[str] | None = None  # ... and those allowed as the first character

    def start(self) -> Any:
        return (0, 0)  # (phase: 0 before the quote, 1 inside, 2 closed; characters so far)

    def step(self, sub: tuple[int, int], ch: str) -> Any:
        phase, n = sub
        if phase == 0:
            return (1, 0) if ch == '"' else None
        if phase == 1:
            if ch == '"':
                return (2, n) if n >= self.min_len else None
            if ch == "\\" or ord(ch) < 0x20 or n >= self.max_len:
                return None
            allowed = self.first if (n == 0 and self.first is not None) else self.chars
            if allowed is not None and ch not in allowed:
                return None
            return (1, n + 1)
        return None

    def finished(self, sub: tuple[int, int]) -> bool:
        return sub[0] == 2

    def expected(self, sub: tuple[int, int]) -> set[str] | None:
        return {'"'} if sub[0] == 0 else None  # None: free text

    def shortest(self, sub: tuple[int, int]) -> str:
        phase, n = sub
        need = max(0, self.min_len - (n if phase else 0))
        filler = "x"
        if self.chars is not None:
            filler = min(self.chars)
        if need and n == 0 and self.first is not None:
            return ('"' if phase == 0 else "") + min(self.first) + filler * (need - 1) + '"'
        return ('"' if phase == 0 else "") + filler * need + '"'


@dataclass(frozen=True)
class _Array:
    item: _Enum | _String
    min_items: int
    max_items: int
    unique: bool = False

    # sub: (phase, count, item sub, items so far, current item text); phases: open, first
    # (after "["), item, after (an item ended), space (after ","), space_done, closed
    def start(self) -> Any:
        return ("open", 0, None, (), "")

    def step(self, sub: tuple[str, int, Any, tuple[str, ...], str], ch: str) -> Any:
        phase, count, inner, seen, cur = sub
        if phase == "open":
            return ("first", 0, None, (), "") if ch == "[" else None
        if phase == "first" and ch == "]":
            return ("closed", 0, None, (), "") if self.min_items == 0 else None
        if phase in ("first", "space_done"):
            inner, phase, cur = self.item.start(), "item", ""
        if phase == "item":
            nxt = self.item.step(inner, ch)
            if nxt is None:
                return None
            if not self.item.finished(nxt):
                return ("item", count, nxt, seen, cur + ch)
            value = cur + ch
            if self.unique and value in seen:
                return None
            return ("after", count + 1, None, (*seen, value) if self.unique else (), "")
        if phase == "after":
            if ch == "]" and count >= self.min_items:
                return ("closed", count, None, (), "")
            return ("space", count, None, seen, "") if ch == "," and count < self.max_items else None
        if phase == "space":
            return ("space_done", count, None, seen, "") if ch == " " else None
        return None

    def finished(self, sub: tuple) -> bool:
        return sub[0] == "closed"

    def expected(self, sub: tuple) -> set[str] | None:
        phase, count, inner = sub[:3]
        if phase == "open":
            return {"["}
        if phase in ("first", "space_done"):
            first = self.item.expected(self.item.start()) or set()
            return first | ({"]"} if phase == "first" and self.min_items == 0 else set())
        if phase == "item":
            return self.item.expected(inner)
        if phase == "after":
            return ({"]"} if count >= self.min_items else set()) | ({","} if count < self.max_items else set())
        return {" "}

    def shortest(self, sub: tuple) -> str:
        phase, count, inner = sub[:3]
        one = self.item.shortest(self.item.start())
        head = {"open": "[", "item": self.item.shortest(inner) if inner is not None else "",
                "space": " " + one, "space_done": one}.get(phase, "")
        if phase in ("item", "space", "space_done"):
            count += 1
        elif phase in ("open", "first") and self.min_items > 0:
            head, count = head + one, 1
        if phase == "closed":
            return ""
        return head + "".join(", " + one for _ in range(max(0, self.min_items - count))) + "]"


Segment = _Literal | _Enum | _String | _Array


class JsonGrammar:
    """The JSON text a simple object schema allows, as a character automaton."""

    def __init__(self, segments: list[Segment]) -> None:
        self.segments = segments

    @classmethod
    def from_schema(cls, schema: Any) -> JsonGrammar:
        js = schema if isinstance(schema, dict) else schema.model_json_schema()
        props = js.get("properties")
        if js.get("type") != "object" or not isinstance(props, dict) or not props:
            raise ConfigError("constrained decoding: the schema must be an object with properties")
        segs: list[Segment] = [_Literal("{")]
        for i, (key, sub) in enumerate(props.items()):
            segs.append(_Literal((", " if i else "") + json.dumps(key, ensure_ascii=False) + ": "))
            segs.append(_value(key, sub))
        segs.append(_Literal("}"))
        return cls(segs)

    def start(self) -> State:
        return (0, self.segments[0].start())

    def feed(self, state: State | None, text: str) -> State | None:
        """The state after `text`, or None when the grammar does not allow it."""
        for ch in text:
            if state is None:
                return None
            i, sub = state
            if i >= len(self.segments):
                return None
            nxt = self.segments[i].step(sub, ch)
            if nxt is None:
                return None
            state = self._settle(i, nxt)
        return state

    def _settle(self, i: int, sub: Any) -> State:
        seg = self.segments[i]
        if seg.finished(sub):
            i += 1
            return (i, self.segments[i].start()) if i < len(self.segments) else (i, None)
        return (i, sub)

    def done(self, state: State) -> bool:
        return state[0] >= len(self.segments)

    def expected(self, state: State) -> set[str] | None:
        """Characters allowed next; None inside a free string."""
        i, sub = state
        return set() if i >= len(self.segments) else self.segments[i].expected(sub)

    def free_string(self, state: State) -> tuple[_String, int] | None:
        """(the string, characters so far) when `state` is inside a free string (or an array's)."""
        i, sub = state
        seg = self.segments[i] if i < len(self.segments) else None
        if isinstance(seg, _Array) and sub[0] == "item":
            seg, sub = seg.item, sub[2]
        return (seg, sub[1]) if isinstance(seg, _String) and sub[0] == 1 else None

    def forced(self, state: State, limit: int = 48) -> str:
        """The text that must come next, as long as only one character is possible."""
        out = []
        while len(out) < limit and not self.done(state) and self.free_string(state) is None:
            exp = self.expected(state)
            if exp is None or len(exp) != 1:
                break
            ch = next(iter(exp))
            nxt = self.feed(state, ch)
            if nxt is None:
                break
            out.append(ch)
            state = nxt
        return "".join(out)

    def shortest(self, state: State) -> str:
        """The shortest text that completes the JSON from `state`."""
        i, sub = state
        if i >= len(self.segments):
            return ""
        rest = self.segments[i].shortest(sub)
        return rest + "".join(s.shortest(s.start()) for s in self.segments[i + 1:])

    def logits_processor(self, tokenizer: Any, max_new_tokens: int | None = None) -> Any:
        """A transformers logits processor for one generate() call (rung.models.json_logits)."""
        from rung.models.json_logits import JsonLogitsProcessor, token_table

        return JsonLogitsProcessor(self, token_table(tokenizer), max_new_tokens)


def _value(key: str, sub: dict[str, Any]) -> _Enum | _String | _Array:
    t = sub.get("type")
    if isinstance(sub.get("enum"), list):
        return _Enum(tuple(json.dumps(v, ensure_ascii=False) for v in sub["enum"]))
    if t == "string":
        chars, first, least = _class_pattern(sub.get("pattern"))
        return _String(max(int(sub.get("minLength", 0)), least), int(sub.get("maxLength", DEFAULT_MAX_LENGTH)),
                       chars, first)
    if t == "boolean":
        return _Enum(("true", "false"))
    if t == "array" and isinstance(sub.get("items"), dict):
        item = _value(key, sub["items"])
        if isinstance(item, _String | _Enum):
            return _Array(item, int(sub.get("minItems", 0)), int(sub.get("maxItems", DEFAULT_MAX_ITEMS)),
                          bool(sub.get("uniqueItems", False)))
    raise ConfigError(f"constrained decoding: property {key!r} has an unsupported type ({t or 'none'}); "
                      "supported: string, enum, boolean, array of strings")


_CLASS_ESCAPES = {"d": "0123456789", "w": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_",
                  "-": "-", ".": ".", "_": "_", "/": "/", "+": "+", "#": "#", ":": ":"}


def _class_pattern(pattern: Any) -> tuple[frozenset[str] | None, frozenset[str] | None, int]:
    """(allowed characters, allowed first characters, minimum length) of a pattern made of
    character classes and literals with quantifiers, anchored: ^[a-z0-9][a-z0-9-]*$. Other
    patterns (alternation, groups, negated classes) are not enforced: (None, None, 0)."""
    if not isinstance(pattern, str):
        return None, None, 0
    m = re.fullmatch(r"\^((?:\[[^\]^][^\]]*\]|\\.|[A-Za-z0-9_\-#:/])(?:[*+?]|\{\d+(?:,\d*)?\})?)+\$", pattern)
    if not m:
        return None, None, 0
    elements = re.findall(r"(\[[^\]]*\]|\\.|[^*+?{}])([*+?]|\{\d+(?:,\d*)?\})?", pattern[1:-1])
    union: set[str] = set()
    first: frozenset[str] | None = None
    least = 0
    for atom, quant in elements:
        chars = _atom_chars(atom)
        if chars is None:
            return None, None, 0
        union |= chars
        low = 0 if quant in ("*", "?") else int(re.findall(r"\d+", quant)[0]) if quant.startswith("{") else 1
        if first is None and low > 0 and least == 0:
            first = frozenset(chars)
        least += low
    return frozenset(union), first, least


def _atom_chars(atom: str) -> set[str] | None:
    if atom.startswith("\\"):
        return set(_CLASS_ESCAPES.get(atom[1], atom[1] if not atom[1].isalpha() else "")) or None
    if not atom.startswith("["):
        return {atom}
    body, out, i = atom[1:-1], set(), 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            out |= set(_CLASS_ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
        elif i + 2 < len(body) and body[i + 1] == "-":
            out |= {chr(c) for c in range(ord(body[i]), ord(body[i + 2]) + 1)}
            i += 3
        else:
            out.add(body[i])
            i += 1
    return out

