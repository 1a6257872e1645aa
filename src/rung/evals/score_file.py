"""Scoring outputs made elsewhere (`rung score`): a JSONL file of requests and the answers another
system gave, scored with a suite's scorers and stored as a run like any `rung eval` run, so that
`rung compare`, `rung report` and `rung decide` read it.

One JSON object per line:

    id             optional; a suite case's id pairs the line with `rung eval` runs of that case
                   (without one: "in-" + a hash of the request, the same in every file)
    input | messages   the request (question form, or chat messages ending with the user's);
                   may be left out when `id` names a suite case (the case's request is used)
    output         the answer text (required)
    contexts | retrieved   what the system retrieved, in rank order: strings, or objects
                   {id, text, doc_id?, score?, metadata?} (doc_id defaults to the part of id
                   before '#'); given (even empty) means the system retrieves
    reference, should_refuse, sources, schema, tags, metadata   expectations, as in a suite case;
                   for a line whose id is a suite case, each one the line leaves out (or sets to
                   null) comes from the case (metadata: the case's, updated with the line's)
    citations, latency_ms, tokens_in, tokens_out, model   optional, what the system reported

Nothing is half-stored: every bad line is collected first and reported as one SuiteError with
`FILE:LINE: what is wrong` lines. The run's candidate is the file's name plus a short hash of its
content (or the name given), its level unknown (`LEVEL_UNKNOWN`), its candidate hash the file's
sha256. No model is loaded: scorers use the embedder (when they use one) and the project's judge
only when a scorer asks for it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rung.core import Answer, Case, RetrievedChunk, Trace, cases_hash
from rung.errors import ConfigError, StoreError, SuiteError, did_you_mean
from rung.evals.types import CaseResult, RunInfo, RunResult

if TYPE_CHECKING:
    from rung.config import RungConfig
    from rung.evals.scorers.base import Scorer
    from rung.evals.store import RunStore

LEVEL_UNKNOWN = -1  # RunInfo.level of a run whose answers were made elsewhere
MAX_SHOWN_ERRORS = 50  # every bad line is counted; the message lists this many
BATCH = 100  # results stored per transaction

KEYS = ("id", "input", "messages", "output", "contexts", "retrieved", "reference", "should_refuse",
        "sources", "schema", "tags", "metadata", "citations", "latency_ms", "tokens_in", "tokens_out", "model")
_EXPECTATIONS = ("reference", "should_refuse", "sources", "schema", "tags")
_CHUNK_KEYS = ("id", "text", "doc_id", "score", "metadata")

Progress = Callable[[int, int], None]


@dataclass
class OutputLine:
    """One line of an outputs file: the case (expectations merged from the suite) and the answer."""

    case: Case
    answer: Answer
    matched: bool  # its id is a case of the suite


# ---------------------------------------------------------------- reading and checking lines

def _short(v: Any) -> str:
    r = json.dumps(v, ensure_ascii=False, default=str) if not isinstance(v, str) else repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def _type(v: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "true/false", type(None): "null",
            int: "a number", float: "a number"}.get(type(v), type(v).__name__)


class _Line:
    """Checks one parsed line field by field; `problems` collects what is wrong."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.problems: list[str] = []

    def bad(self, key: str, expected: str) -> None:
        self.problems.append(f"field {key!r}: expected {expected}, got {_short(self.data[key])}")

    def string(self, key: str, *, nonempty: bool = False) -> str | None:
        v = self.data.get(key)
        if v is None:
            return None
        if not isinstance(v, str) or (nonempty and not v.strip()):
            self.bad(key, "a non-empty string" if nonempty else "a string")
            return None
        return v

    def strings(self, key: str) -> list[str] | None:
        v = self.data.get(key)
        if v is None:
            return None
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            self.bad(key, "a list of strings")
            return None
        return list(v)

    def number(self, key: str, *, integer: bool = False) -> float | None:
        v = self.data.get(key)
        if v is None:
            return None
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 and (not integer or v == int(v))
        if not ok:
            self.bad(key, "a non-negative integer" if integer else "a non-negative number")
            return None
        return float(v)

    def messages(self) -> list[dict[str, str]] | None:
        v = self.data.get("messages")
        if v is None:
            return None
        if not isinstance(v, list) or not v:
            self.bad("messages", "a non-empty list of {role, content}")
            return None
        out = []
        for i, m in enumerate(v):
            if not (isinstance(m, dict) and set(m) == {"role", "content"} and isinstance(m["content"], str)
                    and m["role"] in ("system", "user", "assistant")):
                self.problems.append(f"field 'messages[{i}]': expected {{role: system|user|assistant, "
                                     f"content: string}}, got {_short(m)}")
                return None
            out.append({"role": m["role"], "content": m["content"]})
        if out[-1]["role"] != "user":
            self.problems.append(f"field 'messages': the last message must have role 'user', "
                                 f"got {out[-1]['role']!r}")
            return None
        return out

    def chunks(self, key: str) -> list[RetrievedChunk] | None:
        v = self.data.get(key)
        if v is None:
            return None
        if not isinstance(v, list):
            self.bad(key, "a list of strings or of {id, text} objects")
            return None
        out: list[RetrievedChunk] = []
        for i, c in enumerate(v):
            where = f"field '{key}[{i}]'"
            if isinstance(c, str):
                out.append(RetrievedChunk(id=f"ctx{i + 1}", doc_id=f"ctx{i + 1}", text=c, score=0.0))
                continue
            if not isinstance(c, dict):
                self.problems.append(f"{where}: expected a string or an {{id, text}} object, got {_short(c)}")
                return None
            unknown = [k for k in c if k not in _CHUNK_KEYS]
            if unknown:
                hint = did_you_mean(unknown[0], _CHUNK_KEYS) or f"; expected: {', '.join(_CHUNK_KEYS)}"
                self.problems.append(f"{where}: unknown field {unknown[0]!r}{hint}")
                return None
            cid, text, doc = c.get("id"), c.get("text"), c.get("doc_id")
            if not isinstance(text, str):
                self.problems.append(f"{where}: 'text' must be a string, got {_short(text)}")
                return None
            if cid is None:
                cid = f"ctx{i + 1}"
            if isinstance(cid, bool) or not isinstance(cid, (str, int)) or not str(cid).strip():
                self.problems.append(f"{where}: 'id' must be a non-empty string, got {_short(cid)}")
                return None
            if doc is not None and not isinstance(doc, str):
                self.problems.append(f"{where}: 'doc_id' must be a string, got {_short(doc)}")
                return None
            score = c.get("score", 0.0)
            if isinstance(score, bool) or not isinstance(score, (int, float)):
                self.problems.append(f"{where}: 'score' must be a number, got {_short(score)}")
                return None
            meta = c.get("metadata", {})
            if not isinstance(meta, dict):
                self.problems.append(f"{where}: 'metadata' must be a mapping, got {_short(meta)}")
                return None
            cid = str(cid)
            out.append(RetrievedChunk(id=cid, doc_id=doc or cid.split("#", 1)[0], text=text,
                                      score=float(score), metadata=dict(meta)))
        return out


