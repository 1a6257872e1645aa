"""The public Python API: `import rung` is instant and lists what a user scripts, the names are
typed (py.typed ships), and the docs page's example runs (against the OpenAI-compatible stub
on 127.0.0.1). That `rung --help` imports no torch is checked in test_cli.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
API = ["load_config", "build_pipeline", "answer", "evaluate", "compare", "decide", "climb",
       "RunStore", "register_scorer", "Request", "Case", "Answer", "RungError", "ConfigError"]


def _python(code: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def test_import_rung_is_instant_and_loads_nothing_heavy() -> None:
    p = _python("import sys, rung; heavy = ('torch', 'transformers', 'pydantic', 'sqlalchemy', "
                "'numpy', 'sentence_transformers'); print([m for m in heavy if m in sys.modules])")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


def test_the_api_is_listed_documented_and_typed() -> None:
    import rung

    assert set(API) <= set(rung.__all__)
    for name in rung.__all__:
        obj = getattr(rung, name)
        assert name == "__version__" or (obj.__doc__ or "").strip(), f"rung.{name} has no docstring"
    assert (ROOT / "src" / "rung" / "py.typed").is_file()
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rung.nope  # noqa: B018
    p = _python("import rung; help(rung)", env={"PAGER": "cat"})
    assert p.returncode == 0, p.stderr
    for name in ("evaluate(config", "compare(a", "climb(config", "register_scorer(name", "RunStore"):
        assert name in p.stdout


def test_rung_decide_is_the_function_and_the_package() -> None:
    import rung
    import rung.decide.recommend  # noqa: F401  (makes rung.decide the package)

    assert callable(rung.decide) and rung.decide.recommend.decide  # type: ignore[attr-defined]


def test_the_docs_example_runs(tmp_path: Path, stub) -> None:
    text = (ROOT / "docs" / "python-api.md").read_text(encoding="utf-8")
    code = re.search(r"## An example.*?```python\n(.*?)```", text, re.S).group(1)
    assert 15 <= len(code.strip().splitlines()) <= 35
    p = _python(code, cwd=tmp_path, env={"OPENAI_BASE_URL": stub.url, "RUNG_THREADS": "1"})
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("echo: Where is my parcel?")
    assert any(line.startswith("task_success: ") for line in lines), p.stdout
    assert lines[-1].startswith("Cannot decide"), p.stdout
    assert (tmp_path / "runs.db").is_file()
