"""Evidence: what rung measured for each candidate, the input of every decision.

`gather_evidence(config, store, suite=..., run_ids=...)` picks, for each candidate of rung.yaml,
the latest finished run on the suite (or the runs named explicitly), summarises it with
`aggregate` (means with 95% bootstrap intervals, P50/P95, tokens, per-tag), reads the lineage of
adapters and fine-tuned weights (`rung-lineage.json`, written by `rung tune`) and pairs each
level 1/2 run with its level-0 counterpart (`compare`) when both answered the same cases.
Everything after this module is a pure function of the `Evidence` list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rung.errors import ArtifactError
from rung.pipeline.candidate import candidate_parts, recipe
from rung.tune.train.artifacts import LINEAGE_FILE, read_lineage

if TYPE_CHECKING:
    from rung.config import RungConfig
    from rung.decide.diagnose import RunDiagnosis
    from rung.evals.aggregate import MetricSummary, RunSummary
    from rung.evals.compare import Comparison
    from rung.evals.store import RunStore
    from rung.evals.types import RunResult

METRICS_FILE = "metrics.jsonl"
# metrics whose paired change the decision reports (adapter gain)
GAIN_METRICS = ("task_success", "hallucination", "schema_valid", "refusal_correct")
# lineage keys that may hold the measured training time, in seconds (first found wins)
_TRAIN_SECONDS_KEYS = ("train_seconds", "training_seconds", "train_time_s", "duration_s",
                       "wall_s", "elapsed_s", "runtime_s")
_EXAMPLE_COUNT_KEYS = ("n_examples", "examples", "num_examples", "count", "n", "total")


@dataclass
class ArtifactInfo:
    """What `rung-lineage.json` (next to an adapter or fine-tuned weights) says, if present."""

    path: str  # the adapter / weights folder named in rung.yaml
    lineage_path: str | None = None  # where rung-lineage.json was found (None: not found)
    method: str | None = None
    base_model: str | None = None
    dataset_version: str | None = None
    train_examples: int | None = None
    training_seconds: float | None = None  # measured by the tuning job
    metrics_path: str | None = None  # the job's metrics.jsonl (training curve), if present
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class Gain:
    """A level 1/2 run paired case by case with its level-0 counterpart (delta = this - L0)."""

    baseline_candidate: str
    baseline_run: str
    n_pairs: int
    how: str  # why this baseline: "same recipe without the adapter" | "same model" | ...
    deltas: dict[str, tuple[float, float, float, float | None]] = field(default_factory=dict)
    # metric -> (delta, ci_low, ci_high, p_value)
    p95_delta_ms: float | None = None
    p95_ci_ms: tuple[float, float] | None = None


@dataclass
class Evidence:
    """One candidate's measured behaviour on the suite."""

    candidate: str
    level: int
    run_id: str
    summary: RunSummary
    model: str = ""  # model name in rung.yaml ("" when the candidate is not in rung.yaml)
    model_id: str = ""
    self_hosted: bool = True
    price_in_per_1k: float = 0.0
    price_out_per_1k: float = 0.0
    parts: list[str] = field(default_factory=list)  # level-0 parts: retrieval, tools, schema, ...
    artifact: ArtifactInfo | None = None
    gain: Gain | None = None
    notes: list[str] = field(default_factory=list)
    diagnosis: RunDiagnosis | None = None  # failing cases by cause (rung.decide.diagnose)

    def metric(self, name: str) -> MetricSummary | None:
        m = self.summary.metrics.get(name)
        return m if m is not None and m.mean is not None else None

    @property
    def served(self) -> bool:
        """The run has a latency probe: its latency is measured as served, not as evaluated."""
        return self.summary.served_p95_latency_ms is not None

    @property
    def p95_ms(self) -> float | None:
        """The P95 the decision judges: as served (the latency probe) when measured, else the
        batched evaluation's (`latency_basis` says which)."""
        if self.served:
            return self.summary.served_p95_latency_ms
        return self.summary.p95_latency_ms

    @property
    def p50_ms(self) -> float | None:
        if self.served:
            return self.summary.served_p50_latency_ms
        return self.summary.p50_latency_ms

    @property
    def batched_p95_ms(self) -> float | None:
        """P95 of the evaluation's per-case latency: each case waited for its whole batch."""
        return self.summary.p95_latency_ms

    @property
    def latency_basis(self) -> str:
        """Which latency `p95_ms` is, in words."""
        s = self.summary
        if self.served:
            at = "one request at a time" if s.served_concurrency == 1 else \
                f"{s.served_concurrency} requests at a time"
            return f"as served ({len(s.served_latencies_ms)} sampled cases, {at}, uncached)"
        batch = f"batches of {s.throughput_batch_size}" if s.throughput_batch_size else "batched"
        return f"as evaluated ({batch}; no latency probe in the run)"

    @property
    def mean_latency_ms(self) -> float | None:
        m = self.metric("latency_ms")
        if m is not None:
            return m.mean
        lat = self.summary.latencies_ms
        return sum(lat) / len(lat) if lat else self.summary.p50_latency_ms

    @property
    def label(self) -> str:
        return f"L{self.level} {self.candidate!r}"


