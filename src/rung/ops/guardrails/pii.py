"""PII redaction with the project's PII finders (rung.text.pii: e-mails, phone numbers,
Luhn-valid cards, mod-97-valid IBANs, SSNs): every value found is replaced by a placeholder
such as "[EMAIL]" before the model sees it and before anything is stored."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from rung.text.pii import find_pii

PLACEHOLDERS = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]", "iban": "[IBAN]", "ssn": "[SSN]"}


@dataclass
class Redaction:
    text: str
    kinds: list[str] = field(default_factory=list)  # the kind of each value replaced

    @property
    def changed(self) -> bool:
        return bool(self.kinds)


def redact(text: str, kinds: Iterable[str] | None = None) -> Redaction:
    """`text` with the personal data of the given kinds (default: all) replaced."""
    wanted = set(PLACEHOLDERS if kinds is None else kinds)
    if not text:
        return Redaction(text or "")
    found = [p for p in find_pii(text) if p.kind in wanted]
    out = text
    for item in sorted(found, key=lambda p: len(p.text), reverse=True):  # longest first
        out = out.replace(item.text, PLACEHOLDERS[item.kind])
    return Redaction(out, [p.kind for p in found])


def redact_messages(messages: list[dict[str, str]], kinds: Iterable[str] | None = None
                    ) -> tuple[list[dict[str, str]], list[str]]:
    """Every message's content redacted; returns (messages, kinds found)."""
    kinds = list(kinds) if kinds is not None else None
    out: list[dict[str, str]] = []
    found: list[str] = []
    for m in messages:
        r = redact(m.get("content", ""), kinds)
        out.append({**m, "content": r.text})
        found += r.kinds
    return out, found
