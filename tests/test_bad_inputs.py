"""Bad inputs walked through the real `rung` command (a subprocess each): every one is one line on
stderr that names the file (and its line and key where there is one), a non-zero exit (2 for a
usage error, 1 for anything else), no traceback, and nothing written: no store, no `.rung`
folder, no half-made output. The model is the OpenAI-compatible test stub; nothing loads a model.

Also: Ctrl-C during a running `rung eval` prints "interrupted; ..." and exits 130, and a run whose
answers all errored fails the gate (gate.max_error_rate) whatever its other thresholds say.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from clirun import RUNG, run_rung

RUNG_YAML = """\
project: bad-inputs
models:
  default:
    backend: openai
    base_url: {url}
    model: stub-model
    max_retries: 0
candidates:
  full:
    generation: {{max_new_tokens: 8}}
suites:
  main:
    path: cases.jsonl
    scorers: [contains]
gate:
  thresholds:
    task_success: {{min: 0.5}}
"""

CASES = [{"id": f"q{i}", "input": f"question {i}", "reference": "question"} for i in range(3)]


def _write_project(root: Path, url: str) -> None:
    (root / "rung.yaml").write_text(RUNG_YAML.format(url=url), encoding="utf-8")
    (root / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in CASES), encoding="utf-8")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, _stub_server) -> tuple[Path, str]:
    """A project with one finished run in its store (.rung/rung.db), and that run's id."""
    root = tmp_path_factory.mktemp("bad-inputs")
    _write_project(root, _stub_server.url)
    r = run_rung("eval", cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    run_id = next(line.split()[1] for line in r.stdout.splitlines() if line.startswith("run "))
    return root, run_id


# ---------------------------------------------------------------- editing the project

def edit(path: str, old: str, new: str) -> Callable[[Path], None]:
    def apply(p: Path) -> None:
        text = (p / path).read_text(encoding="utf-8")
        assert old in text, (path, old)
        (p / path).write_text(text.replace(old, new, 1), encoding="utf-8")
    return apply


def append_bytes(path: str, data: bytes) -> Callable[[Path], None]:
    def apply(p: Path) -> None:
        with (p / path).open("ab") as f:
            f.write(data)
    return apply


def write(path: str, text: str) -> Callable[[Path], None]:
    def apply(p: Path) -> None:
        (p / path).parent.mkdir(parents=True, exist_ok=True)
        (p / path).write_text(text, encoding="utf-8")
    return apply


def steps(*fns: Callable[[Path], None]) -> Callable[[Path], None]:
    def apply(p: Path) -> None:
        for fn in fns:
            fn(p)
    return apply


def line(p: Path, path: str, needle: str, nth: int = 1) -> int:
    """1-based line of the nth line of `path` that contains `needle`."""
    lines = [i for i, text in enumerate((p / path).read_bytes().split(b"\n"), start=1)
             if needle.encode() in text]
    return lines[nth - 1]


# ---------------------------------------------------------------- the table

@dataclass
class Bad:
    id: str
    argv: tuple[str, ...]
    rc: int
    # substrings of the one stderr line; a callable gets the project folder (for line numbers)
    expect: Callable[[Path], list[str]] | list[str]
    setup: Callable[[Path], None] | None = None
    store: bool = False  # start from the project with its run store (else: no .rung at all)
    skip_if_root: bool = False
    help_on_stdout: bool = False


BAD = [
    # usage errors (exit 2): already handled by cli.main, kept here so they stay handled
    Bad("no-command", (), 2, [], help_on_stdout=True),
    Bad("unknown-command", ("nosuch",), 2, ["No such command 'nosuch'"]),
    Bad("unknown-option", ("eval", "--bogus"), 2, ["No such option: --bogus", "eval --help"]),
    Bad("limit-zero", ("eval", "--limit", "0"), 2, ["'--limit'", "greater than or equal to 1"]),
    Bad("limit-not-a-number", ("eval", "--limit", "abc"), 2, ["'--limit'", "valid integer"]),
    Bad("ask-without-question", ("ask",), 2, ["Missing argument", "ask --help"]),
    Bad("ask-empty-question", ("ask", ""), 2, ["question is empty", "ask --help"]),
    Bad("ask-blank-question", ("ask", "   "), 2, ["question is empty"]),
    # rung.yaml
    Bad("config-not-utf8", ("eval",), 1,
        lambda p: [f"rung.yaml:{line(p, 'rung.yaml', 'caf')}: not valid UTF-8 (byte 0xff at column 6)"],
        setup=append_bytes("rung.yaml", b"# caf\xff\n")),
    Bad("config-unknown-key", ("eval",), 1,
        lambda p: [f"rung.yaml:{line(p, 'rung.yaml', 'modle')}: candidates.full.modle: unknown key 'modle' "
                   "(did you mean 'model'?)"],
        setup=edit("rung.yaml", "  full:\n", "  full:\n    modle: default\n")),
    Bad("config-undefined-model", ("eval",), 1,
        lambda p: [f"rung.yaml:{line(p, 'rung.yaml', 'nosuch')}: candidates.full.model: no model named 'nosuch'"],
        setup=edit("rung.yaml", "  full:\n", "  full:\n    model: nosuch\n")),
    Bad("config-undefined-adapter", ("eval",), 1,
        lambda p: [f"rung.yaml:{line(p, 'rung.yaml', 'nosuch')}: candidates.full.adapter: "
                   "model 'default' has no adapter 'nosuch'"],
        setup=steps(edit("rung.yaml", "backend: openai", "backend: local"),
                    edit("rung.yaml", "  full:\n", "  full:\n    adapter: nosuch\n"))),
    Bad("config-duplicate-key", ("eval",), 1,
        lambda p: [f"rung.yaml:{line(p, 'rung.yaml', 'max_retries', 2)}: ",
                   f"duplicate key 'max_retries' (first at line {line(p, 'rung.yaml', 'max_retries')}"],
        setup=edit("rung.yaml", "    max_retries: 0\n", "    max_retries: 0\n    max_retries: 3\n")),
    Bad("config-missing-suite", ("eval",), 1,
        lambda p: [f"rung.yaml:{line(p, 'rung.yaml', 'nosuch.jsonl')}: suites.main.path: nosuch.jsonl: "
                   "no such suite file or folder"],
        setup=edit("rung.yaml", "path: cases.jsonl", "path: nosuch.jsonl")),
    Bad("config-missing-knowledge", ("eval",), 1,
        lambda p: [f"rung.yaml:{line(p, 'rung.yaml', 'path: nodocs')}: knowledge.docs.path: nodocs: "
                   "no such knowledge folder"],
        setup=steps(edit("rung.yaml", "candidates:\n", "knowledge:\n  docs:\n    path: nodocs\ncandidates:\n"),
                    edit("rung.yaml", "  full:\n", "  full:\n    retrieval: {corpus: docs, mode: bm25}\n"))),
    Bad("config-missing-model-path", ("eval",), 1,
        lambda p: [f"rung.yaml:{line(p, 'rung.yaml', 'nomodel')}: models.default.path: model path ./nomodel "
                   "does not exist"],
        setup=edit("rung.yaml", "    backend: openai\n", "    backend: local\n    path: ./nomodel\n")),
    Bad("config-missing", ("eval", "-c", "nosuch.yaml"), 1, ["nosuch.yaml: no such file"]),
    # suite files
    Bad("suite-not-utf8", ("eval",), 1,
        lambda p: [f"cases.jsonl:{len(CASES) + 1}: not valid UTF-8 (byte 0xe9 at column 26)"],
        setup=append_bytes("cases.jsonl", b'{"id": "z", "input": "caf\xe9"}\n')),
    Bad("suite-empty-input", ("eval",), 1,
        lambda p: [f"cases.jsonl:{len(CASES) + 1}: field 'input': is empty"],
        setup=append_bytes("cases.jsonl", b'{"id": "z", "input": ""}\n')),
    Bad("suite-empty-message", ("eval",), 1,
        lambda p: [f"cases.jsonl:{len(CASES) + 1}: field 'messages': the last (user) message is empty"],
        setup=append_bytes("cases.jsonl", b'{"id": "z", "messages": [{"role": "user", "content": " "}]}\n')),
    Bad("suite-yaml-duplicate-key", ("eval",), 1,
        lambda p: [f"cases.yaml:{line(p, 'cases.yaml', 'input', 2)}: not valid YAML: duplicate key 'input' "
                   f"(first at line {line(p, 'cases.yaml', 'input')}"],
        setup=steps(write("cases.yaml", "cases:\n  - id: a\n    input: hi\n    input: again\n"),
                    edit("rung.yaml", "path: cases.jsonl", "path: cases.yaml"))),
    Bad("suite-yaml-not-utf8", ("eval",), 1,
        ["cases.yaml:3: not valid UTF-8 (byte 0xff at column 12)"],
        setup=steps(write("cases.yaml", "cases:\n  - id: a\n"), append_bytes("cases.yaml", b"    input: \xff\n"),
                    edit("rung.yaml", "path: cases.jsonl", "path: cases.yaml"))),
    # commands that only read the store never create one
    Bad("runs-missing-config", ("runs", "-c", "nosuch.yaml"), 1, ["nosuch.yaml: no such file"]),
    Bad("report-missing-config", ("report", "x", "-c", "nosuch.yaml"), 1, ["nosuch.yaml: no such file"]),
    Bad("compare-missing-config", ("compare", "a", "b", "-c", "nosuch.yaml"), 1, ["nosuch.yaml: no such file"]),
    Bad("runs-no-store", ("runs",), 1, ["no store at", ".rung/rung.db", "nothing evaluated yet"]),
    Bad("show-no-store", ("show", "x"), 1, ["no store at", ".rung/rung.db"]),
    Bad("runs-store-missing-dir", ("runs", "--store", "missing/dir/x.db"), 1, ["no store at missing/dir/x.db"]),
    Bad("runs-store-missing-url", ("runs", "--store", "sqlite:///missing.db"), 1, ["no store at sqlite:///missing.db"]),
    # output paths
    Bad("report-to-a-file", ("report", "{run}", "-o", "afile"), 1,
        ["afile: exists and is not a folder"], setup=write("afile", "x"), store=True),
    Bad("report-under-a-file", ("report", "{run}", "-o", "afile/sub"), 1,
        ["afile/sub: cannot create the report folder: afile is a file"], setup=write("afile", "x"), store=True),
    Bad("report-unwritable", ("report", "{run}", "-o", "ro/sub"), 1,
        ["ro/sub: cannot create the report folder", "ermission denied"],
        setup=lambda p: (p / "ro").mkdir(mode=0o555), store=True, skip_if_root=True),
    Bad("export-to-a-folder", ("export", "{run}", "-o", "adir"), 1,
        ["adir: is a folder; give a file path"], setup=lambda p: (p / "adir").mkdir(), store=True),
    Bad("export-under-a-file", ("export", "{run}", "-o", "afile/run.jsonl"), 1,
        ["afile/run.jsonl: cannot create the folder of the export file: afile is a file"], setup=write("afile", "x"),
        store=True),
    Bad("init-on-a-file", ("init", "afile"), 1, ["afile: exists and is not a folder"], setup=write("afile", "x")),
    Bad("init-under-a-file", ("init", "afile/p"), 1, ["afile/p: cannot create the project folder: afile is a file"],
        setup=write("afile", "x")),
]


def snapshot(root: Path) -> dict[str, tuple[int, int] | None]:
    """Every file (size, mtime) and folder under root; SQLite's transient -wal/-shm files left out."""
    out: dict[str, tuple[int, int] | None] = {}
    for p in root.rglob("*"):
        if p.name.endswith(("-wal", "-shm")):
            continue
        st = p.lstat()
        out[str(p.relative_to(root))] = None if p.is_dir() else (st.st_size, st.st_mtime_ns)
    return out


@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
def test_bad_input_is_one_line_and_writes_nothing(bad: Bad, base: tuple[Path, str], tmp_path: Path) -> None:
    if bad.skip_if_root and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    root, run_id = base
    project = tmp_path / "p"
    shutil.copytree(root, project, ignore=None if bad.store else shutil.ignore_patterns(".rung"))
    if bad.setup:
        bad.setup(project)
    before = snapshot(project)
    try:
        r = run_rung(*(a.replace("{run}", run_id) for a in bad.argv), cwd=project)
    finally:
        if (project / "ro").exists():
            (project / "ro").chmod(0o755)
    out = r.stdout + r.stderr
    assert r.returncode == bad.rc, out
    assert "Traceback" not in out, out
    if bad.help_on_stdout:
        assert "Usage" in r.stdout and r.stderr.strip() == "", out
    else:
        err = r.stderr.strip()
        assert len(err.splitlines()) == 1, err
        assert err.startswith("error: "), err
        for want in (bad.expect(project) if callable(bad.expect) else bad.expect):
            assert want in err, f"{want!r} not in {err!r}"
    assert snapshot(project) == before, "a bad input wrote files"


# ---------------------------------------------------------------- Ctrl-C and the error-rate gate

def test_ctrl_c_during_eval_says_interrupted_and_exits_130(tmp_path: Path, stub) -> None:
    _write_project(tmp_path, stub.url)
    stub.state.delay_s = 1.0  # every answer takes a second: the eval is running when Ctrl-C comes
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    # start_new_session: the child has the default SIGINT handling (a background child of a
    # non-interactive shell would inherit SIGINT ignored)
    proc = subprocess.Popen([*RUNG, "eval"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not stub.state.requests and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stub.state.requests, "the eval never reached the model"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, out + err
    assert "interrupted; resume with `rung eval --resume`" in err, err
    assert "Traceback" not in out + err


def test_a_run_whose_answers_all_errored_fails_the_gate(tmp_path: Path, stub) -> None:
    """The stub answers in prose, the candidate requires JSON with no retry: every answer is
    rejected (an error). p95 latency alone would pass; the error rate fails the gate."""
    _write_project(tmp_path, stub.url)
    (tmp_path / "answer.json").write_text(json.dumps(
        {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}))
    edit("rung.yaml", "candidates:\n", "schemas:\n  answer: answer.json\ncandidates:\n")(tmp_path)
    edit("rung.yaml", "  full:\n", "  full:\n    schema: answer\n    schema_retries: 0\n")(tmp_path)
    edit("rung.yaml", "    task_success: {min: 0.5}\n", "    p95_latency_ms: {max: 600000}\n")(tmp_path)
    r = run_rung("eval", "--gate", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"FAIL error_rate = 1 (<= 0.05): fail [{len(CASES)} of {len(CASES)} answers errored" in r.stdout
    assert "PASS p95_latency_ms" in r.stdout and "gate failed" in r.stdout

    # the share is a setting: a gate that tolerates every error passes the same run
    edit("rung.yaml", "gate:\n", "gate:\n  max_error_rate: 1.0\n")(tmp_path)
    r = run_rung("eval", "--gate", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS error_rate = 1 (<= 1)" in r.stdout and "gate passed" in r.stdout


def test_unwritable_output_places_are_output_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Permission denied (not testable as root with chmod, so simulated): one OutputError naming
    the path, never an OSError."""
    from rung.errors import OutputError
    from rung.fileio import output_dir, output_file

    def denied(self: Path, *a: object, **k: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", denied)
    with pytest.raises(OutputError, match=r"ro/sub: cannot create the report folder: Permission denied"):
        output_dir(tmp_path / "ro" / "sub", "report folder")
    monkeypatch.undo()
    monkeypatch.setattr("rung.fileio.os.access", lambda *a: False)
    with pytest.raises(OutputError, match=r"cannot write into this folder \(the report folder\): permission denied"):
        output_dir(tmp_path, "report folder")
    with pytest.raises(OutputError, match=r"run.jsonl: cannot write into .* \(the export file\): permission denied"):
        output_file(tmp_path / "run.jsonl", "export file")
