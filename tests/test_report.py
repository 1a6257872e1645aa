"""The HTML and Markdown report: files, key elements, escaping, and a render in Chromium."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from chromium import needs_chromium, render

from rung.config import GateConfig
from rung.core import Answer, Case, RetrievedChunk, Score, ToolCall, Trace
from rung.evals.aggregate import STANDARD_METRICS, aggregate
from rung.evals.compare import compare
from rung.evals.gate import evaluate_gate
from rung.evals.plots import latency_boxes, metric_bars, quality_scatter
from rung.evals.report import failing_cases, md_escape, write_report
from rung.evals.types import CaseResult, RunInfo, RunResult

EVIL = '<script>alert("x")</script>'


def _run(run_id: str, candidate: str, passing: int, latency: float, n: int = 12) -> RunResult:
    results = []
    for i in range(n):
        ok = i < passing
        trace = Trace(prompt=[{"role": "system", "content": "You answer refund questions."},
                              {"role": "user", "content": f"How long do refunds take? #{i}"}],
                      retrieved=[RetrievedChunk("refunds#0", "refunds", f"Refunds take 14 days {EVIL}",
                                                0.82)],
                      tool_calls=[ToolCall("order_lookup", {"order": i}, "shipped")])
        text = "Refunds take 14 days [refunds#0]." if ok else f"Refunds take 45 days {EVIL}"
        answer = Answer(text=text, citations=["refunds#0"], trace=trace, tokens_in=120,
                        tokens_out=18, timings_ms={"total": latency + 7 * i})
        scores = [Score("task_success", float(ok), True, "" if ok else "expected 14 days"),
                  Score("hallucination", float(not ok), False,
                        "" if ok else "number 45 not in any source",
                        {"unsupported": ["Refunds take 45 days"]} if not ok else {}),
                  Score("latency_ms", answer.latency_ms, False),
                  Score("tokens_in", 120.0, False), Score("tokens_out", 18.0, False),
                  Score("cost", 0.0004, False)]
        tags = ["adversarial"] if i % 2 else ["multilingual"]
        results.append(CaseResult(Case(id=f"case-{i}", input=f"refund question {i}",
                                       reference="14 days", tags=tags), answer, scores))
    info = RunInfo(id=run_id, candidate=candidate, candidate_hash="abc123", candidate_config={},
                   suite="support", suite_hash="s1", level=0, model_id="smollm2",
                   created_at="2025-01-01T00:00:00Z", status="finished")
    return RunResult(info, results)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):
    a = _run("run-a", "L0-rag", passing=11, latency=200.0)
    b = _run("run-b", f"L1-lora {EVIL}", passing=5, latency=320.0)
    c = compare(a, b)
    gate = evaluate_gate(aggregate(b), GateConfig.model_validate(
        {"thresholds": {"task_success": {"min": 0.8}, "hallucination": {"max": 0.03}}}),
        c, fail_on_regression=True)
    out = tmp_path_factory.mktemp("report")
    paths = write_report([a, b], out, comparison=c, gate=gate)
    return paths, a, b


def test_files_exist_with_key_elements(report) -> None:
    paths, a, b = report
    assert paths.html.is_file() and paths.markdown.is_file()
    html = paths.html.read_text()
    for element_id in ("header", "summary", "plots", "tags", "comparison", "gate", "failures"):
        assert f'id="{element_id}"' in html
    assert "run-a" in html and "run-b" in html and "support" in html
    assert html.count('class="metric-table"') == 2
    assert html.count("<svg") >= 4  # one bar chart per rate metric + latency + scatter
    assert 'class="gate-line fail"' in html and "regressed" in html
    # failing cases of run b (7) with their traces, worst first
    assert html.count('<details class="failure"') == 1 + 7
    assert "number 45 not in any source" in html and "order_lookup" in html
    assert "You answer refund questions." in html


def test_user_text_is_escaped(report) -> None:
    paths, _, _ = report
    html = paths.html.read_text()
    assert EVIL not in html
    assert "&lt;script&gt;" in html
    assert "<script" not in html  # nothing executable at all, user text or ours
    md = paths.markdown.read_text()
    assert EVIL not in md and "&lt;script&gt;" in md


def test_page_is_self_contained(report) -> None:
    html = report[0].html.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "@import" not in html


def test_markdown_summary(report) -> None:
    md = report[0].markdown.read_text()
    assert "| task_success ↑ |" in md
    assert re.search(r"\| task_success ↑ \| 0\.917 \[[0-9.]+, [0-9.]+\] n=12 \| 0\.417 \[", md)
    assert "### Gate: FAIL" in md
    assert "| regression |" in md and "| task_success |" in md
    assert "Flipped pass → fail (6)" in md


def test_failures_worst_first() -> None:
    run = _run("r", "c", passing=0, latency=1.0, n=3)
    run.results[1].scores += [Score("citation_correct", 0.0, True, "cites nothing"),
                              Score("schema_valid", 0.0, True, "not JSON")]
    run.results[2].answer.error = "timeout"
    items = failing_cases(run)["items"]
    assert [i["case_id"] for i in items] == ["case-1", "case-2", "case-0"]
    assert failing_cases(run, limit=1)["total"] == 3


def test_svg_plots_are_valid_xml() -> None:
    summaries = [aggregate(_run("a", "x & y", 8, 100.0)), aggregate(_run("b", "<b>", 3, 150.0))]
    for svg in (metric_bars(summaries, "task_success"), latency_boxes(summaries),
                quality_scatter(summaries), quality_scatter(summaries, "absent")):
        root = ET.fromstring(svg)
        assert root.tag.endswith("svg")


def test_markdown_escape() -> None:
    assert md_escape("a|b\n<c>") == "a\\|b &lt;c&gt;"
    assert STANDARD_METRICS["hallucination"] is False


# ---- Chromium ---------------------------------------------------------------------------------


@pytest.mark.chromium
@needs_chromium
def test_renders_in_chromium(report, tmp_path: Path) -> None:
    png, colours, dom = render(report[0].html, tmp_path, want=(0x35, 0x66, 0xB5))
    assert png.is_file() and png.stat().st_size > 10_000
    assert len(colours) >= 16, "the page rendered blank"
    assert (0x35, 0x66, 0xB5) in colours  # run 1's colour swatch: styles and SVG were applied

    for element_id in ("summary", "plots", "failures", "gate", "comparison"):
        assert f'id="{element_id}"' in dom
    assert dom.count("<svg") >= 4
    assert "<script" not in dom
