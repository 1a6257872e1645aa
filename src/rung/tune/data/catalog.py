"""The datasets of a project: folders `<paths.datasets>/<version>/` written by `rung data build`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rung.config import RungConfig
from rung.errors import DataError


def datasets_root(cfg: RungConfig) -> Path:
    return cfg.resolve(cfg.paths.datasets)


@dataclass
class DatasetEntry:
    version: str
    path: Path
    name: str
    examples: int
    built_at: str
    card: dict[str, Any]


def read_card(folder: Path) -> dict[str, Any]:
    """The card.json of a dataset folder ({} when it has none)."""
    f = folder / "card.json"
    if not f.exists():
        return {}
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{f}:{e.lineno}: not valid JSON: {e.msg}") from None


def list_datasets(root: Path) -> list[DatasetEntry]:
    """Every dataset folder under root, newest build first."""
    if not root.is_dir():
        return []
    out = []
    for folder in root.iterdir():
        if not (folder / "examples.jsonl").exists():
            continue
        meta = read_card(folder)
        card = meta.get("card", {})
        out.append(DatasetEntry(version=meta.get("version", folder.name), path=folder,
                                name=meta.get("name", ""), examples=int(meta.get("examples", 0)),
                                built_at=card.get("built_at", ""), card=card))
    out.sort(key=lambda e: (e.built_at, (e.path / "card.json").stat().st_mtime
                            if (e.path / "card.json").exists() else 0.0), reverse=True)
    return out


def find_dataset(root: Path, ref: str | None) -> Path:
    """A dataset folder from a path, a version (or unique prefix) under root, or None: the newest."""
    if ref is not None:
        p = Path(ref).expanduser()
        if p.exists():
            return p.parent if p.is_file() else p
    entries = list_datasets(root)
    if ref is None:
        if not entries:
            raise DataError(f"{root}: no datasets yet (build one with `rung data build`)")
        return entries[0].path
    matches = [e for e in entries if e.version.startswith(ref)]
    if not matches:
        raise DataError(f"{root}: no dataset matches {ref!r} (see `rung data list`)")
    if len(matches) > 1:
        raise DataError(f"{root}: dataset version {ref!r} is ambiguous: "
                        f"{', '.join(e.version for e in matches[:10])}")
    return matches[0].path
