"""A node gone for good is a fact, not an error: airctl answers from the live replicas, says
which replicas it could not ask, and once the node is repaired and forgotten, every command
works as before."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from runtime.cluster_file import ClusterFile, NodeEntry
from tests.support.stack import Stack

REGION = 761


def airctl(stack: Stack, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "airctl", "--cluster", str(stack.cluster_file), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == code, f"airctl {' '.join(args)} -> {done.returncode}\n{done.stderr}"
    return done


def airctl_json(stack: Stack, *args: str) -> Any:
    return json.loads(airctl(stack, "--json", *args).stdout)


async def test_a_node_gone_for_good_then_repaired_and_forgotten(stack: Stack) -> None:
    cluster = await stack.four_nodes(REGION)
    ClusterFile(
        temporal_address=stack.temporal_address,
        local=True,
        task_queue=stack.task_queue,
        nodes=[NodeEntry(id=i, address=n.address) for i, n in sorted(cluster.nodes.items())],
    ).save(stack.cluster_file)
    log = cluster.root / "acked.log"
    airctl(stack, "write", str(REGION), "--count", "100", "--acked-log", str(log))
    # replicated everywhere first: what node 3 took and never replicated would be lost (`one`)
    await cluster.converged(REGION, [1, 2, 3], count=100)

    cluster.nodes[3].kill()  # for good
    down = airctl(stack, "--json", "digest", str(REGION))
    assert json.loads(down.stdout)["3"] == {"down": True}
    assert (
        "node(s) [3] do not answer and are still replicas"
        in airctl(stack, "verify", str(REGION), "--acked-log", str(log)).stderr
    )
    airctl(stack, "write", str(REGION), "--count", "100", "--acked-log", str(log))
    refused = airctl(stack, "node", "forget", "3", code=2)
    assert f"region(s) [{REGION}] still list node 3 as a replica: repair it first" in (
        refused.stderr
    )
    assert "3" in {str(n["id"]) for n in json.loads(stack.cluster_file.read_text())["nodes"]}

    repaired = airctl_json(stack, "repair", "--node", "3", "--wait")
    assert repaired["ok"] and [r["region"] for r in repaired["result"]["repaired"]] == [REGION]
    forgotten = airctl_json(stack, "node", "forget", "3")
    assert forgotten["nodes"] == [1, 2, 4]

    verified = airctl_json(stack, "verify", str(REGION), "--acked-log", str(log))
    assert verified["ok"] and sorted(verified["replicas"]) == ["1", "2", "4"], verified
    assert verified["acked"] == 200 and verified["down"] == []
    digest = airctl_json(stack, "digest", str(REGION))
    assert sorted(digest) == ["1", "2", "4"] and len({d["hash"] for d in digest.values()}) == 1
    wrote = airctl_json(stack, "write", str(REGION), "--count", "10", "--acks", "quorum")
    assert wrote["acked"] == 10
    assert airctl_json(stack, "load", str(REGION), "--seconds", "0.5", "--acked-log", str(log))
    assert sorted(airctl_json(stack, "regions")[str(REGION)]) == ["1", "2", "4"]
    plan = airctl_json(stack, "plan", "rebalance")
    assert [n["node"] for n in plan["nodes"]] == [1, 2, 4], plan  # node 3 no longer counts
    rebalanced = airctl_json(stack, "rebalance", "--wait")
    assert rebalanced["ok"] and rebalanced["result"]["failed"] == {}, rebalanced
