"""Making a release: the candidate's snapshot + the evidence, files copied by hash, stored once."""

from __future__ import annotations

import json
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rung.config import paths
from rung.ops.releases.errors import ReleaseError
from rung.ops.releases.manifest import release_id, snapshot
from rung.ops.releases.store import Release, ReleaseStore, current_user, now_iso

if TYPE_CHECKING:
    from rung.config import RungConfig

DECISION_FILE = f"{paths.DECISIONS}/{paths.DECISION_FILE}"  # where `rung decide` writes it by default


@dataclass
class Created:
    release: Release
    created: bool  # False: a release with the same content and evidence already existed
    notes: list[str] = field(default_factory=list)


def read_decision(path: str | Path) -> dict[str, Any]:
    """The summary of a `rung decide` decision.json that enters a release's evidence."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ReleaseError(f"{p}: not a decision file written by `rung decide` ({e})") from None
    if not isinstance(data, dict) or "action" not in data:
        raise ReleaseError(f"{p}: not a decision file written by `rung decide` (no 'action')")
    return {k: data.get(k) for k in ("action", "level", "candidate", "headline")}


def create_release(config: RungConfig, candidate: str | None, store: ReleaseStore, *,
                   runs: list[str] | None = None, decision: str | Path | None = None,
                   note: str = "", who: str | None = None,
                   progress: Callable[[int, int], None] | None = None) -> Created:
    """Snapshot `candidate`, gather its evidence and store the release (idempotent).

    Evidence: the runs named in `runs` (each must be a finished run of this very recipe: same
    candidate hash), else the latest finished run of the candidate on each suite of rung.yaml;
    the decision summary from `decision` (a decision.json). Files are copied into the artifact
    store before the release row is written, so a stored release always has its files."""
    from rung import __version__
    from rung.evals.runner import git_commit
    from rung.pipeline.pipeline import build_pipeline

    snap = snapshot(config, candidate)
    notes: list[str] = []
    # the candidate hash the runner gives this recipe on this machine: how its runs are found
    pipeline = build_pipeline(config, snap.candidate, use_cache=False, progress=progress)
    chash = pipeline.hash
    evidence_runs = _evidence_runs(config, store, snap.candidate, chash, runs, notes)
    decision_summary = None
    if decision is not None:
        decision_summary = read_decision(decision)
        if decision_summary.get("candidate") != snap.candidate:
            notes.append(f"the decision chose {decision_summary.get('candidate')!r}, not {snap.candidate!r}")
    evidence = {"runs": evidence_runs, "decision": decision_summary, "rung_version": __version__}
    rid = release_id(snap.content, evidence)
    for key, path in sorted(snap.files.items()):
        store.put_file(path, snap.content["files"][key])
    commit = git_commit(config.root)
    created_at, by = now_iso(), who or current_user()
    manifest = {
        "content": snap.content,
        "evidence": evidence,
        "provenance": {  # not part of the id
            "created_at": created_at, "created_by": by, "note": note, "git_commit": commit,
            "host": platform.node(), "project": config.project, "source": str(config.source or ""),
            "candidate_hash": chash, "record": snap.record,
        },
    }
    rel = Release(rid, snap.candidate, snap.content["candidate"]["level"], created_at, by, note,
                  commit, manifest)
    created = store.add_release(rel)
    if not created:
        rel = store.load_release(rid)
        notes.append(f"release {rel.short} already existed (same content and evidence), "
                     f"created {rel.created_at} by {rel.created_by}")
    return Created(rel, created, notes)


def _evidence_runs(config: RungConfig, store: ReleaseStore, name: str, chash: str,
                   runs: list[str] | None, notes: list[str]) -> list[dict[str, Any]]:
    from rung.evals.suite import load_suite

    infos = []
    if runs:
        for r in runs:
            info = store.runs.get_info(r)
            if info.status != "finished":
                raise ReleaseError(f"run {info.id} is {info.status}, not finished: finish it "
                                   "(`rung eval --resume`) before it can be evidence")
            if info.candidate_hash != chash:
                raise ReleaseError(
                    f"run {info.id} ({info.candidate}) was made with another recipe than {name} as it is "
                    f"now (candidate hash {info.candidate_hash[:12]}, now {chash[:12]}): its numbers are "
                    "not evidence for this release; evaluate it again with `rung eval`")
            infos.append(info)
    else:
        for suite_name, suite_cfg in config.suites.items():
            suite = load_suite(config.resolve(suite_cfg.path), name=suite_name)
            info = store.runs.latest_finished(chash, suite.hash)
            if info is None:
                notes.append(f"no finished run of {name} on suite {suite_name} (as it is now): promotion "
                             f"will need --force; run `rung eval -C {name} -s {suite_name}` first")
            else:
                infos.append(info)
    out = [{"id": i.id, "suite": i.suite, "suite_hash": i.suite_hash} for i in infos]
    return sorted(out, key=lambda r: (r["suite"], r["id"]))
