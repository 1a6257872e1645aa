"""Repairing trivially broken JSON in a model's answer.

`repair_json(text)` fixes only what is clearly a formatting slip, never the content:

- a ```json code fence around the value, text before or after it;
- trailing commas before } or ];
- single-quoted keys and strings ('a' -> "a"), smart quotes used as quotes;
- Python literals True / False / None -> true / false / null; unquoted keys ({a: 1});
- raw newlines and tabs inside strings (escaped);
- missing closing braces / brackets at the end (the answer stopped before closing).

It does not close an unterminated string (the answer was cut off mid-text: asking again is
better than keeping half a sentence), invent missing values, or fix numbers. The result says
what it changed (`fixes`) or why it gave up (`error`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

_FENCE = re.compile(r"```[ \t]*(?:json5?|JSON)?[ \t]*\r?\n?(.*?)(?:```|\Z)", re.DOTALL)
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_PY_LITERALS = {"True": "true", "False": "false", "None": "null"}
_JSON_LITERALS = {"true", "false", "null"}
# opening quote -> the characters that close it
_QUOTES = {
    '"': '"',
    "\u201c": "\u201d\u201c\"", "\u201d": "\u201d\u201c\"", "\u201e": "\u201d\u201c\"", "\u201f": "\u201d\u201c\"",
    "'": "'",
    "\u2018": "\u2019\u2018'", "\u2019": "\u2019\u2018'", "\u201a": "\u2019\u2018'", "\u201b": "\u2019\u2018'",
}
_CLOSERS = {"{": "}", "[": "]"}
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


@dataclass
class Repaired:
    """The repaired JSON text (None when it could not be repaired), the fixes applied, or why not."""

    text: str | None
    fixes: list[str] = field(default_factory=list)
    error: str | None = None


class _Fail(Exception):
    pass


def repair_json(text: str) -> Repaired:
    """The JSON value in `text`, repaired (see the module doc)."""
    s = (text or "").strip()
    if not s:
        return Repaired(None, error="empty answer")
    fixes: list[str] = []
    fence = _FENCE.search(s)
    if fence and re.search(r"[{\[]", fence.group(1)):
        region = fence.group(1)
        fixes.append("removed code fence")
        outside = (s[:fence.start()] + s[fence.end():]).strip()
    else:
        region, outside = s, ""
    start = re.search(r"[{\[]", region)
    if start is None:
        return Repaired(None, fixes, "no JSON object or array found")
    if region[:start.start()].strip() or outside:
        fixes.append("removed text around the JSON")
    scanner = _Scanner(region, start.start())
    try:
        out = scanner.run()
    except _Fail as e:
        return Repaired(None, fixes + scanner.fixes, str(e))
    if region[scanner.end:].strip() and "removed text around the JSON" not in fixes:
        fixes.append("removed text around the JSON")
    fixes += scanner.fixes
    try:
        json.loads(out)
    except json.JSONDecodeError as e:
        return Repaired(None, fixes, f"{e.msg} at character {e.pos}")
    return Repaired(out, fixes)


class _Scanner:
    """Copies one JSON-like value from s[pos:] into valid JSON syntax, noting what it changed."""

    def __init__(self, s: str, pos: int) -> None:
        self.s, self.i, self.end = s, pos, pos
        self.out: list[str] = []
        self.stack: list[str] = []
        self.fixes: list[str] = []

    def fix(self, what: str) -> None:
        if what not in self.fixes:
            self.fixes.append(what)

    def run(self) -> str:
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c in "{[":
                self.stack.append(c)
                self.out.append(c)
                self.i += 1
            elif c in "}]":
                self._close(c)
                if not self.stack:
                    self.end = self.i
                    return "".join(self.out)
            elif c in _QUOTES:
                self._string(c)
            elif c in ",:" or c.isspace():
                self.out.append(c)
                self.i += 1
            elif c == "-" or c.isdigit():
                m = _NUMBER.match(s, self.i)
                if not m:
                    raise _Fail(f"bad number at character {self.i}")
                self.out.append(m.group())
                self.i = m.end()
            elif c.isalpha() or c == "_":
                self._word()
            else:
                raise _Fail(f"unexpected {c!r} at character {self.i}")
        return self._finish()

    def _drop_trailing_comma(self) -> None:
        j = len(self.out) - 1
        while j >= 0 and self.out[j].isspace():
            j -= 1
        if j >= 0 and self.out[j] == ",":
            del self.out[j]
            self.fix("removed trailing comma")

    def _close(self, c: str) -> None:
        if not self.stack or _CLOSERS[self.stack[-1]] != c:
            raise _Fail(f"unexpected {c!r} at character {self.i}")
        self._drop_trailing_comma()
        self.stack.pop()
        self.out.append(c)
        self.i += 1

    def _string(self, quote: str) -> None:
        s, closers = self.s, _QUOTES[quote]
        if quote != '"':
            self.fix("replaced single quotes" if quote == "'" else "replaced smart quotes")
        single = quote not in '"\u201c\u201d\u201e\u201f'
        buf = ['"']
        j = self.i + 1
        while j < len(s):
            ch = s[j]
            if ch == "\\" and j + 1 < len(s):
                nxt = s[j + 1]
                buf.append("'" if (single and nxt == "'") else ch + nxt)
                j += 2
                continue
            if ch in closers:
                buf.append('"')
                self.out.append("".join(buf))
                self.i = j + 1
                return
            if ch == '"':
                buf.append('\\"')
            elif ch in _ESCAPES or ord(ch) < 0x20:
                buf.append(_ESCAPES.get(ch, f"\\u{ord(ch):04x}"))
                self.fix("escaped control character in string")
            else:
                buf.append(ch)
            j += 1
        raise _Fail(f"unterminated string starting at character {self.i}")

    def _word(self) -> None:
        m = _WORD.match(self.s, self.i)
        assert m is not None  # the caller saw a letter or "_"
        word = m.group()
        rest = self.s[m.end():].lstrip()
        if rest.startswith(":") and self.stack and self.stack[-1] == "{":
            self.out.append(json.dumps(word))
            self.fix("quoted keys")
        elif word in _PY_LITERALS:
            self.out.append(_PY_LITERALS[word])
            self.fix("replaced Python literals")
        elif word in _JSON_LITERALS:
            self.out.append(word)
        else:
            raise _Fail(f"unexpected word {word!r} at character {self.i}")
        self.i = m.end()

    def _finish(self) -> str:
        """The text ended before the value closed: close what is open (not a dangling key)."""
        self._drop_trailing_comma()
        last = "".join(self.out).rstrip()[-1:]
        if last in (":",):
            raise _Fail("the JSON ends after a key, without its value")
        closing = "".join(_CLOSERS[b] for b in reversed(self.stack))
        self.fix(f"added missing {' '.join(closing)} at the end")
        self.out.append(closing)
        self.end = len(self.s)
        self.stack.clear()
        return "".join(self.out)
