"""Loading a knowledge folder into documents.

`load_documents(folder)` walks the folder (sorted, hidden files and folders left out) and reads:

- Markdown (.md, .markdown): optional YAML front matter between `---` lines gives the metadata.
- text (.txt): the text as is.
- HTML (.html, .htm): text via the stdlib html.parser; headings become Markdown `#` lines (the
  structure chunking follows), scripts and styles are dropped.
- PDF (.pdf): page text via pypdf when it is installed; otherwise skipped with a reason.
- JSONL records (.jsonl): one document per line: `id`, `text` (or `content`), optional `title`
  and `metadata`; other scalar or list keys (e.g. `domain`, `tags`) join the metadata.

Metadata may also come from a sidecar `<file>.meta.yaml` (its keys win over front matter; for a
JSONL file it applies to every record, under the record's own keys).
A document's text is Markdown-like: headings as `#` lines, paragraphs split by blank lines.

Bad documents (empty, binary, over the size cap, undecodable records) are skipped with a
reason, never a crash. Bad front-matter or sidecar YAML and duplicate document ids are errors
(ConfigError) that name the file and line, or both files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import yaml

from rung.errors import ConfigError

# ---------------------------------------------------------------- metadata retrieval understands


def flag(value: Any) -> bool:
    """A metadata flag such as `untrusted`: true, "true", "yes", 1 (any case) are true."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1")
    return bool(value)


def superseded_ids(value: Any) -> set[str]:
    """Document ids in a `supersedes` value: one id, a list, or ids separated by commas."""
    if isinstance(value, (list, tuple, set)):
        return {str(v).strip() for v in value if str(v).strip()}
    if value is None or value == "":
        return set()
    return {v.strip() for v in str(value).split(",") if v.strip()}


def in_force(effective: Any, today: dt.date) -> bool:
    """Whether a document with this `effective_date` applies on `today` (none or unreadable: yes)."""
    if effective is None or effective == "":
        return True
    try:
        return dt.date.fromisoformat(str(effective)[:10]) <= today
    except ValueError:
        return True


MAX_BYTES = 5_000_000
"""Default size cap of one file; bigger files are skipped."""

SIDECAR_SUFFIX = ".meta.yaml"
TEXT_SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".html": "html",
                 ".htm": "html", ".pdf": "pdf", ".jsonl": "jsonl"}


@dataclass
class Document:
    """One source document. `text` is Markdown-like (headings as `#` lines)."""

    id: str
    title: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    path: str = ""  # the file (for JSONL records: "file:line")
    content_hash: str = ""

    def __post_init__(self) -> None:
        if not self.content_hash:
            self.content_hash = content_hash(self.title, self.text, self.metadata)


