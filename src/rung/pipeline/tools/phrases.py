"""The canonical phrase library: approved wording by key, put into answers by rung.

The YAML file (rung.yaml `tool_data: {phrases: phrases.yaml}`) maps a key to text (or to
{text, version}). The model writes a marker where the approved wording belongs:

    {{phrase:refund_denied}}     (also [[phrase:refund_denied]] and {phrase:refund_denied})

and `PhraseLibrary.render` replaces each marker with the approved text, verbatim. A marker
naming an unknown key is left out of the answer and reported (`unknown`, `errors`, and a
trace event). The library is also a callable tool (`CALL phrases: refund_denied`) for models
that prefer to look the wording up.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rung.errors import ConfigError
from rung.pipeline.tools.base import ToolError, ToolSpec, argument, clip, load_yaml_entries, normalise_key

_TOOL = "phrases"
MARKER_RE = re.compile(
    r"\{\{\s*phrase\s*:\s*([^{}\n]+?)\s*\}\}"
    r"|\[\[\s*phrase\s*:\s*([^\[\]\n]+?)\s*\]\]"
    r"|\{\s*phrase\s*:\s*([^{}\n]+?)\s*\}"
    r"|\[\s*phrase\s*:\s*([^\[\]\n]+?)\s*\]",
    re.IGNORECASE)
_HOLE = "\x00"


@dataclass(frozen=True)
class Phrase:
    key: str
    text: str
    version: str | None = None
    line: int = 0


@dataclass
class PhraseResult:
    """An answer with its phrase markers replaced."""

    text: str
    used: list[str] = field(default_factory=list)  # keys put in, in order (repeats kept once)
    unknown: list[str] = field(default_factory=list)  # keys of markers that were left out
    errors: list[str] = field(default_factory=list)  # one message per unknown key

    def trace_event(self) -> dict[str, Any] | None:
        """An event for Trace.events (None when the answer had no marker)."""
        if not self.used and not self.unknown:
            return None
        return {"step": "phrases", "used": list(self.used), "unknown": list(self.unknown),
                "errors": list(self.errors)}


class PhraseLibrary:
    """The `phrases` tool and marker renderer."""

    spec = ToolSpec(
        name=_TOOL,
        summary="approved wording by key; better: write the marker {{phrase:KEY}} in your answer",
        signature="{{phrase:<key>}} in the answer (or CALL phrases: <key>)",
        example="{{phrase:refund_denied}}",
        primary="key",
        parameters={
            "type": "object",
            "properties": {"key": {"type": "string", "description": "the phrase key"}},
            "required": ["key"],
            "additionalProperties": False,
        },
    )

    def __init__(self, phrases: list[Phrase], source: str = "") -> None:
        self.source = source
        self._by_key: dict[str, Phrase] = {p.key: p for p in phrases}
        self._normalised: dict[str, str] = {normalise_key(k): k for k in self._by_key}

    @classmethod
    def from_yaml(cls, path: str | Path) -> PhraseLibrary:
        p = Path(path)
        return cls.from_entries(load_yaml_entries(p, "phrases"), str(p))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "") -> PhraseLibrary:
        return cls.from_entries([(str(k), v, 0) for k, v in data.items()], source)

    @classmethod
    def from_entries(cls, entries: list[tuple[str, Any, int]], source: str) -> PhraseLibrary:
        where = source or "phrases"
        phrases: list[Phrase] = []
        for key, value, line in entries:
            version = None
            if isinstance(value, dict):
                extra = sorted(set(value) - {"text", "version"})
                if extra:
                    raise ConfigError(f"{where}:{line}: {key}: unknown field {extra[0]!r}; "
                                      "expected text, version")
                version = None if value.get("version") is None else str(value["version"])
                value = value.get("text")
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{where}:{line}: {key}: expected the approved text (a non-empty string)")
            phrases.append(Phrase(key, value.strip(), version, line))
        return cls(phrases, source)

    def keys(self) -> list[str]:
        return list(self._by_key)

    def find(self, key: str) -> Phrase | None:
        """The phrase for a key (exact, then ignoring case and separators), or None."""
        k = key.strip().strip("'\"`")
        if k in self._by_key:
            return self._by_key[k]
        norm = normalise_key(k)
        return self._by_key[self._normalised[norm]] if norm in self._normalised else None

    def unknown_message(self, key: str) -> str:
        close = difflib.get_close_matches(normalise_key(key), list(self._normalised), n=2, cutoff=0.6)
        hint = (" (did you mean " + " or ".join(repr(self._normalised[c]) for c in close) + "?)") if close else ""
        return f"{_TOOL}: unknown phrase key {key.strip()!r}{hint}"

    def render(self, text: str) -> PhraseResult:
        """`text` with every marker replaced by its approved wording; unknown markers removed."""
        result = PhraseResult(text)

        def substitute(m: re.Match[str]) -> str:
            key = next(g for g in m.groups() if g is not None)
            phrase = self.find(key)
            if phrase is None:
                result.unknown.append(key.strip())
                result.errors.append(self.unknown_message(key))
                return _HOLE
            if phrase.key not in result.used:
                result.used.append(phrase.key)
            return phrase.text

        out = MARKER_RE.sub(substitute, text)
        if _HOLE in out:  # tidy the spaces a removed marker leaves
            out = re.sub(rf"[ \t]*{_HOLE}+[ \t]*(?=[.,;:!?)]|$)", "", out, flags=re.MULTILINE)
            out = re.sub(rf"[ \t]*{_HOLE}+[ \t]*", " ", out)
            out = re.sub(r"(?m)^ +", "", out).strip()
        result.text = out
        return result

    # ------------------------------------------------------------ the Tool protocol

    def parse_text(self, text: str) -> dict[str, Any]:
        words = text.strip().split()
        return {"key": words[0].strip(".,;:'\"`") if words else ""}

    def infer_call(self, text: str) -> dict[str, Any] | None:
        """Claims a nameless "CALL refund_denied" naming a known phrase key."""
        words = text.split()
        key = words[0].strip(".,;:'\"`") if words else ""
        return {"key": key} if key and self.find(key) is not None else None

    def run(self, arguments: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> str:
        key = argument(arguments, "key", _TOOL) or ""
        m = MARKER_RE.fullmatch(key)
        if m:  # "CALL phrases: {{phrase:x}}"
            key = next(g for g in m.groups() if g is not None)
        phrase = self.find(key)
        if phrase is None:
            raise ToolError(self.unknown_message(key))
        return clip(phrase.text)
