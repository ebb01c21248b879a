"""Faults against real processes on test hosts: nodes, the worker, Temporal behind its relay."""

from __future__ import annotations

import sys
from pathlib import Path

import grpc
import pytest

from client import connection
from contracts.models import MigrationInput, MigrationResult
from protos import air_node_pb2 as pb
from stack.certs import Authority
from stack.faults import Cut, Faults, Isolate
from stack.hosts import Network
from stack.processes import TemporalServer
from tests.support.cluster import Cluster, status_of
from tests.support.hosts import answers, attempt, h2_open, h2_ping, run_on
from tests.support.load import LoadWriter, missing_points
from tests.support.stack import Stack
from workflows.migration import RegionMigrationWorkflow

pytestmark = pytest.mark.slow


async def test_an_isolated_node_answers_the_client_and_operator_hosts_only(
    cluster: Cluster, network: Network
) -> None:
    node = cluster.add_node(3)
    address = network.node(3).address
    faults = Faults(network)
    assert answers(network.node(1), address, node.port)

    faults.apply(Isolate("n3"))
    assert await cluster.regions_of(3) == {}  # gRPC from the operator host, as airctl's
    assert answers(None, address, node.port)
    assert answers(network.client, address, node.port)
    for other in (network.node(1), network.worker):
        assert isinstance(attempt(other, address, node.port), TimeoutError), other.name

    healed = faults.heal("isolate")
    assert [a.description for a in healed] == ["isolate n3"]
    assert answers(network.node(1), address, node.port)


async def test_a_frozen_node_is_silent_until_thawed(cluster: Cluster, network: Network) -> None:
    node = cluster.add_node(2)
    address = network.node(2).address
    faults = Faults(network)

    faults.freeze("n2")
    assert [a.id for a in faults.active()] == ["freeze-n2"]
    assert node.proc is not None and node.alive()  # stopped, not dead
    # the kernel still completes the handshake; the node itself says nothing
    assert not answers(network.client, address, node.port, timeout=1)
    with pytest.raises(grpc.aio.AioRpcError) as silent:
        await cluster.stub(2).ListRegions(pb.ListRegionsRequest(), timeout=1)
    assert status_of(silent.value) == grpc.StatusCode.DEADLINE_EXCEEDED

    faults.heal("freeze")
    assert faults.active() == []
    assert answers(network.client, address, node.port)


async def test_cut_worker_temporal_silences_the_workers_relay_not_airctl(
    network: Network, temporal_server: TemporalServer
) -> None:
    relay = network.relay_temporal(temporal_server.address)
    host, port = relay.rsplit(":", 1)
    opened = h2_open(network.worker, host, int(port))  # the worker's connection, via the relay
    assert h2_ping(opened)
    faults = Faults(network)

    faults.apply(Cut("worker", "temporal"))
    assert not h2_ping(opened)  # an open connection hears nothing more
    assert isinstance(attempt(network.worker, host, int(port)), TimeoutError)
    assert answers(network.client, host, int(port))  # the cut is the worker's alone
    # airctl, on the operator host, reaches the server directly
    client = await connection.connect(connection.local(temporal_server.address))
    assert await client.service_client.check_health()

    faults.heal()
    assert answers(network.worker, host, int(port))
    opened.close()


async def test_nodes_serve_tls_at_their_host_addresses(tmp_path: Path, network: Network) -> None:
    cluster = Cluster(tmp_path, authority=Authority.create(), network=network)
    try:
        cluster.add_node(1)
        assert cluster.nodes[1].address.startswith(network.node(1).address + ":")
        assert await cluster.regions_of(1) == {}  # the certificate names the host's address
    finally:
        await cluster.close()


async def test_a_migration_with_every_node_and_the_worker_on_hosts_of_their_own(
    stack: Stack, network: Network
) -> None:
    region = 31
    cluster = await stack.four_nodes(region)
    assert stack.workers["worker"].host == network.worker
    load = LoadWriter(cluster, region, [1, 2, 3, 4]).start()
    await load.wait_acked(100)

    handle = await stack.start(
        RegionMigrationWorkflow.run, MigrationInput(region=region, from_node=1, to_node=4)
    )
    result = await handle.result()
    assert isinstance(result, MigrationResult) and result.remove is not None, result
    acked = await load.stop()
    await cluster.converged(region, [2, 3, 4], count=len(acked))
    for i in (2, 3, 4):
        assert await missing_points(cluster, i, region, acked) == []

    # the client host writes through a node the worker cannot reach
    Faults(network).apply(Cut("worker", "n2"))
    status, output = await run_on(
        network.client,
        [sys.executable, "-m", "airctl", "--cluster", str(stack.cluster_file),
         "write", str(region), "--count", "50", "--via", "2"],
    )  # fmt: skip
    assert status == 0, output
    await cluster.converged(region, [2, 3, 4], count=len(acked) + 50)
