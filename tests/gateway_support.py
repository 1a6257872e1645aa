"""TEST HELPER: a `rung serve` project over the OpenAI-compatible test stub, and the gateway run
as a user runs it (`python -m rung serve` in a subprocess on a free 127.0.0.1 port)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ADAPTER_CONFIG = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"],
                  "base_model_name_or_path": "stub-model", "task_type": "CAUSAL_LM"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_project(root: Path, stub_url: str, *, public: str = "[assistant, rag, json]",
                  extra_serving: str = "") -> Path:
    """A project served over the stub: `assistant` (public, every guardrail), `rag` (public,
    retrieval, required citations), `json` (public, answers JSON), `acme-bot` (acme only, an
    adapter), `globex-bot` (globex only). `public` lists the public ones (the retrieval index
    of `rag` needs the embedder: leave it out for a faster start)."""
    root.mkdir(parents=True, exist_ok=True)
    kb = root / "knowledge"
    kb.mkdir(exist_ok=True)
    (kb / "returns.md").write_text(
        "---\nid: returns\ntitle: Returns\nversion: 2\n---\n# Returns\n\nYou can return a router within "
        "30 days of delivery for a full refund. The return label is free.\n", encoding="utf-8")
    (kb / "shipping.md").write_text(
        "---\nid: shipping\ntitle: Shipping\nversion: 1\n---\n# Shipping\n\nStandard shipping takes 3 to 5 "
        "business days and costs EUR 4.90.\n", encoding="utf-8")
    adapter = root / "adapters" / "support"
    adapter.mkdir(parents=True, exist_ok=True)
    (adapter / "adapter_config.json").write_text(json.dumps(ADAPTER_CONFIG), encoding="utf-8")
    (adapter / "adapter_model.safetensors").write_bytes(b"not really weights, only hashed")
    (root / "rung.yaml").write_text(f"""
project: gateway-test
models:
  stub:
    backend: openai
    base_url: "{stub_url}"
    model: stub-model
    adapters: {{support: adapters/support}}
    price: {{input_per_1k: 0.5, output_per_1k: 1.5}}
  cite: {{backend: openai, base_url: "{stub_url}", model: cite-model}}
  json: {{backend: openai, base_url: "{stub_url}", model: json-model}}
knowledge:
  kb: {{path: knowledge, chunk_tokens: 64, chunk_overlap: 8}}
candidates:
  assistant:
    model: stub
    system_prompt: You are a helpful assistant.
    guardrails: &guards
      injection: {{action: block, threshold: 0.5}}
      pii: {{action: redact}}
      safety: {{action: block}}
      output_size: {{action: redact, max_chars: 600}}
  rag:
    model: cite
    system_prompt: Answer from the sources and cite them.
    retrieval: {{corpus: kb, mode: bm25, top_k: 2}}
    guardrails:
      <<: *guards
      citations: {{action: block, require: true}}
  json:
    model: json
    system_prompt: Answer in JSON.
    guardrails: {{schema: {{action: block}}}}
  acme-bot:
    model: stub
    adapter: support
    system_prompt: You are Acme's support bot.
    guardrails: *guards
  globex-bot:
    model: stub
    system_prompt: You are Globex's bot.
serving:
  candidates: {public}
  default: assistant
  tenants:
    acme: {{candidates: [acme-bot]}}
    globex: {{candidates: [globex-bot]}}
  rate_limit: {{requests_per_minute: 60000, burst: 100}}
  traces: {{label_sample_rate: 1.0}}
{extra_serving}""", encoding="utf-8")
    return root


def make_key(root: Path, tenant: str, rpm: float | None = None) -> str:
    from rung.config import load_config
    from rung.ops.gateway.db import open_engine
    from rung.ops.gateway.keys import KeyStore

    engine = open_engine(load_config(root).store_target())
    try:
        return KeyStore(engine).create(tenant, "test", rpm)[1]
    finally:
        engine.dispose()


class GatewayProcess:
    """`python -m rung serve -c ROOT --port P` until stopped (or killed)."""

    def __init__(self, root: Path, port: int | None = None, *args: str, **env: str) -> None:
        self.root = root
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / f"serve-{self.port}.log"
        full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "RUNG_THREADS": "1",
                    "COLUMNS": "200", **env}
        self._log = self.log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "rung", "serve", "-c", str(root), "--port",
                                      str(self.port), "--log-level", "warning", *args],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=full_env, cwd=root)

    def wait_ready(self, timeout: float = 180.0) -> GatewayProcess:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rung serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                r = httpx.get(f"{self.url}/readyz", timeout=2)
                if r.status_code == 200:
                    return self
                last = r.text
                if '"failed"' in last:
                    break
            except httpx.HTTPError as e:
                last = str(e)
            time.sleep(0.1)
        out = self.output()
        self.stop()
        raise RuntimeError(f"rung serve not ready after {timeout:g} s ({last}):\n{out}")

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:]

    def kill(self) -> None:
        """kill -9."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if not self._log.closed:
            self._log.close()


class InProcessGateway:
    """A Gateway served by uvicorn in a thread of this process (its object stays reachable)."""

    def __init__(self, root: Path) -> None:
        from rung.config import load_config
        from rung.ops.gateway.service import Gateway

        self.gateway = Gateway(load_config(root))
        self.url = ""

    def __enter__(self) -> InProcessGateway:
        import threading

        import uvicorn

        from rung.ops.gateway.app import create_app

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._sock = sock
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(create_app(self.gateway), log_level="warning", access_log=False,
                                timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 120
        while not (self._server.started and self.gateway.ready):
            if self.gateway.load_error or not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"gateway did not start: {self.gateway.load_error}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()
