"""TEST HELPERS for the release tests (no tests here): a small project served by the OpenAI
stub, a deterministic stand-in embedder, and a throwaway PostgreSQL server.

PostgreSQL: Debian's `postgresql` package (`apt-get install postgresql`; `make test` installs it
when run as root). The server is initialised in a temporary folder and started on a free port on
127.0.0.1; as root it runs as the `postgres` user (postgres refuses to run as root). Tests that
need it are skipped, with the reason, when the binaries or the psycopg driver are missing.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

# ---------------------------------------------------------------- a stand-in embedder

DIM = 32


class HashEmbedder:
    """Bag of hashed words, L2-normalised: deterministic, instant, no model files."""

    device = "cpu"

    def get_sentence_embedding_dimension(self) -> int:
        return DIM

    get_embedding_dimension = get_sentence_embedding_dimension

    def encode(self, texts, batch_size: int = 32, convert_to_numpy: bool = True, **_kw):  # noqa: ANN001, ANN201
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % DIM] += 1.0
        out += 1e-3
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def use_hash_embedder(monkeypatch) -> None:  # noqa: ANN001
    import rung.pipeline.retrieval.index as index

    fake = HashEmbedder()
    monkeypatch.setattr(index, "get_embedder", lambda spec, root=None: fake)


# ---------------------------------------------------------------- the project

CASES = [(f"c{i:02d}", f"Please confirm order code K{i:02d}X for me.", f"K{i:02d}X") for i in range(12)]
DOCS = {
    "refund-policy.md": "---\nid: refund-policy\nversion: 3\neffective_date: 2026-03-01\n---\n"
                        "# Refunds\n\nRefunds are possible within 30 days of delivery.\n",
    "shipping.md": "---\nid: shipping\nversion: 1\neffective_date: 2025-01-01\n---\n"
                   "# Shipping\n\nOrders ship within two working days.\n",
}
BLOCKS = {
    "persona.md": "---\nversion: 1\n---\nYou are the support desk of Example Corp.\n",
    "refusal-rules.md": "---\nversion: 3\n---\nRefuse requests for other people's data.\n",
}


def rung_yaml(url: str, *, adapter: str | None = None) -> str:
    adapter_line = f"    adapter: {adapter}\n" if adapter else ""
    return f"""project: release-fixture
models:
  stub:
    backend: openai
    base_url: {url}
    model: stub-model
    max_retries: 0
candidates:
  support:
    model: stub
    description: the support desk
{adapter_line}    prompt: {{blocks: [persona, refusal-rules]}}
    retrieval: {{corpus: kb, mode: bm25, top_k: 2}}
    generation: {{max_new_tokens: 40}}
knowledge:
  kb: {{path: knowledge, chunk_tokens: 64, chunk_overlap: 8}}
prompt_blocks: policies
suites:
  eval:
    path: cases/eval.jsonl
    scorers: [contains]
gate:
  thresholds:
    task_success: {{min: 0.5}}
"""


def write_project(root: Path, url: str, *, adapter: str | None = None) -> Path:
    """The fixture project in `root`; returns its rung.yaml."""
    import json

    (root / "knowledge").mkdir(parents=True, exist_ok=True)
    (root / "policies").mkdir(exist_ok=True)
    (root / "cases").mkdir(exist_ok=True)
    for name, text in DOCS.items():
        (root / "knowledge" / name).write_text(text, encoding="utf-8")
    for name, text in BLOCKS.items():
        (root / "policies" / name).write_text(text, encoding="utf-8")
    with open(root / "cases" / "eval.jsonl", "w", encoding="utf-8") as f:
        for cid, question, ref in CASES:
            f.write(json.dumps({"id": cid, "input": question, "reference": ref}) + "\n")
    cfg = root / "rung.yaml"
    cfg.write_text(rung_yaml(url, adapter=adapter), encoding="utf-8")
    return cfg


# ---------------------------------------------------------------- PostgreSQL

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(re.search(r"/(\d+)/bin", p).group(1)))  # type: ignore[union-attr]
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def postgres_unavailable() -> str | None:
    """Why PostgreSQL tests cannot run here, or None."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the psycopg driver is not installed (pip install 'psycopg[binary]')"
    if postgres_bin() is None:
        return "PostgreSQL is not installed (apt-get install postgresql; `make test` does it as root)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: cannot start postgres as another user"
    return None


@contextmanager
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server in a temporary folder on a free port; yields the admin URL
    (postgresql+psycopg://rung@127.0.0.1:PORT/postgres). Stopped and removed afterwards."""
    bindir = postgres_bin()
    assert bindir is not None
    tmp = Path(tempfile.mkdtemp(prefix="rung-pg-"))
    data, sock = tmp / "data", tmp / "sock"
    sock.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        shutil.chown(tmp, "postgres")
        shutil.chown(sock, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    env = {**os.environ, "LC_ALL": "C"}
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "rung",
                    "-E", "UTF8", "--no-sync"], check=True, capture_output=True, env=env, timeout=120)
    log = tmp / "server.log"
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(log),
                    "-w", "-t", "60", "start"], check=True, capture_output=True, env=env, timeout=90)
    try:
        yield f"postgresql+psycopg://rung@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, env=env, timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


def new_database(admin_url: str) -> str:
    """A fresh, empty database on the server; returns its SQLAlchemy URL."""
    import psycopg

    name = f"t_{os.getpid()}_{int(time.time() * 1e6) % 10**9}"
    dsn = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return admin_url.rsplit("/", 1)[0] + f"/{name}"
