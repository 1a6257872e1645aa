"""Drift: live requests vs the eval suite. Does the suite still cover what users ask?

`drift_report(live, cases, embedder, config)`:

- embedding distance: each live request's cosine distance to its nearest eval case (the
  embedded MiniLM by default), against the suite's own spread (each case's distance to its
  nearest other case): a live median well above the suite's means the traffic moved;
- far share: requests farther than `far_threshold` from every case; above `max_far_share` the
  suite under-covers live traffic;
- mix: the share of each jurisdiction, product, language and tag value live vs in the suite
  (total variation distance per dimension; values live traffic has much more of, or that the
  suite lacks, are named);
- new topics: the far requests clustered (k-means on the embeddings), each cluster with its
  size, its most typical requests, its top terms and its nearest eval case: "the suite
  under-covers X: add cases like these";
- candidate cases: the clusters' requests as a JSONL of cases to label (`reference` and
  `should_refuse` left empty, lineage to the trace).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rung.config.operations import DriftConfig
from rung.core import Case
from rung.ops.records import TraceRecord

DIMENSIONS = ("jurisdiction", "product", "language")


@dataclass
class MixShift:
    dimension: str
    live: dict[str, float]  # value -> share of live requests
    suite: dict[str, float]  # value -> share of eval cases
    tvd: float  # total variation distance
    under_covered: list[str]  # values live traffic has much more of than the suite


@dataclass
class Cluster:
    size: int
    terms: list[str]
    examples: list[str]
    trace_ids: list[str]
    nearest_case: str
    nearest_distance: float
    mean_distance: float


@dataclass
class DriftReport:
    n_live: int
    n_cases: int
    distance_p50: float | None
    distance_p90: float | None
    suite_distance_p50: float | None  # the suite's own nearest-neighbour distance
    far_threshold: float
    far_share: float
    max_far_share: float
    mix: list[MixShift]
    clusters: list[Cluster]
    findings: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return self.far_share > self.max_far_share or any(m.under_covered for m in self.mix)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"drifted": self.drifted}


def _question(r: TraceRecord) -> str:
    return (r.input or next((m.get("content", "") for m in reversed(r.messages) if m.get("role") == "user"), "")
            or "").strip()


def _case_dims(c: Case) -> dict[str, str]:
    from rung.tune.data.language import guess_language

    out: dict[str, str] = {}
    for t in c.tags:
        if ":" in t:
            k, v = t.split(":", 1)
            if k in ("jurisdiction", "product", "language", "lang"):
                out["language" if k == "lang" else k] = v
    for k in ("jurisdiction", "product", "language"):
        if k not in out and c.metadata.get(k) is not None:
            out[k] = str(c.metadata[k])
    out.setdefault("language", guess_language(c.question))
    return out


def _live_dims(r: TraceRecord) -> dict[str, str]:
    from rung.tune.data.language import guess_language

    out = {k: str(r.metadata[k]) for k in ("jurisdiction", "product", "language") if r.metadata.get(k)}
    out.setdefault("language", guess_language(_question(r)))
    return out


def _shares(values: list[str]) -> dict[str, float]:
    n = len(values)
    return {k: round(v / n, 4) for k, v in Counter(values).most_common()} if n else {}


def mix_shifts(live: Sequence[TraceRecord], cases: Sequence[Case], min_share: float = 0.05) -> list[MixShift]:
    """Per dimension: live vs suite shares; under-covered = live share >= min_share and at least
    twice the suite's (or absent from the suite)."""
    out = []
    ld = [_live_dims(r) for r in live]
    cd = [_case_dims(c) for c in cases]
    for dim in DIMENSIONS:
        lv = _shares([d.get(dim, "unknown") for d in ld])
        sv = _shares([d.get(dim, "unknown") for d in cd])
        keys = set(lv) | set(sv)
        tvd = round(0.5 * sum(abs(lv.get(k, 0.0) - sv.get(k, 0.0)) for k in keys), 4)
        under = [k for k, s in lv.items() if k != "unknown" and s >= min_share and s >= 2 * sv.get(k, 0.0)]
        out.append(MixShift(dim, lv, sv, tvd, under))
    return out


