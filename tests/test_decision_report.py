"""The decision report for a lead who reads 30 seconds: on a store shaped like the bundled demo
(six level-0 candidates from bare to rag-tools-schema, 40 cases, nothing passes), `rung decide`
writes a page whose first screen at 1280x800 holds the decision sentence, why level 0 fails, the
ladder and the quality/latency/cost plot and the top three changes; the checklist is one line
per item; no table scrolls sideways. report.md says the same; the CLI prints the deduplicated
changes. Checked in headless Chromium: a 1280x800 screenshot and the elements' boxes, measured
by a script added to a copy of the page (the report itself has none)."""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
from pathlib import Path

import pytest
from chromium import needs_chromium, png_colours, run_chromium
from clirun import run_rung

POLICY = "Refunds are possible within 14 days of delivery for EU customers."
TAGS = ["kind:policy", "kind:troubleshooting", "kind:attack", "lang:en"]
RUNG_YAML = """
project: support-desk
models:
  default: {backend: local, path: embedded:smollm2-135m-instruct}
knowledge:
  kb: {path: knowledge}
candidates:
  bare: {model: default}
  policy-prompt: {model: default, system_prompt: "You are Havi."}
  rag: {model: default, system_prompt: "You are Havi.", retrieval: {corpus: kb}}
  rag-extractive:
    model: default
    system_prompt: "You are Havi."
    retrieval: {corpus: kb}
    answer: {mode: extractive}
  rag-extractive-gated:
    model: default
    system_prompt: "You are Havi."
    retrieval: {corpus: kb}
    answer: {mode: extractive}
  rag-tools-schema:
    model: default
    system_prompt: "You are Havi."
    retrieval: {corpus: kb}
    tools: [calculator]
suites:
  eval: {path: cases.jsonl, scorers: [contains, groundedness, refusal, safety, retrieval]}
constraints:
  p95_latency_ms: 1500
  cost_per_1k_requests: 0.5
  requests_per_month: 30000
  data_may_leave_network: false
  policy_changes_per_month: 2
  min_cases_per_tag: 10
"""
# candidate -> (task success rate, hallucination rate, over-refusal rate, batched latency ms,
#               served latency ms or None, retrieves)
SHAPE = {
    "bare": (0.05, 0.30, 0.00, 9000.0, 2600.0, False),
    "policy-prompt": (0.08, 0.25, 0.10, 9500.0, 2900.0, False),
    "rag": (0.20, 0.18, 0.05, 21000.0, 4100.0, True),
    "rag-extractive": (0.39, 0.025, 0.15, 6000.0, 1300.0, True),
    "rag-extractive-gated": (0.37, 0.02, 0.30, 4800.0, 900.0, True),
    "rag-tools-schema": (0.15, 0.12, 0.05, 30000.0, None, True),
}