def request_id(chat: list[dict[str, str]]) -> str:
    """The id of a line without one: the same request gets the same id in every file."""
    blob = json.dumps(chat, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "in-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def _parse_line(data: Any, suite_cases: dict[str, Case], shown: str, n: int) -> tuple[OutputLine | None, list[str]]:
    """One line as an OutputLine, or the problems with it."""
    if not isinstance(data, dict):
        return None, [f"expected an object with input or messages and output, got {_type(data)}"]
    line = _Line(data)
    unknown = [k for k in data if k not in KEYS]
    for k in unknown:
        hint = did_you_mean(k, KEYS) or f"; expected some of: {', '.join(KEYS)}"
        line.problems.append(f"unknown field {k!r}{hint}")
    raw_id = data.get("id")
    cid: str | None = None
    if raw_id is not None:
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or not str(raw_id).strip():
            line.bad("id", "a non-empty string")
        else:
            cid = str(raw_id)
    matched = suite_cases.get(cid) if cid is not None else None
    text_input = line.string("input", nonempty=True)
    messages = line.messages()
    if "input" in data and "messages" in data:
        line.problems.append("a line needs one of 'input' or 'messages', not both")
    elif "input" not in data and "messages" not in data and matched is None:
        why = (f" (id {cid!r} is not a case of the suite)" if cid is not None and suite_cases else "")
        line.problems.append(f"missing 'input' or 'messages'{why}")
    if "output" not in data:
        line.problems.append("missing required field 'output' (the answer to score)")
    output = line.string("output")
    if "contexts" in data and "retrieved" in data:
        line.problems.append("'contexts' and 'retrieved' are the same field; give one")
    ctx_key = "contexts" if "contexts" in data else "retrieved"
    chunks = line.chunks(ctx_key)
    should_refuse = data.get("should_refuse")
    if should_refuse is not None and not isinstance(should_refuse, bool):
        line.bad("should_refuse", "true/false")
    sources, tags, citations = line.strings("sources"), line.strings("tags"), line.strings("citations")
    schema, model = line.string("schema"), line.string("model")
    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        line.bad("metadata", "a mapping")
    latency = line.number("latency_ms")
    tokens_in, tokens_out = line.number("tokens_in", integer=True), line.number("tokens_out", integer=True)
    if line.problems:
        return None, line.problems

    given = {k for k in data if data[k] is not None}  # null = not given: the suite case's value stays
    base = matched or Case(id="")
    if text_input is None and messages is None:  # the suite case's request
        text_input, messages = base.input, base.messages
    reference = data.get("reference") if "reference" in given else base.reference
    if reference is not None and not isinstance(reference, str):
        reference = json.dumps(reference, sort_keys=True, ensure_ascii=False)
    case = Case(
        id=cid or "",
        input=text_input,
        messages=messages,
        schema=schema if "schema" in given else base.schema,
        metadata={**base.metadata, **json.loads(json.dumps(metadata or {}, default=str))},
        reference=reference,
        should_refuse=should_refuse if "should_refuse" in given else base.should_refuse,
        sources=sources if sources is not None else list(base.sources),
        tags=tags if tags is not None else list(base.tags),
        file=shown,
        line=n,
    )
    if not case.id:
        case.id = request_id(case.chat())
    events = [] if chunks is None else [{"type": "retrieval", "chunks": len(chunks), "source": "file"}]
    answer = Answer(
        text=output or "",
        citations=citations or [],
        trace=Trace(prompt=case.chat(), retrieved=chunks or [], events=events),
        tokens_in=int(tokens_in or 0),
        tokens_out=int(tokens_out or 0),
        timings_ms={"total": latency} if latency is not None else {},
        model_id=model or "",
    )
    return OutputLine(case, answer, matched is not None), []


def read_outputs(path: str | Path, suite_cases: list[Case] | None = None) -> list[OutputLine]:
    """Every line of an outputs file, checked (see the module docs); SuiteError listing each bad
    line as `FILE:LINE: what is wrong` (all of them counted, the first MAX_SHOWN_ERRORS shown)."""
    p = Path(path)
    shown = str(path)
    if not p.is_file():
        raise SuiteError(f"{shown}: no such file" + (" (a folder)" if p.is_dir() else ""))
    by_id = {c.id: c for c in suite_cases or []}
    errors: list[str] = []
    out: list[OutputLine] = []
    seen: dict[str, int] = {}
    try:
        with p.open(encoding="utf-8") as f:
            for n, raw in enumerate(f, start=1):
                text = raw.strip()
                if not text or text.startswith("#"):
                    continue
                try:
                    data = json.loads(text)
                except json.JSONDecodeError as e:
                    errors.append(f"{shown}:{n}: not valid JSON: {e.msg} (column {e.colno})")
                    continue
                parsed, problems = _parse_line(data, by_id, shown, n)
                errors.extend(f"{shown}:{n}: {msg}" for msg in problems)
                if parsed is None:
                    continue
                cid = parsed.case.id
                if cid in seen:
                    if "id" in data:
                        errors.append(f"{shown}:{n}: duplicate id {cid!r} (first at {shown}:{seen[cid]})")
                        continue
                    k = 2  # the same request twice without ids: the second is "<id>-2"
                    while f"{cid}-{k}" in seen:
                        k += 1
                    cid = parsed.case.id = f"{cid}-{k}"
                seen[cid] = n
                out.append(parsed)
    except UnicodeDecodeError as e:
        raise SuiteError(f"{shown}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if errors:
        if len(errors) == 1:
            raise SuiteError(errors[0])
        listed = errors[:MAX_SHOWN_ERRORS]
        more = [f"... and {len(errors) - len(listed)} more"] if len(errors) > len(listed) else []
        raise SuiteError("\n".join([f"{shown}: {len(errors)} problems, nothing stored:", *listed, *more]))
    if not out:
        raise SuiteError(f"{shown}: no lines to score (one JSON object per line: input or messages, output, ...)")
    return out


# ---------------------------------------------------------------- scoring and storing

def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def choose_scorers(config: RungConfig, suite: str | None, names: list[str] | None,
                   cases: list[Case]) -> tuple[list[Scorer], str | None, str]:
    """(scorers, suite name or None, scorers key). Without `names`: the suite's scorers (with the
    ones its cases imply, as `rung eval` scores). With `names`: those, each with the suite's
    parameters when the suite lists a scorer of that type, plus `usage`."""
    from rung.evals.runner import build_scorers, scorers_key
    from rung.evals.scorers.base import build_scorer

    if suite is None and not config.suites and not names:
        raise ConfigError(f"{config.source}: no suites, so no scorers: name them with --scorers "
                          "(e.g. --scorers contains,groundedness)")
    suite_name, suite_cfg = config.suite(suite) if (suite is not None or config.suites) else (None, None)
    if not names:
        from rung.evals.suite import Suite

        assert suite_cfg is not None
        return (build_scorers(suite_cfg, Suite(suite_name or "", Path("."), cases)), suite_name,
                scorers_key(suite_cfg))
    specs = {s.type: dict(s.model_extra or {}) for s in suite_cfg.scorers} if suite_cfg is not None else {}
    wanted = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    if not wanted:
        raise ConfigError("--scorers: expected scorer names separated by commas")
    scorers = [build_scorer(n, **specs.get(n, {})) for n in wanted]
    if "usage" not in wanted:
        scorers.append(build_scorer("usage"))
    key = hashlib.sha256(json.dumps({"scorers": wanted, "params": {n: specs.get(n) for n in wanted}},
                                    sort_keys=True, default=str).encode()).hexdigest()[:16]
    return scorers, suite_name, key


def score_file(config: RungConfig, path: str | Path, store: RunStore, *, suite: str | None = None,
               scorers: list[str] | None = None, name: str | None = None,
               progress: Progress | None = None) -> RunResult:
    """Score the outputs in `path` (see the module docs) and store them as a finished run;
    returns it, in file order. `suite` picks the suite whose cases lines pair with and whose
    scorers score (default: the only one); `scorers` names scorers instead; `name` names the
    candidate (default: the file's name + '@' + 8 hex digits of its content hash)."""
    from rung.evals.runner import git_commit, score_answer, scorer_context
    from rung.evals.suite import load_suite

    p = Path(path)
    suite_cases: list[Case] = []
    suite_name: str | None = None
    if suite is not None or config.suites:
        suite_name, suite_cfg = config.suite(suite)
        suite_cases = load_suite(config.resolve(suite_cfg.path), name=suite_name).cases
    lines = read_outputs(p, suite_cases)
    cases = [x.case for x in lines]
    chosen, suite_name, key = choose_scorers(config, suite_name, scorers, cases)
    ctx = scorer_context(config)
    digest = file_sha256(p)
    models = sorted({x.answer.model_id for x in lines if x.answer.model_id})
    matched = sum(1 for x in lines if x.matched)
    info = RunInfo(
        id="", candidate=name or f"{p.name}@{digest[:8]}", candidate_hash=digest,
        candidate_config={"outputs_file": str(p), "sha256": digest, "lines": len(lines), "models": models},
        suite=suite_name or p.stem, suite_hash=cases_hash(cases), level=LEVEL_UNKNOWN,
        model_id=models[0] if len(models) == 1 else "", epochs=1,
        git_commit=git_commit(p.resolve().parent), project=config.project,
        metadata={"source": "outputs file", "outputs_file": str(p), "lines": len(lines),
                  "suite_cases_matched": matched, "scorers_key": key,
                  "scorers": [getattr(s, "name", type(s).__name__) for s in chosen]},
    )
    info = store.create_run(info)
    t0 = time.perf_counter()
    done = 0
    if progress:
        progress(0, len(lines))
    try:
        for start in range(0, len(lines), BATCH):
            batch = [CaseResult(x.case, x.answer, score_answer(x.case, x.answer, chosen, ctx), 0)
                     for x in lines[start:start + BATCH]]
            store.add_results(info.id, batch)
            done += len(batch)
            if progress:
                progress(done, len(lines))
    except BaseException as e:
        info.metadata["error"] = (f"{type(e).__name__}: {e}".splitlines() or [""])[0]
        try:
            _close(store, info, "failed", t0)
        except StoreError:
            pass  # the original error says more
        raise
    _close(store, info, "finished", t0)
    run = store.get_run(info.id)
    order = {x.case.id: i for i, x in enumerate(lines)}
    run.results.sort(key=lambda r: order.get(r.case.id, len(order)))
    return run


def _close(store: RunStore, info: RunInfo, status: str, t0: float) -> None:
    info.metadata["wall_s"] = round(time.perf_counter() - t0, 3)
    store.update_metadata(info.id, info.metadata)
    store.finish_run(info.id, status)
