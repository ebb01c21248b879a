"""The Probe RPC: whether a node reaches another now, live, killed, frozen or under mutual TLS."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from protos import air_node_pb2 as pb
from stack.certs import Authority
from tests.support.cluster import Cluster
from tests.support.waiting import eventually

# Generous: a refused connection must not wait it out, and a frozen node must not outlast it.
PATIENT_S = 20.0


async def probe(cluster: Cluster, prober: int, target: int, timeout_s: float) -> pb.ProbeReply:
    request = pb.ProbeRequest(target=cluster.peer(target), timeout_s=timeout_s)
    reply: pb.ProbeReply = await cluster.stub(prober).Probe(request, timeout=timeout_s + 5)
    return reply


async def test_a_node_reaches_a_live_node_not_a_killed_one_nor_a_frozen_one(
    cluster: Cluster,
) -> None:
    for i in (1, 2, 3):
        cluster.add_node(i)

    live = await probe(cluster, 1, 2, PATIENT_S)
    assert live.reached and live.detail == "", live
    assert 0 < live.seconds < PATIENT_S, live

    cluster.nodes[3].kill()
    cluster.nodes[3].wait_exit()
    killed = await probe(cluster, 1, 3, PATIENT_S)
    # refused at once: the probe did not wait out its timeout for a node that is not there
    assert not killed.reached and killed.detail.startswith("UNAVAILABLE"), killed
    assert killed.seconds < PATIENT_S, killed

    frozen_node = cluster.nodes[2]
    frozen_node.send_signal(signal.SIGSTOP)
    try:
        # its port still accepts connections, nothing answers: the probe gives up at its
        # timeout and says so, within the caller's own deadline
        frozen = await probe(cluster, 1, 2, 1.0)
        assert not frozen.reached and frozen.detail.startswith("DEADLINE_EXCEEDED"), frozen
    finally:
        frozen_node.send_signal(signal.SIGCONT)
    back = await eventually(
        lambda: probe(cluster, 1, 2, PATIENT_S),
        lambda r: r.reached,
        what="node 1 to reach node 2 once it is thawed",
    )
    assert back.detail == "", back


async def test_a_node_that_answers_as_another_is_not_reached(cluster: Cluster) -> None:
    cluster.add_node(1)
    cluster.add_node(2)
    posing = pb.Peer(node_id=3, address=cluster.nodes[2].address)  # node 2 is there, not 3
    request = pb.ProbeRequest(target=posing, timeout_s=PATIENT_S)
    reply = await cluster.stub(1).Probe(request, timeout=PATIENT_S + 5)
    assert not reply.reached and reply.detail == "node 2 answers there, not node 3", reply


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path, authority=Authority.create())
    try:
        yield c
    finally:
        await c.close()


async def test_a_probe_goes_over_mutual_tls_with_the_nodes_own_certificate(
    secured: Cluster,
) -> None:
    secured.add_node(1)
    secured.add_node(2)
    reply = await probe(secured, 1, 2, PATIENT_S)
    assert reply.reached, reply
