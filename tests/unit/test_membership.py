"""Dropping a channel, plain or writing its receiver off: idempotent, and what each allows;
creating a replica where one is held or leaving."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from node.disk import Disk
from node.errors import NodeError
from node.membership import Membership
from node.replica import PeerInfo, Replica
from node.replicas import Replicas
from runtime.killswitch import KillPoints
from tests.support.fakes import FakeChannelTasks

PEERS = [PeerInfo(node_id=n, address=f"127.0.0.1:{n}") for n in (1, 2, 3)]
OTHER_PEERS = [*PEERS[:2], PeerInfo(node_id=4, address="127.0.0.1:4")]  # 3 replaced by 4


async def membership(tmp_path: Path, disk: Disk | None = None) -> Membership:
    replicas = Replicas(1, tmp_path, "normal")
    tasks = FakeChannelTasks()
    killpoints = KillPoints(set(), tmp_path)
    m = Membership(1, PEERS[0].address, replicas, tasks, killpoints, disk or Disk(tmp_path))  # type: ignore[arg-type]
    await m.create_local_peer(7, PEERS, active=True, await_snapshot=False)
    return m


def replica(m: Membership) -> Replica:
    return m.replicas.get(7)


async def test_a_plain_drop_lets_the_former_peer_drain_here(tmp_path: Path) -> None:
    m = await membership(tmp_path)
    assert (await m.drop_channel(7, 3)).changed
    assert not (await m.drop_channel(7, 3)).changed  # again: nothing to do
    meta = replica(m).meta
    assert (sorted(meta.channels), meta.departed, meta.written_off) == ([2], [3], [])
    await replica(m).close()


async def test_a_write_off_refuses_what_it_never_replicated(tmp_path: Path) -> None:
    m = await membership(tmp_path)
    await m.drop_channel(7, 3)  # the removal's first step, before it knew node 3 was down
    assert (await m.drop_channel(7, 3, write_off=True)).changed
    assert not (await m.drop_channel(7, 3, write_off=True)).changed  # a retry
    assert not (await m.drop_channel(7, 3)).changed  # a plain drop does not undo it
    meta = replica(m).meta
    assert (meta.departed, meta.written_off) == ([], [3])
    await m.create_channel(7, PEERS[2], snapshot=True)  # added back later: a peer again
    assert replica(m).meta.written_off == []
    await replica(m).close()


async def test_a_disk_past_its_flood_watermark_takes_no_new_replica(tmp_path: Path) -> None:
    m = await membership(tmp_path, Disk(tmp_path, capacity=1))  # region 7 alone fills it
    with pytest.raises(NodeError) as refused:
        await m.create_local_peer(8, PEERS, active=False, await_snapshot=True)
    assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "past its flood watermark (95%): it takes no new replica" in refused.value.message
    assert m.replicas.find(8) is None
    again = await m.create_local_peer(7, PEERS, active=True, await_snapshot=False)
    assert not again.changed  # what it holds, it keeps


async def test_a_replica_held_with_other_peers_is_refused_for_good(tmp_path: Path) -> None:
    m = await membership(tmp_path)
    with pytest.raises(NodeError) as refused:
        await m.create_local_peer(7, OTHER_PEERS, active=False, await_snapshot=True)
    assert refused.value.code == grpc.StatusCode.ALREADY_EXISTS
    assert "already exists on node 1 with peers" in refused.value.message
    await replica(m).close()


@pytest.mark.parametrize("same_peers", [True, False])
async def test_a_leaving_replica_tells_a_creation_to_retry(
    tmp_path: Path, same_peers: bool
) -> None:
    """Whatever its peers: it is gone soon, and then the creation makes the replica anew."""
    m = await membership(tmp_path)
    replica(m).meta.leaving = True
    replica(m).persist()
    peers = PEERS if same_peers else OTHER_PEERS
    with pytest.raises(NodeError) as refused:
        await m.create_local_peer(7, peers, active=False, await_snapshot=True)
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE
    assert "is leaving" in refused.value.message
    assert replica(m).meta.peers == PEERS  # nothing changed
    await replica(m).close()
