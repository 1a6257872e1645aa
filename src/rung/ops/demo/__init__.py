"""`rung demo` (what `make demo` runs): the whole story on one project, in five stages.

    ladder   the ladder and the decision (rung ladder --sample N; finished steps reused)
    release  the decision's candidate (or its closest, said plainly) released and promoted to
             production, with the gate's evidence (forced, and recorded, when the gate refuses)
    serve    `rung serve` on 127.0.0.1, API keys for two tenants, held-out requests replayed
             concurrently with the openai client: P50/P95 as served, guardrail blocks
    rollout  a second release (the same candidate without its refusal gate) in a shadow rollout
             on production, requests replayed through the gateway, the judge over its traces:
             rolled back or promoted, with the paired numbers
    monitor  the alert rules once over the traces, the monitor page; where the reports are

    for result in run_demo(config, DemoOptions(sample=32)):    # each stage's StageResult
        print(result.stage, result.summary)
    run_stage(config, "serve")                                 # one stage alone

Later stages read what earlier ones stored (the run store, the releases and channels, the API
keys, `.rung/demo/state.json`); a stage whose prerequisite has not run raises DemoError naming
the stage to run first. The library never prints: the CLI renders each result as one line.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from rung.errors import did_you_mean
from rung.ops.demo.stages import DemoEvents, DemoOptions, StageResult
from rung.ops.demo.state import STAGES, STATE_FILE, DemoError, DemoState

if TYPE_CHECKING:
    from rung.config import RungConfig

STAGE_HELP = {
    "ladder": "the ladder and the decision (finished steps are reused)",
    "release": "release the decision's candidate (or the closest) and promote it to production",
    "serve": "rung serve on 127.0.0.1, two tenants' keys, held-out requests with the openai client",
    "rollout": "a second release in a shadow rollout, judged on the gateway's traces",
    "monitor": "the alert rules once, the monitor page, the reports' paths",
}

__all__ = ["STAGES", "STAGE_HELP", "STATE_FILE", "DemoError", "DemoEvents", "DemoOptions", "DemoState",
           "StageResult", "check_stage", "run_demo", "run_stage"]


def check_stage(name: str) -> str:
    """`name` if it is a stage, else DemoError listing them."""
    if name not in STAGES:
        raise DemoError(f"no demo stage {name!r}{did_you_mean(name, STAGES)}; the stages, in order: "
                        f"{', '.join(STAGES)}")
    return name


def run_stage(config: RungConfig, name: str, options: DemoOptions | None = None,
              events: DemoEvents | None = None, state: DemoState | None = None) -> StageResult:
    """Run one stage on `config` (it reads what the earlier stages stored)."""
    from rung.ops.demo.live import stage_monitor, stage_rollout
    from rung.ops.demo.stages import stage_ladder, stage_release, stage_serve

    runners = {"ladder": stage_ladder, "release": stage_release, "serve": stage_serve,
               "rollout": stage_rollout, "monitor": stage_monitor}
    check_stage(name)
    state = state if state is not None else DemoState.for_config(config)
    t0 = time.perf_counter()
    result = runners[name](config, state, options or DemoOptions(), events or DemoEvents())
    result.seconds = time.perf_counter() - t0
    return result


def run_demo(config: RungConfig, options: DemoOptions | None = None, events: DemoEvents | None = None,
             stages: Sequence[str] = STAGES) -> Iterator[StageResult]:
    """Run `stages` in order, yielding each result as it finishes; a stage that cannot run
    raises DemoError (the later ones do not run). A ladder that cannot decide (exit code 2)
    stops the demo after its line."""
    state = DemoState.for_config(config)
    for name in stages:
        result = run_stage(config, name, options, events, state)
        yield result
        if result.exit_code:
            return
