"""`rung serve`, measured: a load generator on 127.0.0.1, bounded in time and count.

Sections (all by default; pick with --sections):

  overhead    the gateway's overhead over calling the pipeline in process, with the OpenAI test
              stub as upstream (a separate process) so the model does not dominate: p50 / p95 of
              the same requests (a) through Pipeline.answer_batch in this process, (b) through
              `rung serve` over HTTP (httpx, one client, sequential), for a candidate without
              guardrails and one with injection + PII + safety + size guardrails. Goal (LiteLLM
              proxy's numbers): <= 2 ms p50 / 8 ms p95 added.
  batching    throughput of the embedded model (SmolLM2-135M) behind `rung serve` with
              micro-batching on vs off (max_batch 1), at 1 / 4 / 16 concurrent clients, each
              point bounded by --seconds. Goal: >= 3x at 16.
  adapters    per-adapter p50 / p95 through the gateway (sequential): base, two resident LoRA
              adapters (random weights), and the first adapter merged into the base (another
              model). Goal: adapter <= 1.1x base.
  memory      resident memory (RSS) of the embedded model with 1 vs 8 resident LoRA adapters,
              each in its own child process, after one request per adapter.
  guardrails  false-block rate of the input guardrails on the example's answerable cases
              (examples/support-desk, should_refuse: false) for the default injection
              classifier and the one the example configures (threshold 0.8 + its train cases);
              and of the output guardrails (citations, safety) on the answers of rag-extractive
              to the first --answers answerable cases.

Run: HF_HUB_OFFLINE=1 RUNG_THREADS=2 python benchmarks/gateway.py [--sections overhead,batching,...]
     [--requests 300] [--seconds 30] [--json out.json]
The load average is printed: on shared cores every number here moves with it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "support-desk"
sys.path.insert(0, str(ROOT / "tests"))  # the OpenAI stub and the gateway test helpers

SECTIONS = ("overhead", "batching", "adapters", "memory", "guardrails")
QUESTIONS = ["What is the capital of France?", "How do I reset my router?", "Explain photosynthesis briefly.",
             "List three tips for sleeping well.", "Who wrote Hamlet?", "Describe how a bicycle works.",
             "What are the benefits of exercise?", "Summarise Cinderella in two sentences."]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    vals = sorted(values)
    k = (len(vals) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(vals) - 1)
    return vals[lo] + (vals[hi] - vals[lo]) * (k - lo)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def log(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------- helpers

class StubProcess:
    """The OpenAI test stub in its own process (so it does not share this one's GIL)."""

    def __enter__(self) -> str:
        code = (f"import sys, time; sys.path.insert(0, {str(ROOT / 'tests')!r})\n"
                "from openai_stub import StubState, serve\n"
                "with serve(StubState()) as url:\n    print(url, flush=True)\n    time.sleep(1e9)\n")
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        return self.proc.stdout.readline().strip()

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait(10)


def serve_project(root: Path):  # -> GatewayProcess
    from gateway_support import GatewayProcess

    return GatewayProcess(root).wait_ready(timeout=600)


def random_lora(folder: Path, seed: int) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from rung.models.embedded import resolve_llm

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(resolve_llm("embedded:smollm2-135m-instruct").pretrained_path())
    cfg = LoraConfig(r=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], init_lora_weights=False,
                     lora_alpha=16)
    model = get_peft_model(base, cfg)
    model.save_pretrained(folder)


def merged_model(adapter: Path, out: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rung.models.embedded import resolve_llm

    src = resolve_llm("embedded:smollm2-135m-instruct").pretrained_path()
    base = AutoModelForCausalLM.from_pretrained(src)
    PeftModel.from_pretrained(base, adapter).merge_and_unload().save_pretrained(out)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)


def sequential(url: str, key: str, model: str, n: int, text: str | None = None,
               seconds: float | None = None) -> list[float]:
    import httpx

    out = []
    deadline = time.monotonic() + seconds if seconds else None
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=600) as h:
        for i in range(n):
            body = {"model": model, "messages": [{"role": "user", "content": text or QUESTIONS[i % len(QUESTIONS)]}]}
            t0 = time.perf_counter()
            r = h.post("/v1/chat/completions", json=body)
            out.append(time.perf_counter() - t0)
            r.raise_for_status()
            if deadline and time.monotonic() > deadline:
                break
    return out


# ---------------------------------------------------------------- overhead

