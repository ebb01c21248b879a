"""A reconstruct under load survives a crash at each of its steps, all in one run.

Every kill point a reconstruct of node 2's replica reaches is armed at once: the worker's six
(the removal's and the addition's), node 2's (as the leaving replica, then as the one
rebuilt) and node 1's, as an existing peer creating its channel back to node 2. Each process
dies at its next armed point and is restarted with the same environment (a point fires once),
until the reconstruct completes. Every point must have fired; the region ends on nodes 1, 2
and 3 with equal digests and every acknowledged write on each.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

import pytest

from contracts.killpoints import ENV_POINTS, EXIT_CODE, NODE_POINTS, WORKER_POINTS, KillPoint
from contracts.models import ReconstructInput, ReconstructResult
from stack.processes import ManagedProcess
from tests.support.chaos import rearm, restart
from tests.support.load import LoadWriter, missing_points
from tests.support.stack import Stack
from workflows.reconstruct import ReconstructRegionWorkflow

pytestmark = pytest.mark.slow

REGION = 961  # apart from the kill-point matrix's 900s
REBUILT = 2
# leaving, then created and activated. Not BEFORE_INACTIVATE: restarted there, node 2 finds
# itself removed and deletes its replica by itself, so AFTER_INACTIVATE would never be reached
# (the kill-point matrix crashes the same step there, alone).
ITS_POINTS = NODE_POINTS - {KillPoint.ORIGINAL_ADD_PEER_DONE, KillPoint.BEFORE_INACTIVATE}
RECOVERY_S = 180.0
R = TypeVar("R")


def armed(points: frozenset[KillPoint] | set[KillPoint]) -> dict[str, str]:
    return {ENV_POINTS: ",".join(sorted(p.value for p in points))}


async def restart_whoever_dies(victims: list[ManagedProcess], done: asyncio.Future[R]) -> int:
    """Until `done`, restart each victim that died at a kill point; how many restarts."""
    restarts = 0
    while not done.done():
        for victim in victims:
            assert victim.proc is not None
            code = victim.proc.poll()
            if code is None:
                continue
            assert code == EXIT_CODE, f"{victim.name} exited {code}:\n{victim.output()[-4000:]}"
            await restart(victim)
            restarts += 1
        await asyncio.wait([done], timeout=0.2)  # a poll of the processes' exit codes
    return restarts


async def test_a_reconstruct_survives_a_crash_at_each_of_its_steps(stack: Stack) -> None:
    cluster = stack.cluster
    for i in (1, 2, 3):
        cluster.add_node(i)
    await cluster.create_region(REGION, [1, 2, 3])
    await rearm(cluster.nodes[REBUILT], armed(ITS_POINTS))  # past its first creation
    await rearm(cluster.nodes[1], armed({KillPoint.ORIGINAL_ADD_PEER_DONE}))
    worker = stack.start_worker(env=armed(WORKER_POINTS))
    load = LoadWriter(cluster, REGION, [1, 3]).start()
    await load.wait_acked(100)

    handle = await stack.start(
        ReconstructRegionWorkflow.run, ReconstructInput(region=REGION, node=REBUILT)
    )
    outcome = asyncio.ensure_future(handle.result())
    victims = [worker, cluster.nodes[1], cluster.nodes[REBUILT]]
    async with asyncio.timeout(RECOVERY_S):
        restarts = await restart_whoever_dies(victims, outcome)
    result: ReconstructResult = outcome.result()
    assert result.rebuilt_on == REBUILT, result

    fired = "".join(v.log_path.read_text(errors="replace") for v in victims)
    expected = {*WORKER_POINTS, *ITS_POINTS, KillPoint.ORIGINAL_ADD_PEER_DONE}
    assert {p for p in expected if f"[KILL POINT] {p}" in fired} == expected
    assert restarts == len(expected)
    acked = await load.stop()
    await cluster.converged(REGION, [1, 2, 3], count=len(acked))
    for i in (1, 2, 3):
        assert await missing_points(cluster, i, REGION, acked) == [], i
