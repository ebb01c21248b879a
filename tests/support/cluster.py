"""A cluster of real `airnode` processes on loopback ports (or each on a test host of its own),
and what tests ask of it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from protos import air_node_pb2 as pb
from runtime.clients import RPC_TIMEOUT_S, NodeClients, NodeStub
from runtime.identity import node_name
from runtime.tls import TlsFiles
from stack.certs import CLIENT_NAME, Authority
from stack.hosts import Network
from stack.processes import NodeProcess
from tests.support.waiting import eventually

# A throttle that holds a transfer where it is until it is lifted: 1 byte/s.
HELD = 1


# A probe of a node the test restarted waits for its channel to connect again (gRPC fails a
# call at once while the channel is still backing off from the refusals of its downtime: seen
# in CI, right after a restarted destination was already serving) rather than failing at once.
WAIT_FOR_CHANNEL: dict[str, Any] = {"wait_for_ready": True, "timeout": RPC_TIMEOUT_S}


class Cluster:
    """With `authority`, nodes serve mutual TLS with certificates it issues, as do the clients.
    With `network` (made), node N runs on its host `nN`, at that host's address."""

    def __init__(
        self,
        root: Path,
        guardian_interval: float = 1.0,
        authority: Authority | None = None,
        network: Network | None = None,
    ) -> None:
        self.root = root
        self.guardian_interval = guardian_interval
        self.authority = authority
        self.network = network
        self.nodes: dict[int, NodeProcess] = {}
        self.localities: dict[int, list[str]] = {}  # node -> its --locality tiers
        # node -> the pid of its process `throttle` held: a restarted node forgets its throttle
        self._held: dict[int, int | None] = {}
        self.clients = NodeClients(self.certificate(CLIENT_NAME))

    def certificate(self, name: str, ips: Sequence[str] = ()) -> TlsFiles | None:
        """Issue a certificate for `name` (naming `ips` too) under `root/tls`, if this cluster
        has an authority."""
        if self.authority is None:
            return None
        return self.authority.write(self.root / "tls", name, ips=ips)

    def add_node(
        self,
        node_id: int,
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
        *,
        start: bool = True,
        locality: list[str] | None = None,
    ) -> NodeProcess:
        """A node process on a free port (or on its test host), standing at `locality` (its
        --locality, and the cluster file's); with `start=False`, only its address is
        reserved."""
        host = self.network.node(node_id) if self.network is not None else None
        where = ["--locality", ",".join(locality)] if locality else []
        self.localities[node_id] = list(locality or [])
        node = NodeProcess(
            node_id,
            self.root / f"node{node_id}",
            env=env,
            extra_args=[
                "--guardian-interval",
                str(self.guardian_interval),
                *where,
                *(extra_args or []),
            ],
            tls=self.certificate(node_name(node_id), [host.address] if host else []),
            host=host,
        )
        self.nodes[node_id] = node
        return node.start() if start else node

    def stub(self, node_id: int) -> NodeStub:
        return self.clients.stub(self.nodes[node_id].address)

    def peer(self, node_id: int) -> pb.Peer:
        return pb.Peer(node_id=node_id, address=self.nodes[node_id].address)

    def peers(self, ids: list[int]) -> list[pb.Peer]:
        return [self.peer(i) for i in ids]

    def region_dir(self, node_id: int, region: int) -> Path:
        return self.nodes[node_id].data_dir / f"region_{region}"

    async def create_region(self, region: int, ids: list[int]) -> None:
        for i in ids:
            await self.stub(i).CreateLocalPeer(
                pb.CreateLocalPeerRequest(region=region, peers=self.peers(ids), active=True)
            )

    async def throttle(self, ids: list[int], bytes_per_s: float) -> None:
        """Limit what the nodes send (0 lifts it; `HELD` holds their transfers)."""
        for i in ids:
            request = pb.ThrottleRequest(bytes_per_s=bytes_per_s)
            await self.stub(i).SetThrottle(request, **WAIT_FOR_CHANNEL)  # thawed, restarted
            if bytes_per_s == HELD:
                self._held[i] = self._pid(i)
            else:
                self._held.pop(i, None)

    def holds(self, node_id: int) -> bool:
        """Whether `throttle` holds the node's transfers: held, and not restarted since."""
        return node_id in self._held and self._held[node_id] == self._pid(node_id)

    def _pid(self, node_id: int) -> int | None:
        proc = self.nodes[node_id].proc
        return None if proc is None else proc.pid

    async def digest(self, node_id: int, region: int) -> pb.DigestReply:
        reply: pb.DigestReply = await self.stub(node_id).Digest(pb.RegionRequest(region=region))
        return reply

    async def progress(self, node_id: int, region: int) -> pb.Progress:
        request = pb.RegionRequest(region=region)
        reply: pb.Progress = await self.stub(node_id).GetProgress(request, **WAIT_FOR_CHANNEL)
        return reply

    async def converged(self, region: int, ids: list[int], count: int, timeout: float = 60) -> str:
        """Wait until every replica holds exactly `count` points with one hash; return it."""

        async def probe() -> list[tuple[int, str]]:
            return [(d.count, d.hash) for d in [await self.digest(i, region) for i in ids]]

        def same(ds: list[tuple[int, str]]) -> bool:
            return len(set(ds)) == 1 and ds[0][0] == count

        digests = await eventually(probe, same, timeout=timeout, what=f"region {region} converged")
        return digests[0][1]

    async def regions_of(self, node_id: int) -> dict[int, pb.RegionInfo]:
        reply = await self.stub(node_id).ListRegions(pb.ListRegionsRequest(), **WAIT_FOR_CHANNEL)
        return {r.region: r for r in reply.regions}

    async def gone(self, node_id: int, region: int, what: str, timeout: float = 30) -> None:
        """Wait until node `node_id` no longer holds `region` (retired or deleted)."""
        await eventually(
            lambda: self.regions_of(node_id),
            lambda held: region not in held,
            timeout=timeout,
            what=what,
        )

    async def state(self, node_id: int, region: int) -> tuple[object, ...]:
        """What a refused request must not change: the node's regions, files and a digest."""
        regions = await self.regions_of(node_id)
        files = sorted(str(p.relative_to(self.root)) for p in self.root.rglob("region_*"))
        digest = await self.digest(node_id, region)
        return (sorted(r.SerializeToString() for r in regions.values()), files, digest.hash)

    async def close(self) -> None:
        for node in self.nodes.values():
            node.kill()
        await self.clients.close()


def status_of(error: BaseException) -> grpc.StatusCode:
    assert isinstance(error, grpc.aio.AioRpcError), error
    code: grpc.StatusCode = error.code()
    return code
