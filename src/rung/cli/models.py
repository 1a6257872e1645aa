"""`rung models`: the embedded offline models and how to point rung at others."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from rung.cli._state import console
from rung.cli.main import app

HOW_TO = """[bold]Use your own model[/] (in rung.yaml, under models.NAME):
  a local Hugging Face folder   backend: local   path: /models/my-llama
  a GGUF file                   backend: local   path: /models/model.Q4_K_M.gguf
  a hub id (needs internet)     backend: local   path: HuggingFaceTB/SmolLM2-360M-Instruct
  an OpenAI-compatible endpoint backend: openai  base_url: http://127.0.0.1:8000/v1  model: NAME
                                (vLLM, llama.cpp server, Ollama, LoRAX, OpenAI; api_key_env: VAR)"""


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


@app.command("models")
def models(
    prepare: Annotated[bool, typer.Option(
        "--prepare", help="Convert the embedded language model's GGUF file to its cached Hugging Face "
        "folder now (once per install; `make install` does it), instead of on first use.")] = False,
) -> None:
    """List the embedded models (and data sets) found in site-packages, offline."""
    from rung.models.embedded import catalog

    if prepare:
        from pathlib import Path

        from rung.config import EMBEDDED_LLM
        from rung.models.embedded import convert_gguf, is_converted, resolve_llm

        gguf = Path(resolve_llm(EMBEDDED_LLM).source)
        if is_converted(gguf):
            console().print(f"{EMBEDDED_LLM}: ready (converted before)")
        else:
            t0 = time.perf_counter()
            with console().status(f"{EMBEDDED_LLM}: converting {gguf.name} (once per install)"):
                target = convert_gguf(gguf)
            console().print(f"{EMBEDDED_LLM}: converted to {target} in {time.perf_counter() - t0:.0f} s")
        return
    entries = catalog()
    table = Table(title="embedded models and data (offline, from PyPI packages)")
    table.add_column("name", no_wrap=True)
    table.add_column("purpose", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("package", no_wrap=True)
    table.add_column("path", overflow="fold")
    for e in entries:
        table.add_row(f"embedded:{e.key}" if e.purpose != "data" else e.key, e.purpose,
                      _size(e.size_bytes), e.package, str(e.path))
    con = console()
    if entries:
        con.print(table)
    else:
        con.print("[yellow]no embedded models found[/] (install them with `make install`)")
    con.print(HOW_TO)