def read_artifact(path: str | Path) -> ArtifactInfo:
    """Read rung-lineage.json in the adapter/weights folder (or its parent, the job folder)."""
    p = Path(path)
    info = ArtifactInfo(path=str(p))
    for folder in (p, p.parent):
        if info.lineage_path is None and (folder / LINEAGE_FILE).is_file():
            raw = read_lineage(folder)
            if not isinstance(raw, dict):
                raise ArtifactError(f"{folder / LINEAGE_FILE}: expected a JSON object, got {type(raw).__name__}")
            info.lineage_path, info.raw = str(folder / LINEAGE_FILE), raw
        if info.metrics_path is None and (folder / METRICS_FILE).is_file():
            info.metrics_path = str(folder / METRICS_FILE)
    raw = info.raw
    if raw:
        info.method = _str(raw.get("method"))
        base = raw.get("base_model") or raw.get("base")
        info.base_model = _str(base.get("id") or base.get("path")) if isinstance(base, dict) else _str(base)
        ds = raw.get("dataset")
        if isinstance(ds, dict):
            info.dataset_version = _str(ds.get("version"))
            info.train_examples = _count(ds)
        else:
            info.dataset_version = _str(raw.get("dataset_version") or ds)
        info.training_seconds = _find_seconds(raw)
    return info


def _str(v: Any) -> str | None:
    return None if v is None else str(v)


