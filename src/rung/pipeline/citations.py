"""Citations in an answer: read the markers, check them against what was retrieved, and, for
regulated flows, refuse an answer that no retrieved source supports.

Markers recognised (several ids in one marker are separated by commas or semicolons):

    [refund-policy-eu-v3#2]            a chunk id           [refund-policy-eu-v3]   a document id
    [doc: refund-policy-eu-v3]         also source:, ref:, cite:, chunk:, id=
    [1]  [^2]  [Source 3]  [1-3]       numbers: the n-th retrieved chunk, when the prompt numbered them
    【refund-policy-eu-v3】

Not citations: [[double brackets]] (phrase markers), markdown links [text](url), and bracketed
text with spaces ("[see above]"). A cited id is valid when it names a retrieved chunk or its
document (exact, then ignoring case and a file extension such as ".md").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from rung.core import RetrievedChunk

DEFAULT_REFUSAL = ("I'm sorry, but I can't answer that: none of the sources I have access to "
                   "supports an answer.")

_MARKER = re.compile(r"(?<!\[)\[(?!\[)([^\[\]\n]{1,200})\](?![\](])|【([^】\n]{1,200})】")
_PREFIX = re.compile(
    r"^(?:doc(?:ument)?s?|sources?|refs?|references?|cite|citations?|chunks?|id)\s*(?::|=|\s)\s*",
    re.IGNORECASE)
_ID = re.compile(r"^[A-Za-z0-9][\w.\-:/#@]*$")
_NUMBER = re.compile(r"^\d{1,3}$")
_RANGE = re.compile(r"^(\d{1,3})\s*[-\u2013]\s*(\d{1,3})$")
_EXTENSION = re.compile(r"\.(?:md|markdown|txt|html?|pdf|jsonl?|rst)$", re.IGNORECASE)
_NOT_IDS = {"phrase"}
_HOLE = "\x00"


@dataclass(frozen=True)
class _Marker:
    start: int
    end: int
    ids: list[str]  # as written, numbers mapped when numbered chunks were given


@dataclass
class CitationCheck:
    """Which cited ids name a retrieved chunk (or its document) and which do not."""

    valid: list[str] = field(default_factory=list)
    unknown_ids: list[str] = field(default_factory=list)
    retrieved_ids: list[str] = field(default_factory=list)
    cited_docs: list[str] = field(default_factory=list)  # documents the valid ids belong to

    @property
    def ok(self) -> bool:
        """At least one valid citation and no unknown one."""
        return bool(self.valid) and not self.unknown_ids


def _parts(inner: str, numbered: Sequence[RetrievedChunk] | None) -> list[str] | None:
    """The ids inside one bracket, or None when it is not a citation marker."""
    body = inner.strip()
    if not body or body.split(":", 1)[0].strip().lower() in _NOT_IDS:
        return None
    body = _PREFIX.sub("", body.lstrip("^").strip())
    out: list[str] = []
    for raw in re.split(r"\s*[,;]\s*", body):
        part = _PREFIX.sub("", raw.strip().lstrip("^").strip())
        if not part:
            continue
        span = _RANGE.match(part)
        if span and 0 < int(span.group(2)) - int(span.group(1)) <= 10:
            out += [_number(str(n), numbered) for n in range(int(span.group(1)), int(span.group(2)) + 1)]
        elif _NUMBER.match(part):
            out.append(_number(part, numbered))
        elif _ID.match(part):
            out.append(part)
        else:
            return None
    return out or None


def _number(n: str, numbered: Sequence[RetrievedChunk] | None) -> str:
    i = int(n)
    if numbered is not None and 1 <= i <= len(numbered):
        return numbered[i - 1].id
    return n


def _markers(text: str, numbered: Sequence[RetrievedChunk] | None) -> list[_Marker]:
    out = []
    for m in _MARKER.finditer(text):
        ids = _parts(m.group(1) if m.group(1) is not None else m.group(2), numbered)
        if ids:
            out.append(_Marker(m.start(), m.end(), ids))
    return out


def extract_citations(text: str, numbered: Sequence[RetrievedChunk] | None = None) -> list[str]:
    """Every cited id in `text`, in order, without duplicates. With `numbered` (the chunks in
    the order the prompt numbered them, from 1), "[2]" becomes the id of the second chunk;
    without it, or out of range, a number stays as written ("2") and will not validate."""
    out: list[str] = []
    for marker in _markers(text, numbered):
        for cid in marker.ids:
            if cid not in out:
                out.append(cid)
    return out


def canonical_citations(text: str, numbered: Sequence[RetrievedChunk] | None = None) -> str:
    """`text` with every marker rewritten as "[id, id]" (prefixes dropped, numbers mapped), the
    form the citation scorer reads inline."""
    out, last = [], 0
    for marker in _markers(text, numbered):
        out += [text[last:marker.start], "[" + ", ".join(dict.fromkeys(marker.ids)) + "]"]
        last = marker.end
    return "".join(out) + text[last:]


def strip_citation_markers(text: str) -> str:
    """`text` without citation markers, tidied: no space left before punctuation, no comma
    left from a list of markers."""
    out, last = [], 0
    for marker in _markers(text, None):
        out += [text[last:marker.start], _HOLE]
        last = marker.end
    joined = "".join(out) + text[last:]
    joined = re.sub(rf"[ \t]*{_HOLE}(?:[ \t,;]*{_HOLE})*[ \t]*(?=[.,;:!?)]|$)", "", joined, flags=re.MULTILINE)
    joined = re.sub(rf"^[ \t]*{_HOLE}(?:[ \t,;]*{_HOLE})*[ \t]*", "", joined, flags=re.MULTILINE)
    joined = re.sub(rf"[ \t]*{_HOLE}(?:[ \t,;]*{_HOLE})*[ \t]*", " ", joined)
    return re.sub(r"[ \t]+$", "", joined, flags=re.MULTILINE).strip()


def _match(cid: str, retrieved: Sequence[RetrievedChunk]) -> list[RetrievedChunk]:
    """The chunks an id names: a chunk id, else a document id; exact first, then tolerant."""
    keys = (lambda s: s.strip(), lambda s: s.strip().lower(), lambda s: _EXTENSION.sub("", s.strip().lower()))
    for key in keys:
        k = key(cid)
        hit = [c for c in retrieved if key(c.id) == k] or [c for c in retrieved if key(c.doc_id) == k]
        if hit:
            return hit
    return []


def check_citations(cited: Sequence[str], retrieved: Sequence[RetrievedChunk]) -> CitationCheck:
    """Split cited ids into valid (a retrieved chunk or its document) and unknown."""
    check = CitationCheck(retrieved_ids=[c.id for c in retrieved])
    for cid in dict.fromkeys(cited):
        hit = _match(cid, retrieved)
        if hit:
            check.valid.append(cid)
            for c in hit:
                if c.doc_id not in check.cited_docs:
                    check.cited_docs.append(c.doc_id)
        else:
            check.unknown_ids.append(cid)
    return check


def enforce_required_citations(answer_text: str, cited: Sequence[str],
                               retrieved: Sequence[RetrievedChunk],
                               refusal_text: str = DEFAULT_REFUSAL) -> tuple[str, bool, str]:
    """For candidates with `require_citations`: keep the answer when it cites at least one
    retrieved source; otherwise return the refusal. Returns (text, refused, reason)."""
    if not retrieved:
        return refusal_text, True, "nothing was retrieved, so no source supports an answer"
    check = check_citations(cited, retrieved)
    if check.valid:
        return answer_text, False, ""
    if check.unknown_ids:
        return refusal_text, True, ("the answer cites only ids that were not retrieved: "
                                    + ", ".join(check.unknown_ids))
    return refusal_text, True, "the answer cites no retrieved source"