def _top_terms(texts: list[str], background: list[str], k: int = 4) -> list[str]:
    """Words frequent in the cluster and rare in the suite (TF-IDF against the suite)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    try:
        vec = TfidfVectorizer(stop_words="english", min_df=1, token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z0-9-]{2,}\b")
        vec.fit(background + [" ".join(texts)])
        row = vec.transform([" ".join(texts)]).toarray()[0]
    except ValueError:
        return []
    names = vec.get_feature_names_out()
    return [names[i] for i in row.argsort()[::-1][:k] if row[i] > 0]


def drift_report(live: Sequence[TraceRecord], cases: Sequence[Case], embedder: Any,
                 config: DriftConfig, *, seed: int = 0) -> DriftReport:
    import numpy as np

    live = [r for r in live if _question(r) and r.arm in ("stable", "canary")]  # shadow copies repeat
    live = list({r.request_id: r for r in live}.values())
    questions = [_question(r) for r in live]
    case_texts = [c.question for c in cases]
    findings: list[str] = []
    if not live or not cases:
        return DriftReport(len(live), len(cases), None, None, None, config.far_threshold, 0.0,
                           config.max_far_share, mix_shifts(live, cases), [],
                           ["no live requests in the period" if not live else "the suite has no cases"])
    e_live = np.asarray(embedder.encode(questions, normalize_embeddings=True, convert_to_numpy=True,
                                        batch_size=64))
    e_case = np.asarray(embedder.encode(case_texts, normalize_embeddings=True, convert_to_numpy=True,
                                        batch_size=64))
    sim = e_live @ e_case.T
    nearest = sim.argmax(axis=1)
    dist = 1.0 - sim.max(axis=1)
    suite_p50 = None
    if len(cases) > 1:
        ss = e_case @ e_case.T
        np.fill_diagonal(ss, -1.0)
        suite_p50 = float(np.median(1.0 - ss.max(axis=1)))
    far = dist > config.far_threshold
    far_share = float(far.mean())
    mix = mix_shifts(live, cases)

    clusters: list[Cluster] = []
    far_idx = np.flatnonzero(far)
    if len(far_idx) >= config.min_cluster_size:
        from sklearn.cluster import KMeans

        k = max(1, min(config.clusters, len(far_idx) // config.min_cluster_size))
        km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(e_live[far_idx])
        for c in range(k):
            members = far_idx[km.labels_ == c]
            if len(members) < config.min_cluster_size:
                continue
            centre = km.cluster_centers_[c]
            order = members[np.argsort(-(e_live[members] @ centre))]
            texts = [questions[i] for i in order]
            best_case = int(np.bincount(nearest[members]).argmax())
            clusters.append(Cluster(
                size=int(len(members)), terms=_top_terms(texts, case_texts),
                examples=texts[:config.examples_per_cluster],
                trace_ids=[live[i].id for i in order],
                nearest_case=cases[best_case].id,
                nearest_distance=round(float(np.min(dist[members])), 4),
                mean_distance=round(float(np.mean(dist[members])), 4)))
        clusters.sort(key=lambda c: -c.size)

    p50, p90 = float(np.percentile(dist, 50)), float(np.percentile(dist, 90))
    if far_share > config.max_far_share:
        findings.append(f"{far_share:.0%} of live requests are farther than {config.far_threshold:g} "
                        f"(cosine distance) from every eval case (limit {config.max_far_share:.0%})")
    if suite_p50 is not None and p50 > 1.5 * suite_p50 and p50 - suite_p50 > 0.05:
        findings.append(f"live requests are farther from the suite (median {p50:.2f}) than its cases are "
                        f"from each other (median {suite_p50:.2f})")
    for m in mix:
        for v in m.under_covered:
            findings.append(f"{m.dimension} {v}: {m.live[v]:.0%} of live requests, "
                            f"{m.suite.get(v, 0.0):.0%} of the suite")
    for c in clusters:
        findings.append(f"the suite under-covers {' / '.join(c.terms) or 'a topic'} ({c.size} requests, "
                        f"mean distance {c.mean_distance:.2f}): add cases like \"{c.examples[0][:80]}\"")
    return DriftReport(len(live), len(cases), round(p50, 4), round(p90, 4),
                       None if suite_p50 is None else round(suite_p50, 4), config.far_threshold,
                       round(far_share, 4), config.max_far_share, mix, clusters, findings)


def candidate_cases(report: DriftReport, live: Sequence[TraceRecord]) -> list[dict[str, Any]]:
    """Cases to label, one per request of each new-topic cluster (reference / should_refuse
    empty; `metadata.drift` says where it came from)."""
    by_id = {r.id: r for r in live}
    out = []
    for ci, c in enumerate(report.clusters):
        for tid in c.trace_ids:
            r = by_id.get(tid)
            if r is None:
                continue
            meta = {k: v for k, v in r.metadata.items() if k in ("jurisdiction", "product", "language")}
            meta["drift"] = {"cluster": ci, "terms": c.terms, "trace": r.id, "release": r.release,
                             "nearest_case": c.nearest_case}
            case: dict[str, Any] = {"id": f"drift-{ci}-{r.id}", "reference": None, "should_refuse": None,
                                    "tags": ["drift", f"topic:{'-'.join(c.terms[:2]) or ci}"],
                                    "metadata": meta}
            if len(r.messages) > 1:
                case["messages"] = r.messages
            else:
                case["input"] = _question(r)
            out.append(case)
    return out


def write_cases(cases: list[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for c in cases:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
    return path
