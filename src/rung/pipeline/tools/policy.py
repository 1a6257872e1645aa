"""Policy lookup: the project's table of policy clauses, key -> the exact approved text.

The YAML file (rung.yaml `tool_data: {policy_lookup: policies.yaml}`) maps a key to

    refund_window: "Unused devices may be returned within 30 days."      # plain text
    warranty_period: {text: "...", version: v2, jurisdiction: US}           # with metadata
    cancellation_notice:                                                   # one per jurisdiction
      - {text: "...", version: v3, jurisdiction: EU}
      - {text: "...", version: v2, jurisdiction: US}
      - {text: "..."}                                                      # global fallback

A lookup names a key, optionally qualified with a jurisdiction ("cancellation_notice@EU", or
the `jurisdiction` argument; the request's context supplies a default). Keys match exactly,
then ignoring case and separators ("Refund Window" finds refund_window); a miss suggests the
closest keys in the tool error.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rung.errors import ConfigError
from rung.pipeline.tools.base import ToolError, ToolSpec, argument, clip, load_yaml_entries, normalise_key

_TOOL = "policy_lookup"
_GLOBAL = {"", "global", "all", "any", "*", "default"}
_FIELDS = ("text", "version", "jurisdiction")


@dataclass(frozen=True)
class Clause:
    """One approved clause. jurisdiction None means it applies everywhere."""

    key: str
    text: str
    version: str | None = None
    jurisdiction: str | None = None
    line: int = 0

    def render(self) -> str:
        """The clause as the tool returns it: "key [EU, v3]: text"."""
        tags = [t for t in (self.jurisdiction, self.version) if t]
        return f"{self.key}{' [' + ', '.join(tags) + ']' if tags else ''}: {self.text}"


def _jurisdiction(value: Any) -> str | None:
    text = "" if value is None else str(value).strip()
    return None if text.lower() in _GLOBAL else text


def _clause(key: str, value: Any, where: str, line: int) -> Clause:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        text = str(value).strip()
        if not text:
            raise ConfigError(f"{where}:{line}: {key}: empty clause text")
        return Clause(key, text, line=line)
    if not isinstance(value, dict):
        raise ConfigError(f"{where}:{line}: {key}: expected text or a mapping with {', '.join(_FIELDS)}, "
                          f"got {type(value).__name__}")
    for field_name in value:
        if field_name not in _FIELDS:
            close = difflib.get_close_matches(str(field_name), _FIELDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; expected one of: {', '.join(_FIELDS)}"
            raise ConfigError(f"{where}:{line}: {key}: unknown field {field_name!r}{hint}")
    text = value.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{where}:{line}: {key}: `text` is missing or empty")
    version = value.get("version")
    return Clause(key, text.strip(), None if version is None else str(version),
                  _jurisdiction(value.get("jurisdiction")), line)


class PolicyTable:
    """The `policy_lookup` tool: clauses by key (several per key when they differ by jurisdiction)."""

    spec = ToolSpec(
        name=_TOOL,
        summary="the exact approved text of a policy clause, by key (optionally key@JURISDICTION)",
        signature="CALL policy_lookup: <key>[@<jurisdiction>]",
        example="CALL policy_lookup: refund_window@EU",
        primary="key",
        parameters={
            "type": "object",
            "properties": {
                "key": {"type": "string", "description": "the clause key, e.g. 'refund_window'"},
                "jurisdiction": {"type": "string", "description": "e.g. 'EU' or 'US' (optional)"},
            },
            "required": ["key"],
            "additionalProperties": False,
        },
    )

    def __init__(self, clauses: list[Clause], source: str = "") -> None:
        self.source = source
        self._by_key: dict[str, list[Clause]] = {}
        for c in clauses:
            variants = self._by_key.setdefault(c.key, [])
            if any(v.jurisdiction == c.jurisdiction for v in variants):
                where = f"{source}:{c.line}" if source else c.key
                raise ConfigError(f"{where}: {c.key}: two clauses for jurisdiction "
                                  f"{c.jurisdiction or 'global'!r}")
            variants.append(c)
        self._normalised: dict[str, str] = {normalise_key(k): k for k in self._by_key}

    @classmethod
    def from_yaml(cls, path: str | Path) -> PolicyTable:
        p = Path(path)
        return cls.from_entries(load_yaml_entries(p, "policy_lookup"), str(p))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "") -> PolicyTable:
        return cls.from_entries([(str(k), v, 0) for k, v in data.items()], source)

    @classmethod
    def from_entries(cls, entries: list[tuple[str, Any, int]], source: str) -> PolicyTable:
        clauses: list[Clause] = []
        for key, value, line in entries:
            for item in (value if isinstance(value, list) else [value]):
                clauses.append(_clause(key, item, source or "policy_lookup", line))
        return cls(clauses, source)

    def keys(self) -> list[str]:
        return list(self._by_key)

    def lookup(self, key: str, jurisdiction: str | None = None, *, default_jurisdiction: str | None = None) -> Clause:
        """The clause for `key` (a "key@JUR" form sets the jurisdiction). An explicit jurisdiction
        must exist (or a global clause applies); `default_jurisdiction` (from the request's
        context) is preferred when present. Raises ToolError with suggestions on a miss."""
        key = key.strip().strip("'\"`")
        if "@" in key:
            key, _, qualified = key.partition("@")
            jurisdiction = jurisdiction or qualified
        key = key.strip()
        variants = self._find(key)
        wanted = _jurisdiction(jurisdiction)
        if wanted is None and jurisdiction is not None and str(jurisdiction).strip():  # "@global"
            found = [v for v in variants if v.jurisdiction is None]
            if found:
                return found[0]
        if wanted is not None:
            found = [v for v in variants if (v.jurisdiction or "").lower() == wanted.lower()]
            glob = [v for v in variants if v.jurisdiction is None]
            if found or glob:
                return (found or glob)[0]
            raise ToolError(f"{_TOOL}: no {wanted} clause for {variants[0].key!r}; "
                            f"it exists for {', '.join(_where(variants))}")
        default = _jurisdiction(default_jurisdiction)
        if default is not None:
            found = [v for v in variants if (v.jurisdiction or "").lower() == default.lower()]
            if found:
                return found[0]
        glob = [v for v in variants if v.jurisdiction is None]
        if glob:
            return glob[0]
        if len(variants) == 1 and default is None:
            return variants[0]
        if default is not None:
            raise ToolError(f"{_TOOL}: no {default} clause for {variants[0].key!r}; "
                            f"it exists for {', '.join(_where(variants))}")
        raise ToolError(f"{_TOOL}: {variants[0].key!r} differs by jurisdiction "
                        f"({', '.join(_where(variants))}); ask e.g. {variants[0].key}@{variants[0].jurisdiction}")

    def _find(self, key: str) -> list[Clause]:
        if key in self._by_key:
            return self._by_key[key]
        norm = normalise_key(key)
        if norm in self._normalised:
            return self._by_key[self._normalised[norm]]
        close = difflib.get_close_matches(norm, list(self._normalised), n=3, cutoff=0.6)
        if close:
            hint = "did you mean " + " or ".join(repr(self._normalised[c]) for c in close) + "?"
        else:
            keys = self.keys()
            hint = "known keys: " + ", ".join(keys[:12]) + (" ..." if len(keys) > 12 else "")
        raise ToolError(f"{_TOOL}: no clause {key!r}; {hint}" if key else f"{_TOOL}: empty key; {hint}")

    # ------------------------------------------------------------ the Tool protocol

    def parse_text(self, text: str) -> dict[str, Any]:
        """"refund_window", "refund_window@EU", "refund_window, EU", "refund window EU",
        "refund_window jurisdiction=EU"; trailing words after a known key are ignored."""
        line = (text.strip().splitlines() or [""])[0].strip().rstrip(".?!").strip("`'\"")
        jur: str | None = None
        m = re.search(r"[,;]?\s*\bjurisdiction\s*[=:]\s*[\"']?([\w\-]+)[\"']?", line, re.IGNORECASE)
        if m:
            jur, line = m.group(1), line[: m.start()] + line[m.end():]
        elif "@" not in line and re.search(r"[,;]", line):
            line, _, rest = re.split(r"([,;])", line, maxsplit=1)
            words = rest.split()
            jur = words[0].strip("'\"`") if words else None
        words = line.split()
        for n in range(len(words), 0, -1):
            head = " ".join(words[:n])
            if self._is_key(head.partition("@")[0].rstrip(":,;.")):
                rest = words[n:]
                if jur is None and rest and self._looks_like_jurisdiction(rest[0]):
                    jur = rest[0].strip(".,;:'\"`")
                line = head.rstrip(":,;.")
                break
        args: dict[str, Any] = {"key": line.strip()}
        if jur:
            args["jurisdiction"] = jur
        return args

    def infer_call(self, text: str) -> dict[str, Any] | None:
        """Claims a nameless "CALL refund_window ..." that starts with a known key."""
        words = text.split()
        if not words or not self._is_key(words[0].partition("@")[0].rstrip(":,;.")):
            return None
        return self.parse_text(text)

    def _looks_like_jurisdiction(self, word: str) -> bool:
        w = word.strip(".,;:'\"`")
        return self._is_jurisdiction(w) or w.lower() in _GLOBAL or (w.isupper() and 2 <= len(w) <= 5)

    def _is_key(self, text: str) -> bool:
        return normalise_key(text) in self._normalised

    def _is_jurisdiction(self, text: str) -> bool:
        return any((c.jurisdiction or "").lower() == text.lower() for v in self._by_key.values() for c in v)

    def run(self, arguments: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> str:
        key = argument(arguments, "key", _TOOL) or ""
        jurisdiction = argument(arguments, "jurisdiction", _TOOL, required=False)
        default = (context or {}).get("jurisdiction")
        clause = self.lookup(key, jurisdiction, default_jurisdiction=str(default) if default else None)
        return clip(clause.render())


def _where(variants: list[Clause]) -> list[str]:
    return [v.jurisdiction or "global" for v in variants]
