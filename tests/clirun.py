"""TEST HELPER: the `rung` command as a user runs it, in a subprocess (offline, wide output)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

RUNG = [sys.executable, "-m", "rung"]


def run_rung(*args: str, cwd: Path | None = None, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """`python -m rung ARGS` with HF_HUB_OFFLINE=1 and COLUMNS=200 (plus `env`), output captured."""
    full = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", **env}
    return subprocess.run([*RUNG, *args], capture_output=True, text=True, cwd=cwd, env=full, timeout=timeout)
