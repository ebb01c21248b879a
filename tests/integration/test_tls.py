"""Mutual TLS on the node gRPC port: who is admitted, who is refused, and what the node says."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest

from protos import air_node_pb2 as pb
from protos import air_node_pb2_grpc as rpc
from runtime.identity import node_name
from stack.certs import CLIENT_NAME, Authority, Pair
from stack.processes import NodeProcess
from tests.support.cluster import Cluster, status_of
from tests.support.streams import batch, hello, transfer
from tests.support.waiting import eventually

REGION = 3
Connect = Callable[[Cluster, str], grpc.aio.Channel]


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path, authority=Authority.create())
    try:
        yield c
    finally:
        await c.close()


async def test_nodes_and_clients_replicate_over_mutual_tls(secured: Cluster) -> None:
    secured.add_node(1)
    secured.add_node(2)
    await secured.create_region(REGION, [1, 2])
    points = [pb.Point(series="t", timestamp=t) for t in range(10)]
    await secured.stub(1).Write(pb.WriteRequest(region=REGION, points=points))
    # node 1's channel to node 2 is itself an mTLS client that node 2 admitted
    await secured.converged(REGION, [1, 2], count=10)
    assert "mutual TLS only" in secured.nodes[2].output()


def _plaintext(cluster: Cluster, address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(address)


def _presenting(cluster: Cluster, address: str, pair: Pair | None) -> grpc.aio.Channel:
    """A TLS client that trusts the node's CA and presents `pair` (or no certificate)."""
    assert cluster.authority is not None
    credentials = grpc.ssl_channel_credentials(
        root_certificates=cluster.authority.pem,
        private_key=pair.key if pair else None,
        certificate_chain=pair.cert if pair else None,
    )
    return grpc.aio.secure_channel(address, credentials)


def _foreign(cluster: Cluster, address: str) -> grpc.aio.Channel:
    return _presenting(cluster, address, Authority.create("another CA").issue("client"))


def _expired(cluster: Cluster, address: str) -> grpc.aio.Channel:
    assert cluster.authority is not None
    return _presenting(cluster, address, cluster.authority.issue("client", expired=True))


def _anonymous(cluster: Cluster, address: str) -> grpc.aio.Channel:
    return _presenting(cluster, address, None)


REFUSED: dict[str, tuple[Connect, str]] = {
    "plaintext client": (_plaintext, "the peer spoke plaintext, not TLS"),
    "certificate from another CA": (_foreign, "the peer's certificate is not signed by"),
    "expired certificate": (_expired, "the peer's certificate has expired"),
    "no client certificate": (_anonymous, "the peer presented no certificate"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_a_client_without_a_good_certificate_is_refused(secured: Cluster, case: str) -> None:
    connect, meaning = REFUSED[case]
    node = secured.add_node(1)
    await secured.create_region(REGION, [1])
    await secured.stub(1).Write(pb.WriteRequest(region=REGION, points=[pb.Point(series="a")]))
    before = await secured.state(1, REGION)

    channel = connect(secured, node.address)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            intruder = pb.WriteRequest(region=REGION, points=[pb.Point(series="intruder")])
            await rpc.AirNodeStub(channel).Write(intruder, timeout=10)
    finally:
        await channel.close(grace=None)
    assert status_of(refused.value) == grpc.StatusCode.UNAVAILABLE

    async def log() -> str:
        return node.output()

    line = f"airnode.tls: refused a TLS connection: {meaning}"
    await eventually(log, lambda out: line in out, what=f"{line!r} in the node's log")
    assert node.alive()
    assert await secured.state(1, REGION) == before  # and a good client is still served


async def test_only_a_nodes_own_certificate_may_send_as_that_node(secured: Cluster) -> None:
    assert secured.authority is not None
    node = secured.add_node(1)
    secured.add_node(2, start=False)  # a peer of the region: only its certificate is missing
    peers = secured.peers([1, 2])
    await secured.stub(1).CreateLocalPeer(
        pb.CreateLocalPeerRequest(region=REGION, peers=peers, active=True)
    )
    await secured.stub(1).Write(pb.WriteRequest(region=REGION, points=[pb.Point(series="a")]))
    before = await secured.state(1, REGION)
    snapshot = pb.SnapshotChunk(region=REGION, sender=2, data=b"forged", last=True, sha256="0")

    for cn in [CLIENT_NAME, node_name(3)]:  # airctl's and the worker's, another node's
        channel = _presenting(secured, node.address, secured.authority.issue(cn))
        stub = rpc.AirNodeStub(channel)
        try:
            with pytest.raises(grpc.aio.AioRpcError) as refused_transfer:
                await transfer(stub, hello(2, REGION))  # refused at hello: no write races it
            with pytest.raises(grpc.aio.AioRpcError) as refused_snapshot:
                await stub.InstallSnapshot(iter([snapshot]))
        finally:
            await channel.close(grace=None)
        for what, refused in [("transfer", refused_transfer), ("snapshot", refused_snapshot)]:
            assert status_of(refused.value) == grpc.StatusCode.PERMISSION_DENIED, (cn, what)
            message = f"a {what} as node 2 needs node 2's certificate (CN node2); the caller's"
            assert f"{message} has CN {cn}" == refused.value.details(), (cn, what)
    assert node.alive()
    assert await secured.state(1, REGION) == before
    assert "WARNING node.identity: refused: a transfer as node 2" in node.output()

    channel = _presenting(secured, node.address, secured.authority.issue(node_name(2)))
    try:
        await transfer(rpc.AirNodeStub(channel), hello(2, REGION), batch(0, 1, [1]))
    finally:
        await channel.close(grace=None)
    assert (await secured.digest(1, REGION)).count == 2  # node 2's point, applied


async def test_a_verbosity_that_hides_refused_handshakes_is_warned_of(secured: Cluster) -> None:
    warning = "refused TLS connections will not be logged"
    hiding = secured.add_node(1, env={"GRPC_VERBOSITY": "error"})
    showing = secured.add_node(2, env={"GRPC_VERBOSITY": "INFO"})
    assert f"GRPC_VERBOSITY=error hides gRPC's handshake errors: {warning}" in hiding.output()
    assert warning not in showing.output()


def _airnode(tmp_path: Path, *tls: str) -> subprocess.CompletedProcess[str]:
    command = NodeProcess(1, tmp_path / "node1").command()
    return subprocess.run([*command, *tls], capture_output=True, text=True, timeout=60, check=False)


def test_bad_tls_flags_are_one_clear_line(tmp_path: Path) -> None:
    files = Authority.create().write(tmp_path / "tls", "node1")
    cases = {
        "cert and key without a CA": (
            ["--tls-cert", str(files.cert), "--tls-key", str(files.key)],
            "TLS needs a CA, a cert and a key together",
        ),
        "missing key": (
            ["--tls-ca", str(files.ca), "--tls-cert", str(files.cert), "--tls-key", "nope.key"],
            "cannot read the TLS key nope.key: No such file or directory",
        ),
        "key of another cert": (
            ["--tls-ca", str(files.ca), "--tls-cert", str(files.ca), "--tls-key", str(files.key)],
            "does not belong to the cert",
        ),
    }
    for case, (flags, message) in cases.items():
        done = _airnode(tmp_path, *flags)
        assert done.returncode != 0, case
        assert message in done.stderr and "Traceback" not in done.stderr, (case, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, (case, done.stderr)
