"""From a node's death to full replication, with the autopilot: detection, then repair.

Prints JSON. Regions of `--points` points each on nodes 1-3, node 4 empty, the autopilot on
with `--dead-after` and a probe a second. Node 3 is SIGKILLed; the clock splits into detection
(until the autopilot declares it dead: `dead_after` plus up to a probe) and repair (until the
repair it started has given every region a replica on node 4 and dropped node 3). Beside it, in
the same run, one single migration of a region of the same size, for scale.
Run: `python bench/repair.py [--regions 10] [--points 20000] [--dead-after 10]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.client import Client, WorkflowHandle

from bench.common import bench_stack
from bench.rebalance import fill
from client.starter import start_autopilot, start_change
from contracts.ids import repair_workflow_id
from contracts.models import AutopilotInput, AutopilotState, MigrationInput
from workflows.autopilot import AutopilotWorkflow
from workflows.migration import RegionMigrationWorkflow

PROBE_S = 1.0


async def until(
    handle: WorkflowHandle[Any, Any], ok: Callable[[AutopilotState], bool]
) -> AutopilotState:
    """Poll the autopilot's status (a query: nothing to wait on) until `ok`."""
    while True:
        state: AutopilotState = await handle.query(AutopilotWorkflow.status)
        if ok(state):
            return state
        await asyncio.sleep(0.1)


async def decided(handle: WorkflowHandle[Any, Any], text: str) -> AutopilotState:
    return await until(handle, lambda s: any(text in d.what for d in s.decisions))


async def single(client: Client, region: int) -> float:
    began = time.perf_counter()
    request = MigrationInput(region=region, from_node=1, to_node=4)
    await (await start_change(client, RegionMigrationWorkflow.run, request)).handle.result()
    return time.perf_counter() - began


async def main(args: argparse.Namespace) -> dict[str, object]:
    async with bench_stack(nodes=4) as (stack, client, clients):
        await fill(clients, stack.nodes, args.regions + 1, args.points)
        one = await single(client, args.regions + 1)  # the extra region, for scale
        request = AutopilotInput(dead_after_s=args.dead_after, probe_every_s=PROBE_S)
        autopilot = await start_autopilot(client, request)
        await until(autopilot, lambda s: s.probes >= 2)  # it sees every node up

        stack.nodes[2].kill()
        died = time.perf_counter()
        await decided(autopilot, "node 3 declared dead")
        detected = time.perf_counter()
        await decided(autopilot, "the repair of node 3 ended")
        repaired = time.perf_counter()
        result = await client.get_workflow_handle(repair_workflow_id(3)).result()
    return {
        "regions": args.regions,
        "points_per_region": args.points,
        "dead_after_s": args.dead_after,
        "detection_s": round(detected - died, 2),
        "repair_s": round(repaired - detected, 2),
        "death_to_full_replication_s": round(repaired - died, 2),
        "regions_repaired": len(result["repaired"]),
        "repair_per_region_s": round((repaired - detected) / len(result["repaired"]), 2),
        "single_migration_s": round(one, 3),
        "repair_message": result["message"],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--regions", type=int, default=10)
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--dead-after", type=float, default=10.0)
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
