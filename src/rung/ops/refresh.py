"""Continuous training: labelled live traces -> training examples with lineage -> invalidation
of examples that cite replaced policies -> dataset (checks, balance, card) -> tune -> eval on the
suite -> release -> rollout (shadow first). One call runs the loop (`refresh`); every step is a
function of its own and `rung refresh --step NAME` runs one, reading what the step before it
left in `.rung/refresh/state.json`.

Examples from traces (`trace_examples`):
- human feedback always counts; a trace is good when feedback says `success` (or `helpful`) and
  nothing failed, bad when `success` = 0, `refusal_correct` = 0, `grounded` = 0 or
  `safety_violation` = 1;
- with `refresh.use_online_labels`, a trace without feedback counts when its online labels are
  confident: answered (not refused), no hallucination flag, citations correct, no safety flag,
  every one of these measured -> a positive example; online labels never make a counter-example;
- a good trace becomes a positive example (its conversation, then its answer); a bad one a
  counter-example whose target is the feedback's `correction`, or the refusal target for an
  answer that should have been refused; `rejected` is the trace's answer; a bad trace with no
  way to correct it is skipped and counted.
- lineage: source "trace", ref "<release id>/<trace id>", created_at the trace's time, annotator
  "human:<who>" (feedback) or "rung-online-labels"; `policy_version` lists the policy documents
  the answer cited (else retrieved) as "doc-id@version" joined by ";"; metadata keeps the trace
  id, release, channel, tenant, the labels and the documents.

Invalidation (`invalidate`): a cited policy document is stale when the knowledge base now has
another version of it (its `version` changed, or another document `supersedes` it) or it is
gone. An example citing a stale document is re-targeted when the document that replaced it
still supports every claim of the example's target (the groundedness support check within one
paragraph, facts included, content-word recall >= 0.8), its lineage then citing the new
version; otherwise it is dropped. Both are counted
per document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rung.ops.records import TraceRecord, normalise_labels
from rung.tune.data.sources import Skipped, with_target
from rung.tune.example import Example, Lineage

if TYPE_CHECKING:
    from rung.config import RungConfig
    from rung.ops.releases import ReleaseStore

ONLINE_ANNOTATOR = "rung-online-labels"
STEPS = ("examples", "dataset", "tune", "eval", "release", "rollout")
STATE_FILE = ".rung/refresh/state.json"
# re-targeting keeps an example only when the new version says the same thing: content-word
# recall of each claim against one paragraph of it at least this (the scorer's 0.55 is for
# paraphrases; here a lenient match would keep a clause whose number moved to another sentence)
RETARGET_RECALL = 0.8


# ------------------------------------------------------------------------- the knowledge base

@dataclass
class PolicyDoc:
    id: str
    version: str
    type: str
    text: str
    supersedes: list[str] = field(default_factory=list)


def knowledge_documents(config: RungConfig) -> dict[str, PolicyDoc]:
    """Every document of every corpus of rung.yaml, by id."""
    from rung.pipeline.retrieval.documents import load_documents, superseded_ids

    out: dict[str, PolicyDoc] = {}
    for name in config.knowledge:
        docs, _ = load_documents(config.existing_path("knowledge", name, "path", what="knowledge folder",
                                                      folder=True))
        for d in docs:
            out[d.id] = PolicyDoc(d.id, str(d.metadata.get("version", "")), str(d.metadata.get("type", "")),
                                  d.text, sorted(superseded_ids(d.metadata.get("supersedes"))))
    return out


def current_version(doc_id: str, corpus: dict[str, PolicyDoc]) -> tuple[str | None, str | None]:
    """(the id of the document that now stands for `doc_id`, its version): the document itself,
    or the last one in a chain of `supersedes`; (None, None) when it is gone."""
    replaced_by = {old: d.id for d in corpus.values() for old in d.supersedes}
    cur, seen = doc_id, set()
    while cur in replaced_by and cur not in seen:
        seen.add(cur)
        cur = replaced_by[cur]
    if cur not in corpus:
        return None, None
    return cur, corpus[cur].version


# ------------------------------------------------------------------------- traces -> examples

def cited_documents(r: TraceRecord) -> dict[str, str]:
    """doc id -> version of the documents the answer cited (chunk ids map to their document);
    all retrieved documents when it cites none."""
    cited = []
    for c in r.citations:
        doc = c.split("#", 1)[0]
        if doc in r.documents or doc in r.retrieved:
            cited.append(doc)
    docs = list(dict.fromkeys(cited)) or list(r.retrieved)
    return {d: r.documents.get(d, "") for d in docs}


def policy_string(docs: dict[str, str]) -> str:
    return ";".join(f"{d}@{v}" for d, v in sorted(docs.items()))


def parse_policy_string(s: str) -> dict[str, str]:
    out = {}
    for part in (s or "").split(";"):
        if "@" in part:
            d, v = part.rsplit("@", 1)
            out[d] = v
    return out


def _verdict(r: TraceRecord, use_online: bool) -> tuple[bool | None, str, list[str]]:
    """(good?, annotator, reasons); good None: no verdict."""
    fb = normalise_labels(r.feedback)
    who = r.feedback.get("who") if isinstance(r.feedback.get("who"), str) else ""
    human = {k: v for k, v in fb.items() if v is not None and k in
             ("success", "helpful", "refusal_correct", "grounded", "safety_violation", "hallucination")}
    if human:
        fails = []
        if fb.get("success") == 0.0:
            fails.append("feedback: not a success")
        if fb.get("refusal_correct") == 0.0:
            fails.append("feedback: refusal incorrect")
        if fb.get("grounded") == 0.0 or fb.get("hallucination") == 1.0:
            fails.append("feedback: not grounded")
        if fb.get("safety_violation") == 1.0:
            fails.append("feedback: safety violation")
        annot = f"human:{who}" if who else "human"
        if fails:
            return False, annot, fails
        if fb.get("success") == 1.0 or fb.get("helpful") == 1.0 or fb.get("refusal_correct") == 1.0:
            return True, annot, ["feedback: good"]
        return None, annot, ["feedback without a success verdict"]
    if not use_online:
        return None, "", ["no feedback"]
    vals = {n: r.label(n) for n in ("refused", "hallucination", "citation_failure", "safety_violation")}
    if vals["citation_failure"] is None and not r.citations:
        vals["citation_failure"] = 0.0  # nothing cited: no citation to fail
    if any(v is None for v in vals.values()):
        return None, ONLINE_ANNOTATOR, ["online labels not all measured"]
    if all(v == 0.0 for v in vals.values()):
        return True, ONLINE_ANNOTATOR, ["online labels: answered, grounded, cited, safe"]
    return None, ONLINE_ANNOTATOR, ["online labels flag it (not confident enough for a counter-example)"]


def trace_examples(records: Sequence[TraceRecord], *, refusal_target: str, product_version: str = "",
                   use_online_labels: bool = False, skipped: Skipped | None = None) -> list[Example]:
    """Examples from labelled live traces (see the module doc). Shadow answers are included: a
    human can label them like any other (they were never shown to a user)."""
    skipped = skipped if skipped is not None else Skipped()
    out: list[Example] = []
    for r in records:
        ref = f"{r.release or '-'}/{r.id}"
        if r.error or not (r.output or "").strip():
            skipped.add("live trace: errored or empty answer", ref)
            continue
        conversation = [dict(m) for m in r.messages] or ([{"role": "user", "content": r.input}] if r.input else [])
        if not conversation:
            skipped.add("live trace: no stored request (store_contexts / redaction?)", ref)
            continue
        good, annot, reasons = _verdict(r, use_online_labels)
        if good is None:
            skipped.add(f"live trace: {reasons[0]}", ref)
            continue
        docs = cited_documents(r)
        created = datetime.fromtimestamp(r.ts, timezone.utc).isoformat(timespec="seconds")
        lineage = Lineage(source="trace", ref=ref, product_version=product_version,
                          policy_version=policy_string(docs), annotator=annot, created_at=created)
        meta = {"trace": r.id, "release": r.release, "channel": r.channel, "tenant": r.tenant, "arm": r.arm,
                "verdict": reasons, "labels": {k: v for k, v in r.labels.items()},
                "feedback": {k: v for k, v in r.feedback.items()}, "documents": docs}
        tags = [f"{k}:{r.metadata[k]}" for k in ("jurisdiction", "product") if r.metadata.get(k)]
        if good:
            out.append(Example(id=f"live:{r.id}", messages=with_target(conversation, r.output), lineage=lineage,
                               label="positive", tags=tags, metadata=meta))
            continue
        fb = r.feedback
        target = fb.get("correction") if isinstance(fb.get("correction"), str) and fb.get("correction") else None
        if target is None:
            should = r.label("under_refusal")
            if should == 1.0 or (normalise_labels(fb).get("refusal_correct") == 0.0 and r.label("refused") == 0.0):
                target = refusal_target
        if target is None:
            skipped.add("live trace: bad answer without a correction", ref)
            continue
        out.append(Example(id=f"live:{r.id}", messages=with_target(conversation, target), lineage=lineage,
                           label="counter", rejected=r.output, tags=tags, metadata=meta))
    return out


# ------------------------------------------------------------------------- invalidation

@dataclass
class Invalidation:
    kept: int = 0  # cited policies unchanged (or cite none)
    retargeted: int = 0
    dropped: int = 0
    by_document: dict[str, dict[str, int]] = field(default_factory=dict)  # "doc@v" -> {retargeted, dropped}
    details: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _supported(target: str, doc: PolicyDoc, embedder: Any = None) -> tuple[bool, str]:
    from rung.core import RetrievedChunk
    from rung.evals.scorers.groundedness import SupportChecker, answer_claims

    claims = answer_claims(target)
    if not claims:
        return True, "no factual claims"
    # each claim must be supported by one paragraph (its facts included): a number that is still
    # somewhere in the new version, in another clause, does not keep a changed clause alive
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", doc.text) if p.strip()]
    checkers = [SupportChecker([RetrievedChunk(id=f"{doc.id}#{i}", doc_id=doc.id, text=p)], embedder,
                               lexical_threshold=RETARGET_RECALL)
                for i, p in enumerate(paragraphs)]
    bad = []
    for claim in claims:
        verdicts = [c.check([claim])[0] for c in checkers]
        if not any(v.supported for v in verdicts):
            bad.append(max(verdicts, key=lambda v: v.lexical) if verdicts else None)
    if bad:
        why = bad[0].why if bad[0] is not None else "empty document"
        return False, f"{len(bad)}/{len(claims)} claim(s) not supported by {doc.id}: {why}"
    return True, f"all {len(claims)} claim(s) supported by {doc.id}"


def invalidate(examples: Sequence[Example], corpus: dict[str, PolicyDoc], *, policy_types: Sequence[str] = ("policy",),
               retarget: bool = True, embedder: Any = None) -> tuple[list[Example], Invalidation]:
    """Drop or re-target the examples whose lineage cites a replaced policy document."""
    inv = Invalidation()
    out: list[Example] = []
    for ex in examples:
        cited = parse_policy_string(ex.lineage.policy_version)
        stale = {}
        for doc, ver in cited.items():
            known = corpus.get(doc)
            is_policy = (known is not None and known.type in policy_types) or known is None
            if not is_policy:
                continue
            now_id, now_ver = current_version(doc, corpus)
            if now_id != doc or (ver and now_ver != ver):
                stale[doc] = (ver, now_id, now_ver)
        if not stale:
            inv.kept += 1
            out.append(ex)
            continue
        new_cites = dict(cited)
        ok, why = retarget, ""
        for doc, (_ver, now_id, now_ver) in stale.items():
            if now_id is None:
                ok, why = False, f"{doc} is no longer in the knowledge base"
                break
            if ok:
                ok, why = _supported(ex.target, corpus[now_id], embedder)
            if not ok:
                break
            new_cites.pop(doc)
            new_cites[now_id] = now_ver or ""
        what = "retargeted" if ok else "dropped"
        for doc, (ver, _, _) in stale.items():
            inv.by_document.setdefault(f"{doc}@{ver}", {"retargeted": 0, "dropped": 0})[what] += 1
        inv.details.append({"example": ex.id, "action": what, "stale": {d: {"was": v[0], "now": f"{v[1]}@{v[2]}"}
                                                                         for d, v in stale.items()},
                            "why": why if not ok else (why or "target supported by the new version")})
        if ok:
            inv.retargeted += 1
            lin = Lineage(**{**asdict(ex.lineage), "policy_version": policy_string(new_cites)})
            meta = {**ex.metadata, "retargeted_from": ex.lineage.policy_version, "documents": new_cites}
            out.append(Example(id=ex.id, messages=ex.messages, lineage=lin, label=ex.label, rejected=ex.rejected,
                               tags=ex.tags, metadata=meta))
        else:
            inv.dropped += 1
    return out, inv


def invalidate_dataset(config: RungConfig, path: str | Path, *, embedder: Any = None
                       ) -> tuple[Any, Invalidation]:
    """Re-check a saved dataset against today's knowledge base (after a policy changed):
    returns the new Dataset (not saved) and the counts."""
    from rung.tune.example import Dataset

    ds = Dataset.load(path)
    kept, inv = invalidate(ds.examples, knowledge_documents(config), policy_types=config.refresh.policy_types,
                           retarget=config.refresh.retarget, embedder=embedder)
    return Dataset(kept, name=ds.name), inv


# ------------------------------------------------------------------------- the loop

@dataclass
class RefreshState:
    """What each step left for the next (saved in .rung/refresh/state.json)."""

    examples_file: str | None = None
    examples: int = 0
    invalidation: dict[str, Any] | None = None
    skipped: dict[str, Any] | None = None
    dataset: str | None = None  # folder
    dataset_version: str | None = None
    job: str | None = None  # artifact folder
    candidate: str | None = None  # the tuned candidate's name
    base_candidate: str | None = None
    run: str | None = None
    release: str | None = None
    rollout: str | None = None
    gate: dict[str, Any] | None = None
    log: list[str] = field(default_factory=list)

    @staticmethod
    def load(path: Path) -> RefreshState:
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return RefreshState()
        known = set(RefreshState.__dataclass_fields__)
        return RefreshState(**{k: v for k, v in d.items() if k in known})

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2, default=str), encoding="utf-8")


Note = Callable[[str], None]


def step_examples(config: RungConfig, records: Sequence[TraceRecord], state: RefreshState, *,
                  embedder: Any = None) -> RefreshState:
    from rung.errors import DataError

    dc, rc = config.tune.data, config.refresh
    skipped = Skipped()
    examples = trace_examples(records, refusal_target=dc.refusal_target, product_version=dc.product_version,
                              use_online_labels=rc.use_online_labels, skipped=skipped)
    kept, inv = invalidate(examples, knowledge_documents(config) if config.knowledge else {},
                           policy_types=rc.policy_types, retarget=rc.retarget, embedder=embedder)
    if not kept:
        raise DataError(f"refresh: no training example from {len(records)} trace(s)"
                        + (f"; skipped: {dict(skipped.counts)}" if skipped.counts else "")
                        + (f"; {inv.dropped} dropped by invalidation" if inv.dropped else ""))
    folder = config.resolve(STATE_FILE).parent
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "examples.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for ex in kept:
            f.write(json.dumps(ex.to_dict(), ensure_ascii=False) + "\n")
    state.examples_file, state.examples = str(path), len(kept)
    state.invalidation, state.skipped = inv.to_dict(), skipped.to_dict()
    state.log.append(f"examples: {len(kept)} from {len(records)} traces ({inv.retargeted} retargeted, "
                     f"{inv.dropped} dropped by policy invalidation; {sum(skipped.counts.values())} skipped)")
    return state


def _load_examples(state: RefreshState) -> list[Example]:
    from rung.errors import DataError

    if not state.examples_file or not Path(state.examples_file).is_file():
        raise DataError("refresh: no examples yet: run `rung refresh --step examples` first")
    return [Example.from_dict(json.loads(line))
            for line in Path(state.examples_file).read_text(encoding="utf-8").splitlines() if line.strip()]


def step_dataset(config: RungConfig, state: RefreshState, *, allow: Sequence[str] = ()) -> RefreshState:
    """The trace examples with the project's own sources: checks, balance, card, saved."""
    from rung.tune.data import build_dataset, datasets_root

    ds, card = build_dataset(config, extra=_load_examples(state), allow=allow, name="refresh")
    state.dataset = str(datasets_root(config) / ds.version)
    state.dataset_version = ds.version
    from_traces = sum(1 for e in ds.examples if e.lineage.source == "trace")
    state.log.append(f"dataset {ds.version}: {len(ds)} examples ({from_traces} from traces)")
    return state