def _project(root: Path) -> Path:
    from rung.core import Answer, RetrievedChunk, Score, Trace
    from rung.evals.latency import LatencyProbe
    from rung.evals.store import RunStore
    from rung.evals.suite import load_suite
    from rung.evals.types import CaseResult, RunInfo

    (root / "knowledge").mkdir(parents=True)
    (root / "knowledge" / "refunds.md").write_text(f"# Refunds\n\n{POLICY}\n")
    (root / "rung.yaml").write_text(RUNG_YAML)
    with (root / "cases.jsonl").open("w") as f:
        for i in range(40):
            attack = i % 4 == 2
            f.write(json.dumps({
                "id": f"c{i:02d}", "input": f"How long do I have to return my Arc R6? #{i}",
                "reference": "14 days", "sources": [] if attack else ["refunds"],
                "should_refuse": attack, "tags": [TAGS[i % 4], "lang:en"] if i % 4 != 3 else ["lang:en"],
                "metadata": {"must_include": ["14 days"]}}) + "\n")
    suite = load_suite(root / "cases.jsonl", name="eval")
    store = RunStore(root / ".rung" / "rung.db")
    for cand, (ts, hall, over, lat, served, retrieves) in SHAPE.items():
        rng = random.Random(cand)
        info = store.create_run(RunInfo(
            id=f"run-{cand}", candidate=cand, candidate_hash=cand, candidate_config={},
            suite="eval", suite_hash=suite.hash, level=0, status="running",
            metadata={"throughput": {"requests": 40, "answer_s": lat * 5 / 1000, "batch_size": 8,
                                     "cached": 0}}))
        results = []
        for case in suite.cases:
            right = rng.random() < ts
            halluc = rng.random() < hall
            refused = rng.random() < over
            hit = retrieves and rng.random() < 0.85
            chunk = [RetrievedChunk("refunds#0", "refunds", POLICY)] if hit else \
                [RetrievedChunk("shipping#0", "shipping", "Shipping is free.")] if retrieves else []
            text = "I'm sorry, I can't help with that." if refused else \
                ("You have 14 days [refunds#0]." if right else "You have 30 days.")
            events = [{"type": "retrieval", "chunks": len(chunk)}] if retrieves else []
            if "extractive" in cand:
                events.append({"type": "extractive", "selected": [], "abstained": refused})
            ans = Answer(text=text, trace=Trace(retrieved=chunk, events=events),
                         tokens_in=420, tokens_out=60, timings_ms={"total": lat * rng.uniform(0.6, 1.0)})
            scores = [Score("hallucination", float(halluc), False), Score("safety_violation", 0.0, False),
                      Score("latency_ms", ans.latency_ms, False)]
            if case.should_refuse:
                scores += [Score("refused_when_should", float(refused)),
                           Score("refusal_correct", float(refused))]
                scores.append(Score("task_success", float(refused), True))
            else:
                scores += [Score("answered_when_should", float(not refused)),
                           Score("refusal_correct", float(not refused)),
                           Score("task_success", float(right and not refused), True,
                                 "" if right else "missing: 14 days",
                                 {"method": "contains", "missing": [] if right else ["14 days"]})]
                if retrieves:
                    scores += [Score("hit_at_k", float(hit)), Score("context_recall", float(hit))]
            results.append(CaseResult(case, ans, scores))
        store.add_results(info.id, results)
        if served is not None:
            probe = LatencyProbe(concurrency=1, requested=8, case_ids=[f"c{i:02d}" for i in range(8)],
                                 latencies_ms=[served * (0.7 + 0.05 * k) for k in range(8)])
            store.update_metadata(info.id, {**info.metadata, "latency_probe": probe.to_dict()})
        store.finish_run(info.id)
    store.close()
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _project(tmp_path_factory.mktemp("report"))


def _decide(project: Path, out: Path, *args: str):
    return run_rung("decide", "-c", "rung.yaml", "--suite", "eval", "--out", str(out), *args,
                    cwd=project, RUNG_THREADS="1")


def test_markdown_json_and_cli_say_the_same_short_story(project: Path, tmp_path: Path) -> None:
    r = _decide(project, tmp_path / "d")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "No level meets the targets yet. Closest: L0 'rag-extractive" in out
    assert "Why level 0 fails" in out and "Do:" in out
    # the changes: deduplicated (no line twice, no candidate's change once per item) and the
    # top three printed, the rest counted
    changes = [ln for ln in out.splitlines() if ln.lstrip().startswith(("1.", "2.", "3.", "4."))]
    assert len(changes) == 3, out
    assert "more in the report" in out

    data = json.loads((tmp_path / "d" / "decision.json").read_text())
    assert len(data["what_would_change"]) == len(set(data["what_would_change"]))
    assert data["diagnosis"]["cause"] in ("over-refusal", "ignored", "retrieval")
    gated = next(c for c in data["candidates"] if c["candidate"] == "rag-extractive-gated")
    assert gated["latency"]["basis"] == "served" and gated["p95_latency_ms"] < 1500
    assert gated["latency"]["batched_p95_ms"] > 3000
    schema = next(c for c in data["candidates"] if c["candidate"] == "rag-tools-schema")
    assert schema["latency"]["basis"] == "batched"

    md = (tmp_path / "d" / "decision.md").read_text()
    assert md.index("**No level meets the targets yet.") < md.index("### The ladder") \
        < md.index("### What would change the decision") < md.index("### Checklist")
    assert "**Why level 0 fails:**" in md and "◀ closest |" in md
    assert md.count("<details><summary>") >= 8  # one fold per checklist item (+ more changes)
    assert "P95 is latency as served" in md and "batched evaluation" in md


