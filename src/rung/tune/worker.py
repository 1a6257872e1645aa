"""`python -m rung.tune.worker JOB.json [--resume] [--merge]`: run a tuning job in this process.

This is what `rung tune --launcher accelerate` starts under `accelerate launch`, one process per
device. It is an entry point, not library code: progress goes to stdout as JSON lines (main
process only), which the CLI turns into its progress bar; errors end with exit code 1 and one line
`{"event": "error", "message": ...}`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict


def main(argv: list[str] | None = None) -> int:
    from rung.errors import RungError
    from rung.tune.train.job import TuneJob
    from rung.tune.train.trainer import TrainProgress, train

    parser = argparse.ArgumentParser(prog="rung.tune.worker")
    parser.add_argument("job")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--merge", action="store_true")
    args = parser.parse_args(argv)

    main_process = os.environ.get("RANK", "0") == "0"

    def report(p: TrainProgress) -> None:
        print(json.dumps(asdict(p), default=str), flush=True)

    try:
        result = train(TuneJob.load(args.job), resume=args.resume, merge=args.merge, progress=report)
    except RungError as e:
        print(json.dumps({"event": "error", "message": str(e)}), flush=True)
        return 1
    if main_process:
            print(json.dumps({"event": "result", "folder": str(result.folder), "steps": result.steps,
                          "best": result.best, "merged": str(result.merged) if result.merged else None,
                          "timings": result.timings}, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