def _base_candidate(config: RungConfig, store: ReleaseStore | None) -> str:
    from rung.errors import ConfigError

    if config.refresh.candidate:
        return config.refresh.candidate
    if store is not None:
        from rung.ops.releases import live_release

        rel = live_release(store, config.refresh.channel)
        if rel is not None and rel.candidate in config.candidates:
            cand = config.candidates[rel.candidate]
            if cand.adapter:  # a tuned release: train its level-0 counterpart's adapter again
                from rung.pipeline.candidate import level0_counterpart

                base = level0_counterpart(rel.candidate, config.candidates)
                if base:
                    return base
            return rel.candidate
    raise ConfigError(f"{config.source}: refresh.candidate: name the level-0 candidate to tune an adapter for "
                      f"(no live release on {config.refresh.channel} to take it from)")


def step_tune(config: RungConfig, state: RefreshState, store: ReleaseStore | None = None, *,
              progress: Callable[[int, int], None] | None = None) -> RefreshState:
    from rung.errors import DataError
    from rung.tune.train.artifacts import LINEAGE_FILE
    from rung.tune.train.plan import plan_job

    if not state.dataset:
        raise DataError("refresh: no dataset yet: run `rung refresh --step dataset` first")
    base = _base_candidate(config, store)
    method = config.tune.train.method if config.tune.train.method != "full" else "lora"
    job = plan_job(config, method=method, candidate=base, dataset=state.dataset)
    if not (job.folder / LINEAGE_FILE).is_file():
        from rung.tune.train.trainer import train

        train(job, progress=progress)
    state.job, state.base_candidate = str(job.folder), base
    state.log.append(f"tuned {method} adapter {job.id} for {base} on dataset {state.dataset_version}")
    return state