def _count(ds: dict[str, Any]) -> int | None:
    splits = ds.get("splits")  # rung tune: {"train": n, "dev": m}
    if isinstance(splits, dict) and isinstance(splits.get("train"), int):
        return int(splits["train"])
    for key in _EXAMPLE_COUNT_KEYS:
        v = ds.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return int(v)
    counts = ds.get("counts") or ds.get("lineage") or ds.get("by_source")
    if isinstance(counts, dict):
        for key in _EXAMPLE_COUNT_KEYS:
            v = counts.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return int(v)
        nums = [v for v in counts.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if nums:
            return int(sum(nums))
    return None


def _find_seconds(raw: dict[str, Any]) -> float | None:
    """The measured training time: a known key at the top level or one level down."""
    for scope in [raw, *[v for v in raw.values() if isinstance(v, dict)]]:
        for key in _TRAIN_SECONDS_KEYS:
            v = scope.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0:
                return float(v)
    return None


# ---- gathering from the store ------------------------------------------------------------


@dataclass
class Gathered:
    """Evidence plus the runs behind it (the report shows their failing cases)."""

    evidence: list[Evidence]
    runs: dict[str, RunResult]
    missing: list[str]  # candidates of rung.yaml with no finished run on the suite
    notes: list[str] = field(default_factory=list)


def gather_evidence(config: RungConfig, store: RunStore, *, suite: str | None = None,
                    suite_hash: str | None = None, run_ids: list[str] | None = None) -> Gathered:
    """For each candidate, its latest finished run on `suite` (or the runs named by `run_ids`)."""
    from rung.evals.aggregate import aggregate

    notes: list[str] = []
    missing: list[str] = []
    infos = []
    if run_ids:
        infos = [store.get_info(r) for r in run_ids]
    else:
        all_runs = [i for i in store.list_runs(limit=None) if i.status == "finished"
                    and (suite is None or i.suite == suite)]
        for name in config.candidates:
            mine = [i for i in all_runs if i.candidate == name]  # newest first
            fresh = [i for i in mine if suite_hash and i.suite_hash == suite_hash]
            if fresh:
                infos.append(fresh[0])
            elif mine:
                infos.append(mine[0])
                notes.append(f"{name}: latest run {mine[0].id} was made on another version of the "
                             f"suite (hash {mine[0].suite_hash[:12]}); re-run `rung eval` to refresh it")
            else:
                missing.append(name)
    runs: dict[str, RunResult] = {}
    evidence: list[Evidence] = []
    for info in infos:
        run = store.get_run(info.id)
        runs[info.id] = run
        evidence.append(_evidence(config, run, aggregate(run)))
    for e in evidence:
        if e.level >= 1:
            e.gain = _pair_with_level0(config, e, evidence, runs)
    return Gathered(evidence, runs, missing, notes)


def _evidence(config: RungConfig, run: RunResult, summary: RunSummary) -> Evidence:
    from rung.config import CandidateConfig
    from rung.decide.diagnose import diagnose_run

    info = run.info
    cand: CandidateConfig | None = config.candidates.get(info.candidate)
    notes: list[str] = []
    if cand is None:
        try:
            cand = CandidateConfig.model_validate(info.candidate_config or {})
        except ValueError:
            cand = None
        notes.append(f"candidate {info.candidate!r} is not in rung.yaml; read from the run")
    cached = sum(1 for r in run.results if r.answer.cached)
    if cached:
        # the response cache replays an answer with the latency measured when it was generated,
        # possibly on a busier (or quieter) machine than this run's
        notes.append(f"{cached} of {len(run.results)} answers came from the response cache: their "
                     f"latency is the one measured when they were first generated (`rung eval "
                     f"--no-cache` re-measures it)")
    e = Evidence(candidate=info.candidate, level=info.level, run_id=info.id, summary=summary,
                 model_id=info.model_id, price_in_per_1k=info.price_in_per_1k,
                 price_out_per_1k=info.price_out_per_1k, notes=notes, self_hosted=False,
                 diagnosis=diagnose_run(run, info.candidate, info.level))
    if cand is None:
        e.notes.append("model unknown: counted as not self-hosted")
        return e
    e.parts = candidate_parts(cand)
    e.model = cand.model
    model = config.models.get(cand.model)
    if model is None:
        e.notes.append(f"model {cand.model!r} is not in rung.yaml: counted as not self-hosted")
        return e
    e.self_hosted = model.is_self_hosted
    e.price_in_per_1k, e.price_out_per_1k = model.price.input_per_1k, model.price.output_per_1k
    artifact_path = None
    if cand.adapter:
        artifact_path = model.adapters.get(cand.adapter)  # endpoints name adapters, no path
    elif e.level >= 2 and model.backend == "local":
        artifact_path = model.path
    if artifact_path and not artifact_path.startswith("embedded:"):
        resolved = config.resolve(artifact_path)
        if resolved.exists():
            e.artifact = read_artifact(resolved)
            if e.artifact.lineage_path is None:
                e.notes.append(f"no {LINEAGE_FILE} next to {artifact_path}: training cost estimated")
        else:
            e.artifact = ArtifactInfo(path=str(resolved))
            e.notes.append(f"artifact {artifact_path} not found on disk")
    return e


def _pair_with_level0(config: RungConfig, e: Evidence, evidence: list[Evidence],
                      runs: dict[str, RunResult]) -> Gain | None:
    """Compare a level 1/2 run with its level-0 counterpart when they share cases."""
    from rung.evals.compare import compare

    level0 = [x for x in evidence if x.level == 0]
    if not level0:
        return None
    base, how = _counterpart(config, e, level0)
    a, b = runs[base.run_id], runs[e.run_id]
    shared = {r.case.id for r in a.results} & {r.case.id for r in b.results}
    if not shared:
        e.notes.append(f"no case shared with {base.candidate!r}: no paired gain")
        return None
    return gain_from_comparison(compare(a, b), base.candidate, how)


def gain_from_comparison(c: Comparison, baseline: str, how: str) -> Gain:
    g = Gain(baseline_candidate=baseline, baseline_run=c.run_a, n_pairs=0, how=how)
    for name in GAIN_METRICS:
        d = c.metrics.get(name)
        if d is not None and d.delta is not None:
            g.deltas[name] = (d.delta, d.ci_low or 0.0, d.ci_high or 0.0, d.p_value)
            g.n_pairs = max(g.n_pairs, d.n_pairs)
    if c.latency_p95 is not None:
        g.p95_delta_ms = c.latency_p95.delta
        g.p95_ci_ms = (c.latency_p95.ci_low, c.latency_p95.ci_high)
        g.n_pairs = max(g.n_pairs, c.latency_p95.n_pairs)
    return g


def _counterpart(config: RungConfig, e: Evidence, level0: list[Evidence]) -> tuple[Evidence, str]:
    """The level-0 candidate this one was built on: the same recipe without the adapter/level,
    else one on the same model, else the best level-0 candidate by task success."""
    cand = config.candidates.get(e.candidate)
    if cand is not None:
        mine = recipe(cand)  # the lineage rule of rung.pipeline.candidate
        for x in level0:
            other = config.candidates.get(x.candidate)
            if other is not None and recipe(other) == mine:
                return x, "same recipe without the adapter"
        for x in level0:
            if x.model and x.model == e.model:
                return x, "same model"

    def ts(x: Evidence) -> float:
        m = x.metric("task_success")
        return m.mean if m is not None and m.mean is not None else -1.0

    best = max(level0, key=ts)
    return best, "best level-0 candidate"
