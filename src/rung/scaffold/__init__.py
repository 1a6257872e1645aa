"""`rung init`: scaffold a working project (rung.yaml, a small corpus, cases, a policy)."""

from __future__ import annotations

import re
from pathlib import Path

from rung.errors import RungError

TEMPLATE = Path(__file__).parent / "template"


def scaffold(target: Path, name: str | None = None, force: bool = False) -> list[Path]:
    """Write the template project into `target`. Existing files are kept unless force=True
    (then the error lists them). Returns the files written."""
    target = Path(target)
    name = name or target.resolve().name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise RungError(f"project name {name!r}: use letters, digits, '.', '_' or '-'")
    sources = sorted(p for p in TEMPLATE.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    existing = [target / p.relative_to(TEMPLATE) for p in sources
                if (target / p.relative_to(TEMPLATE)).exists()]
    if existing and not force:
        shown = ", ".join(str(p) for p in existing[:5])
        raise RungError(f"{target}: would overwrite {shown}; use --force to overwrite")
    from rung.errors import OutputError
    from rung.fileio import output_dir

    output_dir(target, "project folder")  # OutputError: a file there, or not writable
    written = []
    for src in sources:
        dst = target / src.relative_to(TEMPLATE)
        text = src.read_text(encoding="utf-8")
        if src.name == "rung.yaml":
            text = text.replace("{{ name }}", name)
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(text, encoding="utf-8")
        except OSError as e:
            raise OutputError(f"{dst}: cannot write: {e.strerror or e}") from None
        written.append(dst)
    return written
