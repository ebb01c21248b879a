"""`python -m bench.nemesis --seed N --minutes M`: one nemesis run, its report as JSON.

Exit 0 only when the report lists no anomaly. The same seed replays the same schedule.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys

from bench.nemesis.run import run


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.nemesis", description=__doc__)
    p.add_argument("--seed", type=int, help="the schedule's seed (default: a random one)")
    p.add_argument("--minutes", type=float, default=10.0, help="how long faults strike")
    p.add_argument("--slot", type=int, help="the test hosts' slot (default: a free one)")
    args = p.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    report = asyncio.run(run(seed, args.minutes * 60, args.slot))
    json.dump(report, sys.stdout, indent=2)
    print()
    sys.exit(1 if report["anomalies"] else 0)


if __name__ == "__main__":
    main()