@dataclass
class Skipped:
    """A file (or JSONL record) that was not loaded, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def content_hash(title: str, text: str, metadata: dict[str, Any]) -> str:
    blob = json.dumps([title, text, metadata], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def load_documents(folder: str | Path, *, max_bytes: int = MAX_BYTES) -> tuple[list[Document], list[Skipped]]:
    """Every document under `folder`, and the files skipped with their reasons."""
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"knowledge folder {root} does not exist or is not a folder")
    docs: list[Document] = []
    skipped: list[Skipped] = []
    for path in _files(root):
        name = path.name.lower()
        if name.endswith(SIDECAR_SUFFIX):
            continue
        kind = TEXT_SUFFIXES.get(path.suffix.lower())
        if kind is None:
            skipped.append(Skipped(str(path), f"unsupported file type {path.suffix or '(none)'!r}; "
                                              f"supported: {', '.join(sorted(TEXT_SUFFIXES))}"))
            continue
        size = path.stat().st_size
        if size > max_bytes:
            skipped.append(Skipped(str(path), f"{size:,} bytes is over the size cap of {max_bytes:,} bytes"))
            continue
        if kind == "jsonl":
            got, bad = _load_jsonl(path, root)
            docs.extend(got)
            skipped.extend(bad)
            continue
        doc_or_reason = _load_file(path, root, kind)
        if isinstance(doc_or_reason, str):
            skipped.append(Skipped(str(path), doc_or_reason))
        else:
            docs.append(doc_or_reason)
    _check_unique(docs)
    return docs, skipped


# ---------------------------------------------------------------- walking and ids

def _files(root: Path) -> list[Path]:
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).parts
        if any(part.startswith(".") for part in rel) or not p.is_file():
            continue
        out.append(p)
    return out


def slug(path: Path, root: Path) -> str:
    """A document id derived from a path: relative, without suffix, lower case, [a-z0-9/_.-]."""
    rel = path.relative_to(root).with_suffix("").as_posix().lower()
    return re.sub(r"[^a-z0-9/_.-]+", "-", rel).strip("-") or "doc"


def _check_unique(docs: list[Document]) -> None:
    seen: dict[str, str] = {}
    for d in docs:
        if d.id in seen:
            raise ConfigError(f"duplicate document id {d.id!r}: in {seen[d.id]} and in {d.path}")
        seen[d.id] = d.path


# ---------------------------------------------------------------- files

def _read_text(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def _load_file(path: Path, root: Path, kind: str) -> Document | str:
    """A Document, or the reason the file is skipped."""
    meta: dict[str, Any] = {}
    if kind == "pdf":
        pdf_text, reason = _pdf_text(path)
        if pdf_text is None:
            return reason
        text = pdf_text
    else:
        raw = _read_text(path)
        if raw is None:
            return "binary or not UTF-8 text (NUL bytes or undecodable bytes)"
        if kind == "markdown":
            meta, text = split_front_matter(raw, str(path))
        elif kind == "html":
            text = html_to_text(raw)
        else:
            text = raw
    meta.update(_sidecar(path))
    text = _normalise(text)
    if not text.strip():
        return "empty (no text after loading)"
    meta = {str(k): _jsonable(v) for k, v in meta.items()}
    doc_id = str(meta.pop("id", "") or "").strip() or slug(path, root)
    title = str(meta.pop("title", "") or "").strip() or _first_heading(text) or path.stem
    return Document(doc_id, title, text, meta, str(path))


def _normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _first_heading(text: str) -> str | None:
    m = re.search(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M)
    return m.group(1).strip() if m else None


def split_front_matter(raw: str, where: str) -> tuple[dict[str, Any], str]:
    """(metadata, body) of a Markdown file; bad YAML -> ConfigError naming file and line."""
    lines = raw.split("\n")
    if not lines or lines[0].strip() != "---":
        return {}, raw
    for i in range(1, len(lines)):
        if lines[i].strip() in ("---", "..."):
            block = "\n".join(lines[1:i])
            body = "\n".join(lines[i + 1:])
            break
    else:
        raise ConfigError(f"{where}:1: front matter starts with '---' but has no closing '---' line")
    meta = _yaml_mapping(block, where, line_offset=1, what="front matter")
    return meta, body


def _sidecar(path: Path) -> dict[str, Any]:
    side = path.with_name(path.name + SIDECAR_SUFFIX)
    if not side.is_file():
        return {}
    return _yaml_mapping(side.read_text(encoding="utf-8"), str(side), line_offset=0, what="metadata")


def _yaml_mapping(text: str, where: str, line_offset: int, what: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = (mark.line + 1 + line_offset) if mark else 1 + line_offset
        raise ConfigError(f"{where}:{line}: {what} is not valid YAML: {getattr(e, 'problem', None) or e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}:{1 + line_offset}: {what} must be a mapping of keys, "
                          f"got {type(data).__name__}")
    return data


def _jsonable(v: Any) -> Any:
    """Metadata values as JSON-safe values (dates as ISO strings)."""
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (list, tuple, set)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return str(v)


# ---------------------------------------------------------------- JSONL records

_RECORD_KEYS = {"id", "text", "content", "title", "metadata"}


def _load_jsonl(path: Path, root: Path) -> tuple[list[Document], list[Skipped]]:
    raw = _read_text(path)
    if raw is None:
        return [], [Skipped(str(path), "binary or not UTF-8 text (NUL bytes or undecodable bytes)")]
    docs, skipped = [], []
    base = slug(path, root)
    # a sidecar's metadata applies to every record (a record's own keys win)
    shared = {k: v for k, v in _sidecar(path).items() if k not in ("id", "title")}
    for n, line in enumerate(raw.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            skipped.append(Skipped(where, f"not valid JSON: {e.msg}"))
            continue
        if not isinstance(rec, dict):
            skipped.append(Skipped(where, f"expected a JSON object, got {type(rec).__name__}"))
            continue
        text = rec.get("text", rec.get("content"))
        if not isinstance(text, str) or not text.strip():
            skipped.append(Skipped(where, "record has no text (expected a non-empty 'text' or 'content')"))
            continue
        meta = rec.get("metadata") or {}
        if not isinstance(meta, dict):
            skipped.append(Skipped(where, f"'metadata' must be an object, got {type(meta).__name__}"))
            continue
        extra = {k: v for k, v in rec.items() if k not in _RECORD_KEYS}
        meta = {str(k): _jsonable(v) for k, v in {**shared, **extra, **meta}.items()}
        doc_id = str(rec.get("id") or "").strip() or f"{base}-{n}"
        title = str(rec.get("title") or "").strip() or doc_id
        docs.append(Document(doc_id, title, _normalise(text), meta, where))
    return docs, skipped


# ---------------------------------------------------------------- HTML

class _HTMLText(HTMLParser):
    """Collects text; headings become `#` lines, block elements break paragraphs."""

    _SKIP = {"script", "style", "noscript", "template", "svg", "head"}
    _BLOCK = {"p", "div", "section", "article", "li", "ul", "ol", "table", "tr", "br", "blockquote",
              "pre", "header", "footer", "main", "nav", "aside", "dd", "dt", "figure", "hr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._heading: int | None = None
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif re.fullmatch(r"h[1-6]", tag):
            self._heading = int(tag[1])
            self.parts.append("\n\n" + "#" * self._heading + " ")
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._in_title = False
        elif re.fullmatch(r"h[1-6]", tag):
            self._heading = None
            self.parts.append("\n\n")
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
            return
        if self._skip:
            return
        text = re.sub(r"\s+", " ", data)
        if self._heading is not None:
            text = text.replace("\n", " ")
        self.parts.append(text)


def html_to_text(raw: str) -> str:
    parser = _HTMLText()
    parser.feed(raw)
    parser.close()
    paragraphs = [re.sub(r"[ \t]+", " ", p).strip() for p in "".join(parser.parts).split("\n\n")]
    body = "\n\n".join(p for p in paragraphs if p and p.strip("# "))
    title = parser.title.strip()
    if title and not body.lstrip().startswith("#"):
        body = f"# {title}\n\n{body}"
    return body


# ---------------------------------------------------------------- PDF

def _pdf_text(path: Path) -> tuple[str | None, str]:
    """(the PDF's text, "") or (None, the reason it is skipped)."""
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError:
        return None, "PDF support needs pypdf (pip install pypdf)"
    try:
        reader = PdfReader(str(path))
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except (PdfReadError, OSError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return None, f"not a readable PDF: {first}"
    return "\n\n".join(p for p in pages if p), ""
