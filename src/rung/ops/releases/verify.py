"""Comparing releases, checking one against its files, and laying one out as a project folder.

- `diff_content(a, b)`: what changed between two manifests, component by component ("prompt
  block refusal-rules 3 -> 4", "knowledge document refund-policy-eu-v3: content changed",
  "adapter: dataset version a -> b").
- `verify_release(store, id, config)`: re-hashes the stored manifest (its id), every artifact
  in the artifact store, and (with the project's config) everything the candidate reads now,
  and names what drifted.
- `materialize(store, release, folder)`: writes the release's files from the artifact store and
  a rung.yaml of its configuration into `folder`: what a gateway serves, unaffected by later
  edits of the project's files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rung.ops.releases.errors import ReleaseError
from rung.ops.releases.store import Release, ReleaseStore, recomputed_id

if TYPE_CHECKING:
    from rung.config import RungConfig


@dataclass
class Change:
    """One difference: the component, the thing in it, and how it changed."""

    component: str
    name: str
    detail: str

    def __str__(self) -> str:
        return f"{self.component} {self.name}: {self.detail}" if self.name else f"{self.component}: {self.detail}"


def _short(v: Any) -> str:
    if isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v):
        return v[:12]
    return "-" if v is None else str(v)


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: {}}
    return {prefix: d}


def _dict_changes(component: str, a: dict[str, Any] | None, b: dict[str, Any] | None,
                  skip: tuple[str, ...] = ()) -> list[Change]:
    fa, fb = _flat(a or {}), _flat(b or {})
    out = []
    for k in sorted(set(fa) | set(fb)):
        if any(k == s or k.startswith(s + ".") for s in skip):
            continue
        if fa.get(k) != fb.get(k):
            out.append(Change(component, k, f"{_short(fa.get(k))} -> {_short(fb.get(k))}"))
    return out


def diff_content(a: dict[str, Any], b: dict[str, Any]) -> list[Change]:
    """What changed from content `a` to content `b` (release manifests' `content`)."""
    out: list[Change] = []
    explained: set[str] = set()
    ca, cb = a.get("candidate", {}), b.get("candidate", {})
    if ca.get("name") != cb.get("name"):
        out.append(Change("candidate", "", f"{ca.get('name')} -> {cb.get('name')}"))
    if ca.get("level") != cb.get("level"):
        out.append(Change("level", "", f"{ca.get('level')} -> {cb.get('level')}"))
    out += _dict_changes("candidate", ca.get("config"), cb.get("config"))
    ma, mb = a.get("model") or {}, b.get("model") or {}
    if ma.get("weights_sha256") != mb.get("weights_sha256"):
        out.append(Change("model", "weights",
                          f"{_short(ma.get('weights_sha256'))} -> {_short(mb.get('weights_sha256'))}"))
    out += _dict_changes("model", ma, mb, skip=("weights_sha256",))
    out += _adapter_changes(a.get("adapter"), b.get("adapter"))
    for ad in (a.get("adapter"), b.get("adapter")):
        explained.update((ad or {}).get("files", []))
    out += _prompt_changes(a.get("prompt"), b.get("prompt"), explained)
    out += _knowledge_changes(a.get("knowledge"), b.get("knowledge"), explained)
    out += _dict_changes("reranker", a.get("reranker"), b.get("reranker"))
    ga, gb = a.get("refusal_gate"), b.get("refusal_gate")
    if (ga or {}).get("suite_hash") != (gb or {}).get("suite_hash"):
        out.append(Change("refusal gate", "examples", _presence(ga, gb) or
                          f"{(ga or {}).get('cases')} cases ({_short(ga.get('suite_hash'))}) -> "
                          f"{(gb or {}).get('cases')} cases ({_short(gb.get('suite_hash'))})"))
    for g in (ga, gb):
        explained.update((g or {}).get("examples", []))
    for comp in ("schemas", "tools"):
        xa, xb = a.get(comp) or {}, b.get(comp) or {}
        for n in sorted(set(xa) | set(xb)):
            if xa.get(n) != xb.get(n):
                detail = _presence(xa.get(n), xb.get(n)) or \
                    f"{_short((xa.get(n) or {}).get('sha256'))} -> {_short((xb.get(n) or {}).get('sha256'))}"
                out.append(Change(comp[:-1], n, detail))
            for x in (xa.get(n), xb.get(n)):
                if x and x.get("file"):
                    explained.add(x["file"])
    out += _dict_changes("guardrails", a.get("guardrails"), b.get("guardrails"))
    fa, fb = a.get("files", {}), b.get("files", {})
    for k in sorted(set(fa) | set(fb)):
        if k not in explained and fa.get(k) != fb.get(k):
            out.append(Change("file", k, _presence(fa.get(k), fb.get(k)) or
                              f"{_short(fa.get(k))} -> {_short(fb.get(k))}"))
    return out


def _presence(a: Any, b: Any) -> str | None:
    if a is None and b is not None:
        return "added"
    if a is not None and b is None:
        return "removed"
    return None


def _adapter_changes(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[Change]:
    p = _presence(a, b)
    if p:
        return [Change("adapter", (a or b or {}).get("name", ""), p)]
    if a is None or b is None:
        return []
    out = []
    if a.get("name") != b.get("name"):
        out.append(Change("adapter", "", f"{a.get('name')} -> {b.get('name')}"))
    la, lb = a.get("lineage") or {}, b.get("lineage") or {}
    if la.get("dataset_version") != lb.get("dataset_version"):
        out.append(Change("adapter", "dataset", f"new dataset version {la.get('dataset_version')} -> "
                          f"{lb.get('dataset_version')}"))
    if la.get("job_id") != lb.get("job_id"):
        out.append(Change("adapter", "training job", f"{la.get('job_id')} -> {lb.get('job_id')}"))
    if a.get("sha256") != b.get("sha256"):
        out.append(Change("adapter", "weights", f"{_short(a.get('sha256'))} -> {_short(b.get('sha256'))}"))
    return out


def _prompt_changes(a: dict[str, Any] | None, b: dict[str, Any] | None, explained: set[str]) -> list[Change]:
    ba = {x["name"]: x for x in (a or {}).get("blocks", [])}
    bb = {x["name"]: x for x in (b or {}).get("blocks", [])}
    out = []
    for n in sorted(set(ba) | set(bb)):
        x, y = ba.get(n), bb.get(n)
        for blk in (x, y):
            if blk:
                explained.add(blk["file"])
        if x == y:
            continue
        p = _presence(x, y)
        if p:
            out.append(Change("prompt block", n, f"{p} (version {(x or y)['version']})"))
        elif x["version"] != y["version"]:
            out.append(Change("prompt block", n, f"version {x['version']} -> {y['version']}"))
        elif x["sha256"] != y["sha256"]:
            out.append(Change("prompt block", n, f"content changed, version still {x['version']}"))
    ta, tb = (a or {}).get("template"), (b or {}).get("template")
    for t in (ta, tb):
        if t:
            explained.add(t["file"])
    if ta != tb:
        out.append(Change("prompt template", (ta or tb or {}).get("file", ""), _presence(ta, tb) or
                          f"{ta.get('version')} -> {tb.get('version')}"))
    return out


def _knowledge_changes(a: dict[str, Any] | None, b: dict[str, Any] | None, explained: set[str]) -> list[Change]:
    p = _presence(a, b)
    if p:
        return [Change("knowledge", (a or b or {}).get("corpus", ""), p)]
    if a is None or b is None:
        return []
    da = {d["id"]: d for d in a.get("documents", [])}
    db = {d["id"]: d for d in b.get("documents", [])}
    docs: list[Change] = []
    counts = {"changed": 0, "added": 0, "removed": 0}
    for i in sorted(set(da) | set(db)):
        x, y = da.get(i), db.get(i)
        for d in (x, y):
            if d:
                explained.add(d["file"])
        if x == y:
            continue
        p = _presence(x, y)
        where = (x or y)["file"]
        if p:
            counts[p] += 1
            docs.append(Change("knowledge document", i, f"{p} ({where}, version {(x or y).get('version')})"))
            continue
        counts["changed"] += 1
        parts = []
        if x["sha256"] != y["sha256"]:
            parts.append("content changed")
        for k in ("version", "effective_date", "file"):
            if x.get(k) != y.get(k):
                parts.append(f"{k} {x.get(k)} -> {y.get(k)}")
        if x["sha256"] != y["sha256"] and x.get("version") == y.get("version"):
            parts.append(f"version still {x.get('version')}")
        docs.append(Change("knowledge document", i, f"{', '.join(parts)} ({where})"))
    out = []
    if docs:
        summary = ", ".join(f"{n} document{'s' if n != 1 else ''} {k}" for k, n in counts.items() if n)
        out.append(Change("knowledge", a.get("corpus", ""), summary))
    out += docs
    out += _dict_changes("knowledge", {k: a.get(k) for k in ("corpus", "chunking", "embedder")},
                         {k: b.get(k) for k in ("corpus", "chunking", "embedder")})
    return out


def diff_releases(a: Release, b: Release) -> list[Change]:
    """Content changes from a to b, then the evidence's."""
    out = diff_content(a.content, b.content)
    ra = {r["suite"]: r["id"] for r in a.evidence.get("runs", [])}
    rb = {r["suite"]: r["id"] for r in b.evidence.get("runs", [])}
    for s in sorted(set(ra) | set(rb)):
        if ra.get(s) != rb.get(s):
            out.append(Change("evidence", f"run on {s}", f"{ra.get(s, '-')} -> {rb.get(s, '-')}"))
    if a.evidence.get("decision") != b.evidence.get("decision"):
        da, db = a.evidence.get("decision") or {}, b.evidence.get("decision") or {}
        out.append(Change("evidence", "decision", f"{da.get('action', '-')} {da.get('candidate') or ''} -> "
                          f"{db.get('action', '-')} {db.get('candidate') or ''}".strip()))
    if a.evidence.get("rung_version") != b.evidence.get("rung_version"):
        out.append(Change("evidence", "rung version", f"{a.evidence.get('rung_version')} -> "
                          f"{b.evidence.get('rung_version')}"))
    return out


# ---------------------------------------------------------------- verify

@dataclass
class Verification:
    release: str
    checked_files: int
    drift: list[Change] = field(default_factory=list)
    against_project: bool = False

    @property
    def ok(self) -> bool:
        return not self.drift


def verify_release(store: ReleaseStore, release_id: str, config: RungConfig | None = None) -> Verification:
    """Re-hash the manifest, the stored artifacts and (with `config`) the project's files now;
    every difference is named."""
    from rung.ops.releases.manifest import snapshot

    rel = store.load_release(release_id)
    v = Verification(rel.id, len(rel.content.get("files", {})))
    again = recomputed_id(rel)
    if again != rel.id:
        v.drift.append(Change("manifest", "", f"the stored manifest hashes to {again[:12]}, not its id"))
    for key, sha in sorted(rel.content.get("files", {}).items()):
        problem = store.check_blob(sha)
        if problem:
            v.drift.append(Change("artifact", key, problem))
    if config is not None:
        v.against_project = True
        if rel.candidate not in config.candidates:
            v.drift.append(Change("candidate", rel.candidate, f"no longer in {config.source}"))
        else:
            v.drift += diff_content(rel.content, snapshot(config, rel.candidate).content)
    return v


# ---------------------------------------------------------------- materialize

def materialize(store: ReleaseStore, release: Release | str, folder: str | Path) -> Path:
    """Write the release's files (from the artifact store, checked) and a rung.yaml of its
    configuration into `folder`; returns the rung.yaml path. Files that were outside the
    project folder keep their absolute paths in the configuration (they are checked, not
    moved)."""
    import yaml

    rel = release if isinstance(release, Release) else store.load_release(release)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for key, sha in sorted(rel.content.get("files", {}).items()):
        problem = store.check_blob(sha)
        if problem:
            raise ReleaseError(f"release {rel.short}: {key}: {problem}")
        if Path(key).is_absolute():
            continue
        dest = (out / key).resolve()
        if out.resolve() not in dest.parents:
            raise ReleaseError(f"release {rel.short}: file key {key!r} leaves the folder")
        store.copy_blob(sha, dest)
    record = dict(rel.provenance.get("record") or {})
    if not record:
        raise ReleaseError(f"release {rel.short} has no configuration record")
    cfg = out / "rung.yaml"
    header = f"# release {rel.id} ({rel.candidate}), written by rung release; do not edit\n"
    cfg.write_text(header + yaml.safe_dump(record, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return cfg
