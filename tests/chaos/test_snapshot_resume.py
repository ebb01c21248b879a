"""A snapshot interrupted half way resumes there: the receiver SIGKILLed, the connection
between the nodes cut (a proxy SIGKILLed), the sender SIGKILLed. Each time the new replica is
whole, every acknowledged write is on it, and far less than a second copy was sent."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from client.load import LoadWriter as Writer
from protos import air_node_pb2 as pb
from tests.support.chaos import restart
from tests.support.cluster import Cluster
from tests.support.load import LoadWriter, missing_points
from tests.support.tcp_proxy import ProxyProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow
REGION = 44
PRELOAD = 400_000  # points: a store of about 17 MB
RATE = 3_000_000  # bytes/s the sender sends at until the kill: half way takes seconds
SENDER, RECEIVER = 1, 2


@pytest.fixture
async def proxy(cluster: Cluster) -> AsyncIterator[ProxyProcess]:
    """Node 2 reached through a proxy of its own process."""
    receiver = cluster.add_node(RECEIVER)
    proxy = ProxyProcess(receiver.address, cluster.root / "proxy.log")
    await restart(proxy)
    try:
        yield proxy
    finally:
        proxy.kill()


async def receiving_half_way(cluster: Cluster, receiver_address: str) -> tuple[int, Writer]:
    """Node 1's region, preloaded and under load, half sent as a snapshot to a new replica on
    node 2 (at `receiver_address`), still sending at RATE; returns the store's size."""
    cluster.add_node(SENDER)
    if RECEIVER not in cluster.nodes:
        cluster.add_node(RECEIVER)
    await cluster.create_region(REGION, [SENDER])
    await LoadWriter(cluster, REGION, [SENDER], series="bulk", batch=20_000).run(count=PRELOAD)
    load = LoadWriter(cluster, REGION, [SENDER]).start(rate=200)
    await load.wait_acked(100)
    store = (await cluster.regions_of(SENDER))[REGION].store_bytes
    await cluster.throttle([SENDER], RATE)
    await cluster.stub(RECEIVER).CreateLocalPeer(
        pb.CreateLocalPeerRequest(
            region=REGION,
            peers=cluster.peers([SENDER, RECEIVER]),
            active=False,
            await_snapshot=True,
        )
    )
    receiver = pb.Peer(node_id=RECEIVER, address=receiver_address)  # maybe through a proxy
    await cluster.stub(SENDER).CreateChannel(
        pb.CreateChannelRequest(region=REGION, receiver=receiver, snapshot=True)
    )
    await eventually(
        lambda: cluster.progress(RECEIVER, REGION),
        lambda p: p.snapshot_received >= store // 2,
        timeout=60,
        what="half the snapshot received",
    )
    at_kill = await cluster.progress(RECEIVER, REGION)
    assert not at_kill.installed and at_kill.snapshot_received < store, "not mid-transfer"
    return store, load


async def sent_so_far(cluster: Cluster) -> pb.ChannelProgress:
    channels = (await cluster.progress(SENDER, REGION)).channels
    return next(c for c in channels if c.receiver.node_id == RECEIVER)


async def whole_and_resumed(cluster: Cluster, store: int, load: Writer, sent_before: int) -> None:
    """Node 2 installs and catches up; what was sent in all is well under two copies, and
    the resumed snapshot skipped what node 2 held."""
    await eventually(
        lambda: cluster.progress(RECEIVER, REGION),
        lambda p: p.installed,
        timeout=60,
        what="the new replica installed",
    )
    acked = await load.stop()
    await cluster.converged(REGION, [SENDER, RECEIVER], count=PRELOAD + len(acked), timeout=60)
    for node in (SENDER, RECEIVER):
        assert await missing_points(cluster, node, REGION, acked) == [], node
    channel = await sent_so_far(cluster)
    total = sent_before + channel.snapshot_bytes_sent
    assert total <= 1.5 * store, f"{total} bytes sent for a store of {store}: not resumed"
    assert channel.snapshot_bytes_skipped >= 0.3 * store, channel


async def test_the_receiver_killed_half_way_resumes_there(cluster: Cluster) -> None:
    store, load = await receiving_half_way(cluster, cluster.add_node(RECEIVER).address)
    cluster.nodes[RECEIVER].kill()
    await restart(cluster.nodes[RECEIVER])
    await cluster.throttle([SENDER], 0)
    await whole_and_resumed(cluster, store, load, sent_before=0)


async def test_the_connection_cut_half_way_resumes_there(
    cluster: Cluster, proxy: ProxyProcess
) -> None:
    store, load = await receiving_half_way(cluster, proxy.address)
    proxy.kill()
    await restart(proxy)
    await cluster.throttle([SENDER], 0)
    await whole_and_resumed(cluster, store, load, sent_before=0)


async def test_the_sender_killed_half_way_resends_only_what_changed(cluster: Cluster) -> None:
    store, load = await receiving_half_way(cluster, cluster.add_node(RECEIVER).address)
    sent_before = (await sent_so_far(cluster)).snapshot_bytes_sent
    cluster.nodes[SENDER].kill()
    await restart(cluster.nodes[SENDER])  # a throttle set at run time is not kept: lifted
    await whole_and_resumed(cluster, store, load, sent_before)
