"""The Probe RPC: whether a node reaches another now, live, killed, frozen or under mutual TLS;
and airctl telling a node it cannot reach itself from one that is down."""

from __future__ import annotations

import argparse
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from airctl import data
from airctl.cli import parser
from airctl.context import Ctl
from protos import air_node_pb2 as pb
from runtime.clients import NodeClients, NodeStub
from runtime.cluster_file import ClusterFile, NodeEntry
from stack.certs import Authority
from stack.processes import free_port
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


class CutFrom(NodeClients):
    """airctl's node clients with its own link to one address cut: its calls there go to a
    port where nothing listens. The nodes' links are untouched."""

    def __init__(self, cut: str) -> None:
        super().__init__()
        self.cut = cut
        self.nowhere = f"127.0.0.1:{free_port()}"

    def stub(self, address: str) -> NodeStub:
        return super().stub(self.nowhere if address == self.cut else address)


class CutCtl(Ctl):
    def __init__(self, args: argparse.Namespace, clients: NodeClients) -> None:
        super().__init__(args)
        self._cut = clients

    @property
    def clients(self) -> NodeClients:
        return self._cut


async def test_airctl_shows_a_node_it_cannot_reach_but_a_live_node_reaches(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in (1, 2, 3):
        cluster.add_node(i)
    await cluster.create_region(7, [1, 2, 3])
    path = tmp_path / "cluster.json"
    nodes = sorted(cluster.nodes.items())
    ClusterFile(nodes=[NodeEntry(id=i, address=n.address) for i, n in nodes]).save(path)
    clients = CutFrom(cluster.nodes[3].address)

    async def regions(*args: str) -> str:
        ctl = CutCtl(parser().parse_args(["--cluster", str(path), "regions", *args]), clients)
        assert await data.cmd_regions(ctl) == 0
        return capsys.readouterr().out

    try:
        shown = await regions("--by-node")
        assert "node 3: unreachable from here (nodes 1, 2 reach it), no locality, 0 replicas" in (
            shown
        ), shown
        assert "node 1: up, no locality, 1 replicas" in shown, shown
        by_node = json.loads(await regions("--by-node", "--json"))
        assert by_node["3"] == {
            "down": False,
            "locality": [],
            "unreachable_from_here": True,
            "reached_by": [1, 2],
            "replicas": 0,
            "bytes": 0,
        }, by_node
        assert json.loads(await regions("--json"))["7"]["3"] == {
            "state": "unreachable",
            "locality": [],
        }

        cluster.nodes[3].kill()  # now no view reaches it: down
        cluster.nodes[3].wait_exit()
        by_node = json.loads(await regions("--by-node", "--json"))
        assert by_node["3"] == {"down": True, "locality": [], "replicas": 0, "bytes": 0}, by_node
        assert "node 3: down, no locality, 0 replicas" in await regions("--by-node")
    finally:
        await clients.close()
