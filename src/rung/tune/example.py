"""Training examples and datasets: the unit every tuning step shares.

An Example is one chat conversation that ends with the assistant turn to learn (the target), plus
its lineage: where it came from (a train case, a scored trace of a run, a line of a user file, or a
hard-negative generator applied to another example), which product and policy versions it reflects,
who labelled it and when. A Dataset is an ordered list of examples; its version is a content hash,
so the same examples always give the same version and any change gives a new one.

On disk a dataset is a folder `<datasets>/<version>/` with `examples.jsonl` (one example per line)
and `card.json` (counts, checks, balance report: written by rung.tune.data).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from rung.core import Message
from rung.errors import DataError

Source = Literal["case", "trace", "file", "negative"]
Label = Literal["positive", "counter"]


@dataclass
class Lineage:
    """Where an example came from.

    source: "case" (ref = case id), "trace" (ref = "<run id>/<case id>"), "file" (ref =
    "<path>:<line>"), "negative" (ref = "<generator>:<parent example id>").
    """

    source: Source
    ref: str
    product_version: str = ""
    policy_version: str = ""
    annotator: str = ""
    created_at: str = ""
    generator: str | None = None  # the hard-negative generator, for source == "negative"
    parent: str | None = None  # the example a negative was derived from


@dataclass
class Example:
    """One conversation ending with the assistant target.

    label "positive": the target is a good answer to imitate. "counter": a counter-example: the
    model (or an attacker) went wrong here; the target is the corrected answer and `rejected`, when
    known, is the bad answer it replaces (usable for preference tuning).
    """

    id: str
    messages: list[Message]
    lineage: Lineage
    label: Label = "positive"
    rejected: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> list[Message]:
        """The conversation before the target."""
        return self.messages[:-1]

    @property
    def target(self) -> str:
        """The assistant turn to learn ("" when the last turn is not the assistant's)."""
        if not self.messages or self.messages[-1].get("role") != "assistant":
            return ""
        return self.messages[-1].get("content", "") or ""

    def content_hash(self) -> str:
        """Hash of what training sees (messages, label, rejected); lineage and tags excluded."""
        body = json.dumps({"messages": self.messages, "label": self.label, "rejected": self.rejected},
                          sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(body.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Example:
        d = dict(d)
        lineage = Lineage(**d.pop("lineage"))
        return Example(lineage=lineage, **d)


@dataclass
class Dataset:
    """An ordered list of examples; `version` is a content hash of all of them, lineage included
    (relabelling an example or changing its policy version makes a new version) except
    `created_at`: the same data built again, or from a fresh clone, keeps its version."""

    examples: list[Example]
    name: str = "train"

    @property
    def version(self) -> str:
        h = hashlib.sha256()
        for ex in self.examples:
            d = ex.to_dict()
            d["lineage"].pop("created_at", None)
            h.update(json.dumps(d, sort_keys=True, ensure_ascii=False).encode())
            h.update(b"\n")
        return h.hexdigest()[:12]

    def __len__(self) -> int:
        return len(self.examples)

    def save(self, root: str | Path, card: dict[str, Any] | None = None) -> Path:
        """Write `<root>/<version>/examples.jsonl` (+ card.json) atomically; returns the folder."""
        version = self.version  # a hash over every example: computed once
        folder = Path(root) / version
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "examples.jsonl.tmp"
        with tmp.open("w", encoding="utf-8") as f:
            for ex in self.examples:
                f.write(json.dumps(ex.to_dict(), ensure_ascii=False) + "\n")
        tmp.replace(folder / "examples.jsonl")
        meta = {"name": self.name, "version": version, "examples": len(self.examples)}
        if card is not None:
            meta["card"] = card
        (folder / "card.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
        return folder

    @staticmethod
    def load(path: str | Path) -> Dataset:
        """Read a dataset folder (or its examples.jsonl). Errors name the file and line."""
        p = Path(path)
        file = p / "examples.jsonl" if p.is_dir() else p
        if not file.exists():
            raise DataError(f"{file}: no dataset here (expected a folder written by `rung data build`)")
        name = "train"
        card = file.parent / "card.json"
        if card.exists():
            name = json.loads(card.read_text(encoding="utf-8")).get("name", name)
        examples = []
        for i, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                examples.append(Example.from_dict(json.loads(line)))
            except (json.JSONDecodeError, TypeError, KeyError) as e:
                raise DataError(f"{file}:{i}: not a dataset example ({e})") from e
        return Dataset(examples, name=name)