def tuned_candidate(config: RungConfig, state: RefreshState) -> str:
    """Add the tuned candidate to `config` (in memory) and return its name."""
    from rung.errors import DataError
    from rung.pipeline.candidate import with_adapter

    if not state.job or not state.base_candidate:
        raise DataError("refresh: no tuned adapter yet: run `rung refresh --step tune` first")
    name = f"{state.base_candidate}-refresh-{(state.dataset_version or 'x')[:8]}"
    cand = config.candidates[state.base_candidate]
    model = config.models[cand.model]
    config.models[cand.model] = model.model_copy(update={"adapters": {**model.adapters, name: state.job}})
    config.candidates[name] = with_adapter(cand, name, f"{state.base_candidate} refreshed on live traces "
                                                       f"(dataset {state.dataset_version})")
    return name


def step_eval(config: RungConfig, state: RefreshState, store: ReleaseStore, *,
              progress: Callable[[int, int], None] | None = None) -> RefreshState:
    from rung.evals.runner import evaluate_candidate

    name = tuned_candidate(config, state)
    suite = next(iter(config.suites)) if config.suites else None
    run, _reused = evaluate_candidate(config, name, store.runs, suite=suite, reuse=True, progress=progress)
    state.candidate, state.run = name, run.info.id
    state.log.append(f"evaluated {name}: run {run.info.id}")
    return state


