"""Can the online hallucination flag be alerted on? Its false-alarm rate on faithful answers that
paraphrase their sources, its detection rate on answers that contradict them, both on text written
and labelled by fitz-gov's authors (MIT, in site-packages; nothing here wrote a response), then
what that means for the `hallucination_spike` alert rule: pages per week of a healthy release and
how fast a bad one is caught, by simulation.

Faithful paraphrases: fitz-gov's `different_framing` cases (trustworthy_direct and
trustworthy_hedged) give two or three passages that describe the same facts in different words;
their rationale says so ("All three sources describe the identical TLS handshake ..."). Each
ordered pair (answer = one passage, source = another) is a faithful answer that paraphrases its
source. Passages that open with an analogy ("Think of ...", "Imagine ...", "Picture ...") are
reported apart: an analogy is faithful in spirit, not claim by claim.

Unsupported: fitz-gov's conflicting `dispute` cases (numerical, binary, opposing conclusions,
statistical direction): the answer is the second passage, the source the first, which the
benchmark labels as contradicting it. (The passages also carry their own attributions, which the
entity check catches too: the claim-level numbers below say how much of the detection rests on
names alone.)

The label is the `groundedness` scorer as the gateway runs it online (`hallucination` = 1 when a
claim is unsupported), with the embedded MiniLM (default) or lexical only (--no-embedder).

Run: HF_HUB_OFFLINE=1 python benchmarks/groundedness_alert.py [--no-embedder] [--days 7]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import re
import time
from pathlib import Path
from typing import Any

ANALOGY = re.compile(r"^\s*(think of|imagine|picture|it'?s like|like a)\b", re.IGNORECASE)
CONFLICTS = ("numerical_conflict", "binary_conflict", "opposing_conclusions", "statistical_direction_conflict")


def load_cases() -> list[dict[str, Any]]:
    spec = importlib.util.find_spec("fitz_gov")
    if spec is None or spec.origin is None:
        raise SystemExit("fitz-gov is not installed (pip install --no-deps fitz-gov==4.1.0)")
    out = []
    for f in sorted((Path(spec.origin).parent / "data" / "tier1_core").glob("*.json")):
        out += json.loads(f.read_text())["cases"]
    return out


def pairs(cases: list[dict[str, Any]]) -> dict[str, list[tuple[str, str, str, str]]]:
    """set name -> [(case id, query, answer text, source text)]."""
    out: dict[str, list[tuple[str, str, str, str]]] = {"paraphrase": [], "analogy": [], "conflict": []}
    for c in cases:
        ctx = [x for x in c["contexts"] if x.strip()]
        if c.get("subcategory") == "different_framing" and len(ctx) >= 2:
            for i, a in enumerate(ctx):
                for j, s in enumerate(ctx):
                    if i != j and not ANALOGY.match(s):
                        out["analogy" if ANALOGY.match(a) else "paraphrase"].append((c["id"], c["query"], a, s))
        elif c.get("category") == "dispute" and c.get("subcategory") in CONFLICTS and len(ctx) >= 2:
            out["conflict"].append((c["id"], c["query"], ctx[1], ctx[0]))
    return out


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def score_sets(sets: dict[str, list[tuple[str, str, str, str]]], use_embedder: bool) -> dict[str, Any]:
    from rung.core import Answer, Case, RetrievedChunk, Trace
    from rung.evals.scorers.base import ScoreContext
    from rung.evals.scorers.groundedness import GroundednessScorer

    def factory() -> Any:
        from rung.pipeline.retrieval.index import get_embedder

        return get_embedder("embedded:all-minilm-l6-v2")

    scorer = GroundednessScorer(use_embedder=use_embedder)
    ctx = ScoreContext(embedder_factory=factory if use_embedder else None)
    out: dict[str, Any] = {}
    for name, items in sets.items():
        flagged = claims = bad_claims = names_only = 0
        reasons: dict[str, int] = {}
        for cid, query, answer, source in items:
            ans = Answer(text=answer, trace=Trace(retrieved=[RetrievedChunk(id="src#0", doc_id="src", text=source)]))
            s = scorer.score(Case(id=cid, input=query), ans, ctx)[0]
            flagged += s.value == 1.0
            for cl in s.details.get("claims", []):
                claims += 1
                if not cl["supported"]:
                    bad_claims += 1
                    why = cl["why"].split(" ")[0] if cl["why"] else "?"
                    reasons[why] = reasons.get(why, 0) + 1
                    if cl.get("missing") and all(m.startswith("name") or m.startswith("entity") for m in cl["missing"]):
                        names_only += 1
        n = len(items)
        out[name] = {"answers": n, "flagged": flagged, "rate": flagged / n if n else None,
                     "ci95": wilson(flagged, n), "claims": claims, "unsupported_claims": bad_claims,
                     "claim_rate": bad_claims / claims if claims else None,
                     "unsupported_by_names_only": names_only, "why": reasons}
    return out


# ------------------------------------------------------------------------- the alert, simulated

def simulate(p_true: float, p_baseline: float, n_eval: int, *, alpha: float, min_increase: float,
             window_min: float, for_min: float, min_requests: int, rps: float, days: float,
             every_s: float = 30.0, seed: int = 0) -> tuple[int, float | None]:
    """(pages, minutes to the first page) of the hallucination_spike rule on a stream whose flag
    probability is p_true, against a baseline p_baseline estimated from n_eval eval answers."""
    import numpy as np
    from scipy import stats

    from rung.config.operations import AlertRule, MonitorConfig
    from rung.ops.monitor.engine import Monitor
    from rung.ops.monitor.rules import Baseline
    from rung.ops.records import TraceRecord

    rng = np.random.default_rng(seed)
    base_hat = rng.binomial(n_eval, p_baseline) / n_eval  # what the eval run measured
    rule = AlertRule(kind="hallucination_spike", alpha=alpha, min_increase=min_increase,
                     window_minutes=window_min, for_minutes=for_min, min_requests=min_requests)
    mon = Monitor(MonitorConfig(rules={"h": rule}), lambda _r: Baseline(hallucination=base_hat, n=n_eval))
    horizon = days * 86400.0
    n = rng.poisson(rps * horizon)
    ts = np.sort(rng.uniform(0, horizon, n))
    flags = rng.random(n) < p_true
    recs = [TraceRecord(id=str(i), request_id=str(i), ts=float(t), release="r", channel="production",
                        labels={"hallucination": bool(f)}) for i, (t, f) in enumerate(zip(ts, flags))]
    pages, first = 0, None
    lo = 0
    win = window_min * 60.0
    t = every_s
    while t <= horizon:
        while lo < n and ts[lo] <= t - win:
            lo += 1
        hi = int(np.searchsorted(ts, t, side="right"))
        for ev in mon.evaluate(recs[lo:hi], t):
            if ev.status == "firing" and not ev.repeat:
                pages += 1
                first = first if first is not None else t / 60.0
        t += every_s
    del stats
    return pages, first


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-embedder", action="store_true")
    ap.add_argument("--days", type=float, default=2.0, help="simulated days of a healthy release")
    ap.add_argument("--rps", type=float, default=0.05, help="labelled requests per second")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    t0 = time.time()
    sets = pairs(load_cases())
    res = score_sets(sets, use_embedder=not args.no_embedder)
    method = "lexical + facts" if args.no_embedder else "embedding + lexical + facts (MiniLM)"
    print(f"groundedness label ({method}) on fitz-gov pairs, {time.time() - t0:.0f} s")
    for name, r in res.items():
        lo, hi = r["ci95"]
        what = "false alarms" if name != "conflict" else "detected"
        print(f"  {name:10s} {r['flagged']:4d}/{r['answers']:4d} answers flagged = {r['rate']:.3f} "
              f"[{lo:.3f}, {hi:.3f}] ({what}); claims {r['unsupported_claims']}/{r['claims']} unsupported; "
              f"why: {dict(sorted(r['why'].items(), key=lambda kv: -kv[1])[:4])}; "
              f"names only: {r['unsupported_by_names_only']}")
    fa = res["paraphrase"]["rate"]
    det = res["conflict"]["rate"]
    # The rule tests a window against the release's own eval rate, so what matters is how often a
    # healthy release (flag rate = its eval rate p0, estimated from 200 eval answers) pages, and
    # how fast a bad one (20% of answers now contain an unsupported claim, flagged with the
    # detection rate above) is caught. p0 = 0.025: the example's extractive release; 0.3: a
    # release that paraphrases some of the time; the measured false-alarm rate itself
    # (paraphrasing answers throughout) is above max_baseline: the rule does not test there.
    print(f"\nalert simulation: {args.rps:g} labelled requests/s, evaluated every 30 s, {args.days:g} days "
          "per healthy run, eval baseline from 200 answers, 3 seeds")
    grid = [(0.05, 0.0, 0), (0.01, 0.0, 0), (0.01, 0.05, 0), (0.01, 0.05, 5), (0.001, 0.05, 5)]
    rows = []
    for p0 in (0.025, 0.3, fa):
        bad_rate = p0 + (1 - p0) * 0.2 * det
        for alpha, inc, hold in grid:
            if p0 > 0.5:
                print(f"  p0 {p0:.3f}: above max_baseline 0.5: not tested (the rule says why instead)")
                break
            healthy = [simulate(p0, p0, 200, alpha=alpha, min_increase=inc, window_min=15, for_min=hold,
                                min_requests=50, rps=args.rps, days=args.days, seed=s)[0] for s in range(3)]
            bad = [simulate(bad_rate, p0, 200, alpha=alpha, min_increase=inc, window_min=15, for_min=hold,
                            min_requests=50, rps=args.rps, days=0.25, seed=10 + s)[1] for s in range(3)]
            per_week = sum(healthy) / (3 * args.days) * 7
            caught = [b for b in bad if b is not None]
            mins = (sum(caught) / len(caught)) if caught else None
            rows.append({"p0": p0, "bad_rate": bad_rate, "alpha": alpha, "min_increase": inc, "for_min": hold,
                         "healthy_pages_per_week": per_week, "bad_minutes_to_page": mins,
                         "bad_caught": f"{len(caught)}/3"})
            print(f"  p0 {p0:.3f} alpha {alpha:<6g} min_increase {inc:<5g} for {hold:g} min: healthy "
                  f"{per_week:5.2f} pages/week; bad ({bad_rate:.3f}) caught {len(caught)}/3 after "
                  f"{mins if mins is not None else float('nan'):.1f} min")
    if args.json:
        args.json.write_text(json.dumps({"method": method, "sets": res, "alert": rows}, indent=2))


if __name__ == "__main__":
    main()
