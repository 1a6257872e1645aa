"""`conflicting`: two clauses that disagree, in the context, and a target that follows the right one.

For a parent whose sources (metadata `sources`, or ids cited in square brackets in its target) are
documents of the knowledge base, each trusted source W is paired with rival documents R that are
not among the parent's sources. Which rivals, and why W wins, comes from document metadata only
(`topic`, `jurisdiction`, `effective_date`, `version`, `supersedes`, `untrusted`, `product`):

- "version": R has W's topic and jurisdiction (or one `supersedes` the other) and is another
  version. The newest version already in force applies (effective date on or before the day the
  generator runs; `supersedes` decides when given). W must win: a rival that is newer and in force
  means the parent follows an older version (a price by order date, say), which metadata cannot
  justify, so that pair is skipped and counted. A rival not yet in force loses to W.
- "jurisdiction": R has W's topic but another jurisdiction (global, or a different one), W's
  jurisdiction is the parent's (metadata `jurisdiction` or a "jurisdiction:X" tag): the
  customer's jurisdiction first.
- "untrusted": R is marked `untrusted` (forum post, review, partner note) and shares W's topic or
  a specific product with W or the parent: untrusted content is never policy.

Each variant puts two clauses in the context: the chunk of W and the chunk of R that share the
most words with the question and target (R's chunk is picked to match W's clause), fenced and
labelled the way the level-0 pipeline does, in random order, at the end of the system message
(only R's when W is already in the prompt). The target is the parent's target unchanged: it
follows W, the clause the precedence rules pick. `negatives_per_example` rivals at most per
parent, drawn at random.

Limits: only the metadata rules above, no reading of the clauses themselves: two versions that
happen to agree on the asked point still make a "conflict" (harmless: the target is right either
way). A knowledge base without `topic`/`jurisdiction`/`effective_date` metadata yields only
`supersedes` and untrusted pairs. "In force" is judged against today's date, so a document whose
effective date arrives changes the output from that day on.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from rung.config import RungConfig
from rung.models.base import ProgressCallback
from rung.pipeline.retrieval.documents import in_force, superseded_ids
from rung.tune.example import Example
from rung.tune.negatives._common import (
    Knowledge,
    best_chunk,
    cited_sources,
    count,
    derive,
    doc_in_prompt,
    load_knowledge,
    question,
    sample_parents,
    tag_value,
    usable_parents,
    with_sources,
    words,
)

NAME = "conflicting"
GLOBAL = "global"


@dataclass(frozen=True)
class Conflict:
    winner: str
    loser: str
    kind: str  # version | jurisdiction | untrusted
    rule: str


def generate(examples: list[Example], *, config: RungConfig, rng: random.Random,
             skipped: Counter[str] | None = None, progress: ProgressCallback | None = None,
             today: dt.date | None = None) -> list[Example]:
    """Conflicting-policy variants of the examples (see the module docstring)."""
    data = config.tune.data
    parents = sample_parents(usable_parents(examples, skipped), data.negatives_fraction, rng)
    kb = load_knowledge(config)
    day = today or dt.date.today()
    out: list[Example] = []
    for i, parent in enumerate(parents):
        conflicts = find_conflicts(parent, kb, day, skipped)
        if not conflicts:
            if progress is not None:
                progress(i + 1, len(parents))
            continue
        chosen = rng.sample(conflicts, min(data.negatives_per_example, len(conflicts)))
        for c in chosen:
            out.append(_variant(parent, c, kb, rng))
        if progress is not None:
            progress(i + 1, len(parents))
    return out


def find_conflicts(parent: Example, kb: Knowledge, today: dt.date,
                   skipped: Counter[str] | None = None) -> list[Conflict]:
    """Every (winner source, rival document) pair of the parent, one per rival, in a stable order."""
    sources = [s for s in cited_sources(parent) if s in kb.docs]
    if not sources:
        count(skipped, "no source in the knowledge base")
        return []
    jurisdiction = (tag_value(parent, "jurisdiction") or "").strip().lower()
    product = (tag_value(parent, "product") or "").strip().lower()
    found: dict[str, Conflict] = {}
    for w in sources:
        if kb.is_untrusted(w):
            continue
        if _outdated(kb, w, today):
            count(skipped, "parent follows an older version than a document in force")
        for r in sorted(kb.docs):
            if r in sources or r in found or r == w:
                continue
            c = _conflict(kb, w, r, jurisdiction, product, today, skipped)
            if c is not None:
                found[r] = c
    if not found:
        count(skipped, "no conflicting document for its sources")
    return list(found.values())


def _conflict(kb: Knowledge, w: str, r: str, jurisdiction: str, product: str, today: dt.date,
              skipped: Counter[str] | None) -> Conflict | None:
    wm, rm = kb.docs[w].metadata, kb.docs[r].metadata
    w_topic, r_topic = _s(wm.get("topic")), _s(rm.get("topic"))
    same_topic = bool(w_topic) and w_topic == r_topic
    if kb.is_untrusted(r):
        r_product = _s(rm.get("product"))
        shares_product = r_product not in ("", "all") and r_product in (_s(wm.get("product")), product)
        if same_topic or shares_product:
            return Conflict(w, r, "untrusted", f"{r} is untrusted content: it never changes a policy ({w} applies)")
        return None
    w_j, r_j = _s(wm.get("jurisdiction")), _s(rm.get("jurisdiction"))
    if _versions_of_one(kb, w, r):
        return _version_conflict(kb, w, r, today, skipped)
    if same_topic and w_j not in ("", GLOBAL) and w_j == jurisdiction and r_j != w_j:
        return Conflict(w, r, "jurisdiction",
                        f"the customer's jurisdiction ({wm.get('jurisdiction')}) comes first: {w} applies, "
                        f"not {r} ({rm.get('jurisdiction') or 'no jurisdiction'})")
    return None


def _version_conflict(kb: Knowledge, w: str, r: str, today: dt.date,
                      skipped: Counter[str] | None) -> Conflict | None:
    wm, rm = kb.docs[w].metadata, kb.docs[r].metadata
    w_date, r_date = _date(wm.get("effective_date")), _date(rm.get("effective_date"))
    if w_date is not None and w_date > today:
        count(skipped, "parent's source is not in force yet")
        return None
    if _outdated(kb, w, today):  # W must be the newest version in force, not only newer than R
        return None
    newer = _newer(kb, w, r)
    if newer is None:
        return None  # same date and version: metadata cannot order them
    if newer == w:
        return Conflict(w, r, "version", f"the newest version in force applies: {w} "
                                         f"(effective {wm.get('effective_date')}) over {r} "
                                         f"(effective {rm.get('effective_date')})")
    if r_date is not None and r_date > today:
        return Conflict(w, r, "version", f"{r} is not in force yet (effective {rm.get('effective_date')}): {w} applies")
    return None  # unreachable: a newer version in force was counted above


def _outdated(kb: Knowledge, w: str, today: dt.date) -> bool:
    """Whether a newer version of `w` is already in force."""
    return any(other != w and not kb.is_untrusted(other) and _versions_of_one(kb, w, other)
               and _newer(kb, other, w) == other and _in_force(kb, other, today) for other in kb.docs)


def _versions_of_one(kb: Knowledge, a: str, b: str) -> bool:
    """Whether two documents are versions of one policy: one supersedes the other, or they have
    the same topic and the same jurisdiction."""
    am, bm = kb.docs[a].metadata, kb.docs[b].metadata
    if b in superseded_ids(am.get("supersedes")) or a in superseded_ids(bm.get("supersedes")):
        return True
    topic = _s(am.get("topic"))
    return bool(topic) and topic == _s(bm.get("topic")) and _s(am.get("jurisdiction")) == _s(bm.get("jurisdiction"))


def _newer(kb: Knowledge, a: str, b: str) -> str | None:
    """The newer of two versions (`supersedes`, else effective date then version), None on a tie."""
    am, bm = kb.docs[a].metadata, kb.docs[b].metadata
    if a in superseded_ids(bm.get("supersedes")):
        return b
    if b in superseded_ids(am.get("supersedes")):
        return a
    ak = (_date(am.get("effective_date")) or dt.date.min, _num(am.get("version")))
    bk = (_date(bm.get("effective_date")) or dt.date.min, _num(bm.get("version")))
    if ak == bk:
        return None
    return a if ak > bk else b


def _in_force(kb: Knowledge, doc: str, today: dt.date) -> bool:
    return in_force(kb.docs[doc].metadata.get("effective_date"), today)


def _variant(parent: Example, c: Conflict, kb: Knowledge, rng: random.Random) -> Example:
    about = words(question(parent) + "\n" + parent.target)
    win = best_chunk(kb.chunks[c.winner], about)
    lose = best_chunk(kb.chunks[c.loser], about | words(win.text))
    chunks = [lose] if doc_in_prompt(parent.messages, c.winner) else [win, lose]
    rng.shuffle(chunks)
    info = {"kind": c.kind, "winner": c.winner, "loser": c.loser, "winner_chunk": win.id,
            "loser_chunk": lose.id, "rule": c.rule}
    distractors = [str(d) for d in parent.metadata.get("distractor_sources") or []]
    meta: dict[str, Any] = {"negative": info, "distractor_sources": list(dict.fromkeys([*distractors, c.loser]))}
    messages = with_sources(parent.prompt, chunks) + [dict(parent.messages[-1])]
    return derive(parent, NAME, _safe(c.loser), messages, tags=["conflicting-policy"], metadata=meta)


def _s(v: Any) -> str:
    return "" if v is None else str(v).strip().lower()


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


def _date(v: Any) -> dt.date | None:
    if isinstance(v, dt.date):
        return v
    try:
        return dt.date.fromisoformat(str(v)[:10]) if v else None
    except ValueError:
        return None


def _safe(doc_id: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in doc_id)