MEASURE = """<script>
(function () {
  function box(sel) {
    var e = document.querySelector(sel);
    if (!e) return null;
    var r = e.getBoundingClientRect();
    return {top: r.top, bottom: r.bottom, left: r.left, right: r.right};
  }
  var tables = Array.prototype.map.call(document.querySelectorAll("table"), function (t) {
    return {cls: t.className, right: t.getBoundingClientRect().right, scroll: t.scrollWidth,
            client: t.clientWidth};
  });
  var out = {vw: window.innerWidth, vh: window.innerHeight,
             scrollWidth: document.documentElement.scrollWidth,
             headline: box("#headline"), why: box("#why"), ladder: box("#ladder"),
             plot: box("#plot"), changes: box("#top-changes"), checklist: box("#checklist"),
             tables: tables,
             items: Array.prototype.map.call(document.querySelectorAll("details.item > summary"),
                                             function (s) { return s.getBoundingClientRect().height; })};
  var pre = document.createElement("pre");
  pre.id = "measure";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""


@pytest.mark.chromium
@needs_chromium
def test_first_screen_at_1280x800_in_chromium(project: Path, tmp_path: Path) -> None:
    r = _decide(project, tmp_path / "d")
    assert r.returncode == 0, r.stdout + r.stderr
    page = tmp_path / "d" / "decision.html"
    html = page.read_text()
    assert "<script" not in html.lower()

    # the screenshot a lead sees first
    png = tmp_path / "first-screen.png"
    run_chromium(f"--screenshot={png}", "--window-size=1280,800", "--hide-scrollbars",
                 page.as_uri(), user_dir=tmp_path / "profile-shot")
    assert png.is_file() and png.stat().st_size > 20_000
    assert struct.unpack(">II", png.read_bytes()[16:24]) == (1280, 800)
    colours = png_colours(png, enough=10_000, want=(0x8A, 0x6D, 0x3B))
    assert (0x8A, 0x6D, 0x3B) in colours  # the ladder's rails and rungs are on the first screen
    if os.environ.get("RUNG_SCREENSHOT_DIR"):  # keep it for a note or the README
        shutil.copy(png, Path(os.environ["RUNG_SCREENSHOT_DIR"]) / "decision-first-screen.png")

    # where things are: a copy of the page with a measuring script (the report has none)
    probe = tmp_path / "measure.html"
    probe.write_text(html.replace("</body>", MEASURE + "</body>"))
    dom = run_chromium("--dump-dom", "--window-size=1280,800", "--hide-scrollbars", probe.as_uri(),
                       user_dir=tmp_path / "profile-dom").stdout
    start = dom.index('<pre id="measure">') + len('<pre id="measure">')
    m = json.loads(dom[start:dom.index("</pre>", start)].replace("&quot;", '"').replace("&amp;", "&"))
    assert m["vw"] == 1280, m  # laid out 1280 px wide, as in the screenshot
    fold = 800  # the screenshot's height (--dump-dom's window keeps some of it for itself)
    for part in ("headline", "why", "ladder", "plot", "changes"):
        assert m[part] is not None, part
        assert m[part]["bottom"] <= fold, f"{part} ends at {m[part]['bottom']:.0f} px, below the fold"
    assert m["checklist"]["top"] >= m["changes"]["bottom"]  # the checklist follows the first screen
    # no sideways scrolling: the page and every table fit the 1280 px window
    assert m["scrollWidth"] <= m["vw"], m["scrollWidth"]
    for t in m["tables"]:
        assert t["right"] <= m["vw"] and t["scroll"] <= t["client"] + 1, t
    # the checklist: one line per item (its evidence folded)
    assert len(m["items"]) == 8 and max(m["items"]) < 34, m["items"]