def step_release(config: RungConfig, state: RefreshState, store: ReleaseStore) -> RefreshState:
    """A release of the tuned candidate with its eval run, and the release gate against the
    channel's live release (the numbers kept; a failing gate stops the loop here)."""
    from rung.errors import DataError
    from rung.ops.releases import check_promotion, create_release, live_release

    if not state.run:
        raise DataError("refresh: no eval run yet: run `rung refresh --step eval` first")
    name = state.candidate or tuned_candidate(config, state)
    if name not in config.candidates:
        tuned_candidate(config, state)
    made = create_release(config, name, store, runs=[state.run], note=f"refresh: dataset {state.dataset_version}")
    state.release = made.release.id
    live = live_release(store, config.refresh.channel)
    check = check_promotion(store, made.release, config.refresh.channel, config.gate, live)
    state.gate = check.to_dict()
    state.log.append(f"release {made.release.short}: gate {'passed' if check.passed else 'FAILED'}"
                     + ("" if check.passed else ": " + "; ".join(x.message for x in check.failures)))
    return state


def step_rollout(config: RungConfig, state: RefreshState, store: ReleaseStore) -> RefreshState:
    """A rollout of the refreshed release, shadow mode by default (refresh.rollout_mode)."""
    from rung.errors import DataError
    from rung.ops.rollout.machine import start_rollout

    if not state.release:
        raise DataError("refresh: no release yet: run `rung refresh --step release` first")
    if state.gate is not None and not state.gate.get("passed"):
        raise DataError("refresh: the release gate failed: nothing is rolled out "
                        "(see `rung refresh --status`); fix the data and run the loop again")
    rcfg = config.rollout.model_copy(update={"mode": config.refresh.rollout_mode})
    r = start_rollout(store, config.refresh.channel, state.release, rcfg,
                      reason=f"refresh: dataset {state.dataset_version}")
    state.rollout = r.id
    state.log.append(f"rollout {r.id} ({r.mode}) of {state.release[:12]} on {config.refresh.channel}")
    return state