def bench_overhead(args: argparse.Namespace, work: Path) -> dict:
    from gateway_support import make_key

    from rung.config import load_config
    from rung.core import Case
    from rung.pipeline.pipeline import build_pipeline

    results: dict = {}
    with StubProcess() as url:
        root = work / "overhead"
        root.mkdir()
        (root / "rung.yaml").write_text(f"""
project: overhead
models:
  stub: {{backend: openai, base_url: "{url}", model: stub-model, max_retries: 0}}
candidates:
  plain: {{model: stub, system_prompt: You are helpful.}}
  guarded:
    model: stub
    system_prompt: You are helpful.
    guardrails:
      injection: {{action: block}}
      pii: {{action: redact}}
      safety: {{action: block}}
      output_size: {{action: redact, max_chars: 2000}}
serving:
  rate_limit: {{requests_per_minute: 1000000, burst: 1000}}
  traces: {{label_sample_rate: 0}}
""", encoding="utf-8")
        cfg = load_config(root)
        n = args.requests
        for cand in ("plain", "guarded"):
            pipe = build_pipeline(cfg, cand, use_cache=False)
            lat = []
            for i in range(n + 20):
                t0 = time.perf_counter()
                pipe.answer_batch([Case(id=str(i), input=QUESTIONS[i % len(QUESTIONS)])])
                if i >= 20:  # warm-up
                    lat.append(time.perf_counter() - t0)
            results[f"in_process_{cand}"] = lat
        key = make_key(root, "bench")
        gw = serve_project(root)
        try:
            for cand in ("plain", "guarded"):
                sequential(gw.url, key, cand, 20)  # warm-up
                results[f"gateway_{cand}"] = sequential(gw.url, key, cand, n)
            results["server"] = _server_side(gw.url)  # the sequential requests (and warm-ups) only
            # the same through 8 concurrent clients: throughput of the gateway itself
            t0 = time.perf_counter()
            done = []

            def client() -> None:
                done.extend(sequential(gw.url, key, "plain", n // 4))

            threads = [threading.Thread(target=client) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            results["concurrent8_rps"] = len(done) / (time.perf_counter() - t0)
            results["concurrent8"] = done
        finally:
            gw.stop()
    summary: dict = {"requests": n}
    log(f"\n== gateway overhead over the in-process pipeline (stub upstream, {n} sequential requests; {load()})")
    log(f"{'':26}{'p50 ms':>9}{'p95 ms':>9}{'added p50':>11}{'added p95':>11}")
    for cand in ("plain", "guarded"):
        a, b = results[f"in_process_{cand}"], results[f"gateway_{cand}"]
        for label, v in ((f"in process, {cand}", a), (f"rung serve, {cand}", b)):
            log(f"{label:26}{pct(v, 50) * 1000:9.2f}{pct(v, 95) * 1000:9.2f}" + (
                f"{(pct(b, 50) - pct(a, 50)) * 1000:11.2f}{(pct(b, 95) - pct(a, 95)) * 1000:11.2f}"
                if v is b else ""))
        summary[cand] = {"in_process_p50_ms": pct(a, 50) * 1000, "in_process_p95_ms": pct(a, 95) * 1000,
                         "gateway_p50_ms": pct(b, 50) * 1000, "gateway_p95_ms": pct(b, 95) * 1000,
                         "added_p50_ms": (pct(b, 50) - pct(a, 50)) * 1000,
                         "added_p95_ms": (pct(b, 95) - pct(a, 95)) * 1000}
    srv = results["server"]
    log(f"inside the gateway (means over the sequential requests, from its /metrics): request "
        f"{srv['request_ms']:.2f} ms, of which model call {srv['model_ms']:.2f} ms and write-ahead trace commit "
        f"{srv['trace_ms']:.2f} ms; the rest of the added time is HTTP (client, uvicorn, FastAPI)")
    summary["server_side_means_ms"] = srv
    c8 = results["concurrent8"]
    log(f"8 concurrent clients (plain): {results['concurrent8_rps']:.0f} requests/s, "
        f"p50 {pct(c8, 50) * 1000:.1f} ms, p95 {pct(c8, 95) * 1000:.1f} ms")
    summary["concurrent8"] = {"rps": results["concurrent8_rps"], "p50_ms": pct(c8, 50) * 1000,
                              "p95_ms": pct(c8, 95) * 1000}
    return summary


def _server_side(url: str) -> dict:
    """Mean request duration, model-call duration and trace-commit wait from the gateway's /metrics."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    sums: dict[str, list[float]] = {}
    for fam in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for smp in fam.samples:
            if smp.name.endswith(("_sum", "_count")):
                base, kind = smp.name.rsplit("_", 1)
                if kind == "count" and fam.type != "histogram":
                    continue
                sums.setdefault(base, [0.0, 0.0])[0 if kind == "sum" else 1] += smp.value

    def mean(name: str) -> float:
        s, n = sums.get(name, [0.0, 0.0])
        return s / n * 1000 if n else float("nan")

    return {"request_ms": mean("gen_ai_server_request_duration_seconds"),
            "model_ms": mean("gen_ai_client_operation_duration_seconds"),
            "trace_ms": mean("rung_trace_write_seconds")}


# ---------------------------------------------------------------- batching

def _embedded_project(root: Path, *, batching: bool, adapters: dict[str, Path] | None = None,
                      merged: Path | None = None, tokens: int = 32) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    ad = "".join(f"      {k}: {v}\n" for k, v in (adapters or {}).items())
    models = ("models:\n  default:\n    backend: local\n    path: embedded:smollm2-135m-instruct\n"
              "    max_batch_size: 16\n" + (f"    adapters:\n{ad}" if ad else ""))
    if merged is not None:
        models += f"  merged: {{backend: local, path: {merged}, max_batch_size: 16}}\n"
    gen = f"{{max_new_tokens: {tokens}, temperature: 0, repetition_penalty: 1.15}}"
    cands = f"candidates:\n  base: {{model: default, generation: {gen}}}\n"
    for k in adapters or {}:
        cands += f"  {k}: {{model: default, adapter: {k}, generation: {gen}}}\n"
    if merged is not None:
        cands += f"  merged: {{model: merged, generation: {gen}}}\n"
    (root / "rung.yaml").write_text(
        "project: bench\n" + models + cands + "serving:\n"
        f"  batching: {{enabled: {str(batching).lower()}, max_wait_ms: 10, max_batch: 16}}\n"
        "  rate_limit: {requests_per_minute: 1000000, burst: 1000}\n  traces: {label_sample_rate: 0}\n",
        encoding="utf-8")
    return root


def _throughput(url: str, key: str, clients: int, seconds: float, model: str = "base") -> dict:
    import httpx

    async def run() -> tuple[int, int, float]:
        done = tokens = 0
        stop = time.monotonic() + seconds
        t0 = time.perf_counter()
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"},
                                     timeout=900) as h:
            async def one(i: int) -> None:
                nonlocal done, tokens
                n = 0
                while time.monotonic() < stop or n == 0:
                    q = QUESTIONS[(i + n) % len(QUESTIONS)]
                    r = await h.post("/v1/chat/completions",
                                     json={"model": model, "messages": [{"role": "user", "content": q}]})
                    r.raise_for_status()
                    done += 1
                    tokens += r.json()["usage"]["completion_tokens"]
                    n += 1
            await asyncio.gather(*[one(i) for i in range(clients)])
        return done, tokens, time.perf_counter() - t0

    done, tokens, wall = asyncio.run(run())
    return {"requests": done, "tokens": tokens, "seconds": wall, "rps": done / wall, "tokens_per_s": tokens / wall}


def bench_batching(args: argparse.Namespace, work: Path) -> dict:
    from gateway_support import make_key

    out: dict = {}
    for batching in (False, True):
        root = _embedded_project(work / f"batching-{batching}", batching=batching, tokens=args.tokens)
        key = make_key(root, "bench")
        gw = serve_project(root)
        try:
            sequential(gw.url, key, "base", 1)  # warm-up
            for c in args.clients:
                r = _throughput(gw.url, key, c, args.seconds)
                out[f"{'batched' if batching else 'one_at_a_time'}_{c}"] = r
                log(f"  batching={'on ' if batching else 'off'} clients={c:2d}: {r['tokens_per_s']:6.1f} tokens/s, "
                    f"{r['rps']:.2f} requests/s ({r['requests']} requests in {r['seconds']:.0f} s)")
        finally:
            gw.stop()
    log(f"\n== micro-batching on the embedded model ({args.tokens} new tokens, {load()})")
    log(f"{'clients':>8}{'off tok/s':>11}{'on tok/s':>10}{'ratio':>8}")
    for c in args.clients:
        a, b = out[f"one_at_a_time_{c}"], out[f"batched_{c}"]
        ratio = b["tokens_per_s"] / a["tokens_per_s"] if a["tokens_per_s"] else float("nan")
        out[f"ratio_{c}"] = ratio
        log(f"{c:8d}{a['tokens_per_s']:11.1f}{b['tokens_per_s']:10.1f}{ratio:7.2f}x")
    return out


# ---------------------------------------------------------------- adapters

def bench_adapters(args: argparse.Namespace, work: Path) -> dict:
    from gateway_support import make_key

    adapters = {"lora-a": work / "adapters" / "lora-a", "lora-b": work / "adapters" / "lora-b"}
    for i, p in enumerate(adapters.values()):
        random_lora(p, seed=i)
    merged = work / "merged-a"
    merged_model(adapters["lora-a"], merged)
    root = _embedded_project(work / "adapters-project", batching=True, adapters=adapters, merged=merged,
                             tokens=args.tokens)
    key = make_key(root, "bench")
    gw = serve_project(root)
    out: dict = {}
    try:
        names = ["base", "lora-a", "lora-b", "merged"]
        for name in names:
            sequential(gw.url, key, name, 1)  # warm-up
        lat: dict[str, list[float]] = {n: [] for n in names}
        tok: dict[str, list[int]] = {n: [] for n in names}
        import httpx

        with httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {key}"}, timeout=600) as h:
            for i in range(args.adapter_requests):  # interleaved: load drifts hit every arm alike
                for name in names:
                    t0 = time.perf_counter()
                    r = h.post("/v1/chat/completions", json={"model": name, "messages": [
                        {"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]})
                    lat[name].append(time.perf_counter() - t0)
                    tok[name].append(r.json()["usage"]["completion_tokens"])
    finally:
        gw.stop()
    base50 = pct(lat["base"], 50)
    log(f"\n== per-adapter latency through the gateway ({args.adapter_requests} requests each, interleaved, "
        f"{args.tokens} new tokens max; {load()})")
    log(f"{'':10}{'p50 ms':>9}{'p95 ms':>9}{'x base p50':>12}{'ms/token':>10}")
    for name in lat:
        per_tok = sum(lat[name]) / max(1, sum(tok[name])) * 1000
        out[name] = {"p50_ms": pct(lat[name], 50) * 1000, "p95_ms": pct(lat[name], 95) * 1000,
                     "x_base_p50": pct(lat[name], 50) / base50, "ms_per_token": per_tok}
        log(f"{name:10}{out[name]['p50_ms']:9.0f}{out[name]['p95_ms']:9.0f}{out[name]['x_base_p50']:11.2f}x"
            f"{per_tok:10.1f}")
    return out


# ---------------------------------------------------------------- memory

def _rss_child(n_adapters: int, folder: str) -> None:
    from rung.models.base import GenerationParams, GenRequest
    from rung.models.local import LocalModel

    m = LocalModel("embedded:smollm2-135m-instruct").load()
    for i in range(n_adapters):
        m.load_adapter(f"a{i}", Path(folder) / f"a{i}")
    p = GenerationParams(max_new_tokens=4)
    m.generate([GenRequest.chat([{"role": "user", "content": "hi"}], p, adapter=f"a{i}") for i in range(n_adapters)])
    rss = int(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmRSS")))
    hwm = int(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")))
    print(json.dumps({"rss_mb": rss / 1024, "peak_mb": hwm / 1024}))


def bench_memory(args: argparse.Namespace, work: Path) -> dict:
    folder = work / "mem-adapters"
    for i in range(8):
        random_lora(folder / f"a{i}", seed=100 + i)
    size = sum(f.stat().st_size for f in (folder / "a0").iterdir()) / 1e6
    out: dict = {"adapter_file_mb": size}
    for n in (1, 8):
        r = subprocess.run([sys.executable, __file__, "--rss-child", str(n), str(folder)], capture_output=True,
                           text=True, env={**os.environ}, timeout=900)
        out[n] = json.loads(r.stdout.strip().splitlines()[-1])
    log(f"\n== resident memory, embedded model with N resident LoRA adapters (r=8, q/k/v/o; {size:.1f} MB each)")
    for n in (1, 8):
        log(f"  {n} adapter(s): RSS {out[n]['rss_mb']:.0f} MB (peak {out[n]['peak_mb']:.0f} MB)")
    log(f"  each extra adapter: {(out[8]['rss_mb'] - out[1]['rss_mb']) / 7:.1f} MB")
    return out


# ---------------------------------------------------------------- guardrails

def bench_guardrails(args: argparse.Namespace, work: Path) -> dict:
    from rung.config import load_config
    from rung.config.serving import GuardrailsConfig
    from rung.evals.suite import load_suite
    from rung.ops.gateway.routing import InjectionClassifiers
    from rung.ops.guardrails import Guardrails

    cases = load_suite(EXAMPLE / "cases" / "eval.jsonl").cases
    answerable = [c for c in cases if c.should_refuse is False]
    refuse = [c for c in cases if c.should_refuse]
    injection = [c for c in cases if "injection" in c.tags]
    cfg = load_config(EXAMPLE)
    classifiers = InjectionClassifiers()
    out: dict = {"answerable": len(answerable)}
    log(f"\n== input guardrails on the example's eval cases ({len(answerable)} answerable, "
        f"{len(refuse)} to refuse, {len(injection)} tagged injection)")
    settings = {"default (threshold 0.5)": {"injection": {"action": "block"}, "pii": {"action": "redact"}},
                "example (threshold 0.8 + train cases)": {
                    "injection": {"action": "block", "threshold": 0.8, "examples": "cases/train.jsonl"},
                    "pii": {"action": "redact"}}}
    for label, spec in settings.items():
        g = GuardrailsConfig.model_validate(spec)
        guards = Guardrails(g, injection=classifiers.factory(cfg, g.injection.examples, g.injection.examples_weight))
        blocked = [c for c in answerable if guards.check_input(c.chat()).blocked]
        caught = [c for c in injection if guards.check_input(c.chat()).blocked]
        caught_refuse = [c for c in refuse if guards.check_input(c.chat()).blocked]
        out[label] = {"false_blocks": len(blocked), "rate": len(blocked) / len(answerable),
                      "injection_caught": len(caught), "refuse_caught": len(caught_refuse),
                      "blocked_ids": [c.id for c in blocked]}
        log(f"  {label:40} false blocks {len(blocked):3d}/{len(answerable)} ({len(blocked) / len(answerable):.1%}); "
            f"blocks {len(caught)}/{len(injection)} injection cases, {len(caught_refuse)}/{len(refuse)} to refuse")
    # output guardrails on real answers (rag-extractive, the embedded model)
    if args.answers > 0:
        from rung.pipeline.pipeline import build_pipeline

        proj = work / "example"
        shutil.copytree(EXAMPLE, proj, ignore=shutil.ignore_patterns(".rung"))
        pcfg = load_config(proj)
        pipe = build_pipeline(pcfg, "rag-extractive", use_cache=False)
        subset = answerable[:args.answers]
        t0 = time.perf_counter()
        answers = []
        for i in range(0, len(subset), 8):
            answers += pipe.answer_batch(subset[i:i + 8])
        took = time.perf_counter() - t0
        g = GuardrailsConfig.model_validate({"citations": {"action": "block"}, "safety": {"action": "block"},
                                             "output_size": {"action": "block", "max_chars": 4000}})
        guards = Guardrails(g)
        reasons: dict[str, int] = {}
        for c, a in zip(subset, answers):
            res = guards.check_output(c, a, False)
            if res.blocked:
                reasons[res.blocked.reason] = reasons.get(res.blocked.reason, 0) + 1
        n_blocked = sum(reasons.values())
        out["output"] = {"answers": len(subset), "false_blocks": n_blocked, "rate": n_blocked / len(subset),
                         "by_reason": reasons, "answer_seconds": took}
        log(f"  output guardrails (citations block, safety block, size) on rag-extractive's answers to "
            f"{len(subset)} answerable cases: {n_blocked} blocked ({n_blocked / len(subset):.1%}) {reasons}")
    return out


# ---------------------------------------------------------------- main

def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--rss-child":
        _rss_child(int(sys.argv[2]), sys.argv[3])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default=",".join(SECTIONS))
    ap.add_argument("--requests", type=int, default=300, help="overhead: sequential requests per arm")
    ap.add_argument("--seconds", type=float, default=30.0, help="batching: seconds per point")
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--tokens", type=int, default=32, help="new tokens per answer (embedded model)")
    ap.add_argument("--adapter-requests", type=int, default=12)
    ap.add_argument("--answers", type=int, default=40, help="guardrails: answers checked by the output guards")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    args.clients = [int(x) for x in args.clients.split(",")]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        sys.exit(f"unknown sections {unknown}; known: {', '.join(SECTIONS)}")
    log(f"benchmarks/gateway.py: {', '.join(wanted)} ({os.cpu_count()} CPUs, {load()})")
    results: dict = {"load_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="rung-gw-bench-") as tmp:
        for s in wanted:
            t0 = time.perf_counter()
            results[s] = globals()[f"bench_{s}"](args, Path(tmp))
            log(f"  ({s}: {time.perf_counter() - t0:.0f} s)")
    results["load_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
