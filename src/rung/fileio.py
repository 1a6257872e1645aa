"""Files users give rung and files rung writes for them, with one-line errors that name the path.

`read_text` decodes a user's file as UTF-8 and, when it is not, says where: `file:line: not valid
UTF-8 (byte 0xff at column 7)`. `output_dir` and `output_file` check (and create) where a command
is told to write (`-o`), so a file where a folder is expected, a folder where a file is expected
or an unwritable place is an `OutputError` naming the path instead of a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

from rung.errors import OutputError, RungError


def utf8_problem(data: bytes, shown: str) -> str | None:
    """`shown:line: not valid UTF-8 (byte 0x.. at column N)` for the first undecodable byte of
    `data`, or None when it decodes."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        start = data.rfind(b"\n", 0, e.start) + 1
        line = data.count(b"\n", 0, e.start) + 1
        column = len(data[start:e.start].decode("utf-8", errors="replace")) + 1
        return f"{shown}:{line}: not valid UTF-8 (byte 0x{data[e.start]:02x} at column {column})"
    return None


def read_text(path: str | Path, error: type[RungError] = RungError, shown: str | None = None) -> str:
    """The text of a UTF-8 file (a leading BOM dropped); `error` naming the file (and the line and
    column of the first bad byte) when it cannot be read or is not UTF-8."""
    p = Path(path)
    shown = shown or str(p)
    try:
        data = p.read_bytes()
    except IsADirectoryError:
        raise error(f"{shown}: is a folder, expected a file") from None
    except OSError as e:
        raise error(f"{shown}: cannot read: {e.strerror or e}") from None
    problem = utf8_problem(data, shown)
    if problem:
        raise error(problem)
    return data.decode("utf-8").removeprefix("\ufeff")


def output_dir(path: str | Path, what: str = "output folder") -> Path:
    """Make sure `path` is a folder rung can write into (created with its parents if missing)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"{p}: exists and is not a folder (the {what})")
    _make_dirs(p, f"the {what}")
    if not os.access(p, os.W_OK | os.X_OK):
        raise OutputError(f"{p}: cannot write into this folder (the {what}): permission denied")
    return p


def output_file(path: str | Path, what: str = "output file") -> Path:
    """Make sure `path` can be written as a file: not a folder, its folder created if missing."""
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{p}: is a folder; give a file path (the {what}), e.g. {p / 'out.jsonl'}")
    parent = p.parent
    _make_dirs(parent, f"the folder of the {what}", shown=p)
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputError(f"{p}: cannot write this file (the {what}): permission denied")
    if not p.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{p}: cannot write into {parent} (the {what}): permission denied")
    return p


def _make_dirs(p: Path, what: str, shown: Path | None = None) -> None:
    """Create folder `p` with its parents; OutputError `shown: cannot create WHAT: why`."""
    shown = shown or p
    try:
        p.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # p or one of its parents is a file
        blocker = next((a for a in [p, *p.parents] if a.exists() and not a.is_dir()), p)
        raise OutputError(f"{shown}: cannot create {what}: {blocker} is a file, not a folder") from None
    except OSError as e:
        raise OutputError(f"{shown}: cannot create {what}: {e.strerror or e}") from None
