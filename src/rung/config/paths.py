"""Where rung keeps what it writes: the one place for every default path.

Project state lives under `.rung/` next to rung.yaml; each default below is what `paths:` in
rung.yaml falls back to (relative to the file's folder), and what commands use when there is no
rung.yaml. User-level caches (converted embedded models, weight hashes) live under $RUNG_HOME.
Plain constants and functions, importing nothing of rung.
"""

from __future__ import annotations

import os
from pathlib import Path

STATE_DIR = ".rung"

STORE = f"{STATE_DIR}/rung.db"  # the run store (SQLite; paths.store may be a SQLAlchemy URL)
CACHE = f"{STATE_DIR}/cache.db"  # the response cache
ARTIFACTS = f"{STATE_DIR}/artifacts"  # trained adapters and weights, one folder per job id
DATASETS = f"{STATE_DIR}/datasets"  # built training datasets, one folder per version
REPORTS = f"{STATE_DIR}/report"  # report.html / report.md of `rung report`, `rung ladder`, `rung demo`
DECISIONS = f"{STATE_DIR}/decision"  # decision.html / .md / .json of `rung decide`
RELEASES = f"{STATE_DIR}/releases"  # released candidates (rung.ops.releases)
TRACES = f"{STATE_DIR}/traces"  # traces of answered live requests (the gateway)
INDEX = f"{STATE_DIR}/index"  # retrieval indexes, one folder per corpus (knowledge.NAME.index_dir)
DECISION_FILE = "decision.json"  # what `rung decide` writes into DECISIONS (and `rung release` reads)
ALERTS = f"{STATE_DIR}/alerts.jsonl"  # alert events of `rung monitor` (monitor.log)
MONITOR_STATE = f"{STATE_DIR}/monitor-state.json"  # what `rung monitor` keeps between runs
DRIFT_CASES = f"{STATE_DIR}/drift/candidate-cases.jsonl"  # cases `rung drift` proposes (drift.output)

# the keys of `paths:` in rung.yaml and their defaults
DEFAULTS: dict[str, str] = {
    "store": STORE, "cache": CACHE, "artifacts": ARTIFACTS, "datasets": DATASETS,
    "reports": REPORTS, "decisions": DECISIONS, "releases": RELEASES, "traces": TRACES,
}

RUNG_HOME_ENV = "RUNG_HOME"
RUNG_HOME_DEFAULT = "~/.cache/rung"


def rung_home() -> Path:
    """$RUNG_HOME, by default ~/.cache/rung: user-level caches shared by every project."""
    return Path(os.environ.get(RUNG_HOME_ENV) or RUNG_HOME_DEFAULT).expanduser()


def index_dir(root: Path, corpus: str) -> Path:
    """The default index folder of a corpus: <root>/.rung/index/<corpus>."""
    return root / INDEX / corpus
