"""`python -m rung.tune.worker JOB.json [--resume] [--merge]`: run a tuning job in this process.

This is what `rung.tune.train.launcher.launch` (`rung tune --launcher accelerate`) starts under
`accelerate launch`, one process per device. It is an entry point, not library code: progress
and the result go to stdout as JSON lines (main process only) in the protocol the launcher
defines and reads; errors end with exit code 1 and one line `{"event": "error", "message": ...}`.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    from rung.errors import RungError
    from rung.tune.train.job import TuneJob
    from rung.tune.train.launcher import encode, error_event, progress_event, result_event
    from rung.tune.train.trainer import TrainProgress, train

    parser = argparse.ArgumentParser(prog="rung.tune.worker")
    parser.add_argument("job")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--merge", action="store_true")
    args = parser.parse_args(argv)

    main_process = os.environ.get("RANK", "0") == "0"

    def report(p: TrainProgress) -> None:
        print(encode(progress_event(p)), flush=True)

    try:
        result = train(TuneJob.load(args.job), resume=args.resume, merge=args.merge, progress=report)
    except RungError as e:
        print(encode(error_event(str(e))), flush=True)
        return 1
    if main_process:
        print(encode(result_event(result)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
