"""`rung serve`: the OpenAI-compatible gateway (rung.ops.gateway) under uvicorn."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import typer

from rung.cli._common import CONFIG_OPTION, load
from rung.cli._state import err_console
from rung.cli.main import app


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command("serve")
def serve(
    config: Path = CONFIG_OPTION,
    host: str = typer.Option(None, "--host", help="Address to bind (default: serving.host, 127.0.0.1). "
                             "Anything but a loopback address makes the gateway reachable from other machines."),
    port: int = typer.Option(None, "--port", "-p", help="Port (default: serving.port, 8000)."),
    workers: int = typer.Option(1, "--workers", "-w", min=1,
                                help="Worker processes. Each loads its own copy of every local model; "
                                "use more than one for upstream (OpenAI-compatible) models."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level: critical, error, warning, "
                                  "info, debug."),
    print_adapters: bool = typer.Option(False, "--print-adapters",
                                        help="Print the adapter names requests carry to each OpenAI-compatible "
                                        "model (name-<content digest>), as vLLM's --lora-modules NAME=PATH "
                                        "arguments, and exit."),
) -> None:
    """Serve rung.yaml's candidates as an OpenAI-compatible API: API keys per tenant (`rung keys`),
    guardrails, micro-batching, traces (`rung traces`) and /metrics."""
    import uvicorn

    cfg = load(config)
    if print_adapters:
        from rung.ops.gateway.upstream import served_adapter_names

        for name, mcfg in cfg.models.items():
            for adapter, served in served_adapter_names(mcfg, cfg.root).items():
                typer.echo(f"{name}\t{served}={cfg.resolve(mcfg.adapters[adapter]).resolve()}")
        return
    s = cfg.serving
    host = host or s.host
    port = s.port if port is None else port
    con = err_console()
    if not _is_loopback(host):
        con.print(f"[yellow]warning:[/] binding to {host}: the gateway is reachable from other machines "
                  "(API keys are required on every /v1 route; put TLS in front of it)")
    if workers > 1:
        import tempfile

        from rung.ops.gateway.app import CONFIG_ENV

        os.environ[CONFIG_ENV] = str(Path(config).resolve())
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="rung-metrics-")
        con.print(f"rung serve: http://{host}:{port} with {workers} workers ({cfg.source})")
        uvicorn.run("rung.ops.gateway.app:create_app_from_env", factory=True, host=host, port=port,
                    workers=workers, log_level=log_level, access_log=False, timeout_graceful_shutdown=10)
        return
    from rung.ops.gateway.app import create_app
    from rung.ops.gateway.service import Gateway

    gateway = Gateway(cfg)
    names = getattr(gateway.resolver, "names", None)
    what = (f"candidates {', '.join(names())}" if callable(names)
            else f"releases live on {s.channel} and its tenant channels")
    con.print(f"rung serve: http://{host}:{port} ({cfg.source}; {what}; store {cfg.paths.store})")
    uvicorn.run(create_app(gateway), host=host, port=port, log_level=log_level, access_log=False,
                timeout_graceful_shutdown=10)
