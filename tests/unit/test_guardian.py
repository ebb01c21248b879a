"""The guardian repairs a replica whose channels drifted from its peer list, and leaves one in
order untouched (no lock, no write): that is what keeps an idle node of many regions cheap."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import node.guardian as guardian_module
from node.guardian import Guardian
from node.replica import ChannelState, PeerInfo, Replica, ReplicaMeta
from node.replicas import Replicas
from tests.support.fakes import FakeChannelTasks
from tests.support.waiting import eventually

PEERS = [PeerInfo(node_id=n, address=f"127.0.0.1:{n}") for n in (1, 2, 3)]


def held(tmp_path: Path, channels_to: list[int], leaving: bool = False) -> Replicas:
    replicas = Replicas(1, tmp_path, "normal")
    meta = ReplicaMeta(
        region=7,
        peers=PEERS,
        active=not leaving,
        leaving=leaving,
        channels={n: ChannelState(receiver=PEERS[n - 1]) for n in channels_to},
    )
    path = replicas.directory(7)
    path.mkdir()
    Replica(1, path, meta, "normal").persist()
    replicas.recover()
    return replicas


def on_disk(replicas: Replicas) -> ReplicaMeta:
    return ReplicaMeta.model_validate_json((replicas.directory(7) / Replica.META).read_bytes())


async def test_a_missing_channel_is_recreated_and_persisted(tmp_path: Path) -> None:
    replicas, tasks = held(tmp_path, [2]), FakeChannelTasks()
    await Guardian(1, replicas, tasks).check(7)  # type: ignore[arg-type]
    assert sorted(on_disk(replicas).channels) == [2, 3]
    assert tasks.synced == [7]


async def test_a_channel_to_a_non_peer_is_dropped(tmp_path: Path) -> None:
    replicas, tasks = held(tmp_path, [2, 3]), FakeChannelTasks()
    replicas.get(7).meta.peers = PEERS[:2]  # node 3 left the peer list, its channel stayed
    await Guardian(1, replicas, tasks).check(7)  # type: ignore[arg-type]
    assert sorted(on_disk(replicas).channels) == [2]


async def test_a_replica_in_order_is_left_untouched(tmp_path: Path) -> None:
    replicas, tasks = held(tmp_path, [2, 3]), FakeChannelTasks()
    before = (replicas.directory(7) / Replica.META).stat().st_mtime_ns
    await Guardian(1, replicas, tasks).check(7)  # type: ignore[arg-type]
    assert tasks.synced == []
    assert (replicas.directory(7) / Replica.META).stat().st_mtime_ns == before


async def test_a_stopped_task_is_restarted_without_rewriting_the_list(tmp_path: Path) -> None:
    replicas, tasks = held(tmp_path, [2, 3]), FakeChannelTasks(running=False)
    before = (replicas.directory(7) / Replica.META).stat().st_mtime_ns
    await Guardian(1, replicas, tasks).check(7)  # type: ignore[arg-type]
    assert tasks.synced == [7]
    assert (replicas.directory(7) / Replica.META).stat().st_mtime_ns == before


async def test_a_leaving_replica_gets_no_channel_back(tmp_path: Path) -> None:
    replicas, tasks = held(tmp_path, [2], leaving=True), FakeChannelTasks()
    await Guardian(1, replicas, tasks).check(7)  # type: ignore[arg-type]
    assert sorted(on_disk(replicas).channels) == [2]  # the drained channel to 3 stays gone
    assert tasks.synced == []


async def passes(guardian: Guardian, tasks: FakeChannelTasks, looks: int) -> None:
    """Let the guardian's own loop run until it has looked at the replica `looks` times."""
    running = asyncio.create_task(guardian.run(interval=0.01))
    try:
        await eventually(lambda: asyncio.sleep(0, tasks.matched), lambda n: n >= looks)
    finally:
        running.cancel()


async def test_a_pass_repairs_a_drifted_replica_and_leaves_one_in_order(tmp_path: Path) -> None:
    """The pass's quick look (no await, no lock) lets through what `check` would repair."""
    (tmp_path / "drifted").mkdir()
    drifted, tasks = held(tmp_path / "drifted", [2]), FakeChannelTasks()
    await passes(Guardian(1, drifted, tasks), tasks, looks=3)  # type: ignore[arg-type]
    assert sorted(on_disk(drifted).channels) == [2, 3]
    assert 7 in tasks.synced

    (tmp_path / "in_order").mkdir()
    in_order, tasks = held(tmp_path / "in_order", [2, 3]), FakeChannelTasks()
    before = (in_order.directory(7) / Replica.META).stat().st_mtime_ns
    await passes(Guardian(1, in_order, tasks), tasks, looks=3)  # type: ignore[arg-type]
    assert tasks.synced == []
    assert (in_order.directory(7) / Replica.META).stat().st_mtime_ns == before


class Hints:
    def __init__(self) -> None:
        self.suspected: list[int] = []

    def removed(self, region: int, by: PeerInfo) -> None:
        raise AssertionError("the guardian states no removal")

    def suspect(self, region: int) -> None:
        self.suspected.append(region)


async def test_a_drained_leaving_replica_left_behind_asks_its_peers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A leaving replica whose channels all drained is deleted by its removal at once; one
    still here after LINGER_S was skipped by it, and asks whether it was removed."""
    replicas, tasks, hints = held(tmp_path, [2, 3], leaving=True), FakeChannelTasks(), Hints()
    guardian = Guardian(1, replicas, tasks, hints)  # type: ignore[arg-type]
    await guardian.check(7)
    assert hints.suspected == []  # its channels still drain
    for channel in replicas.get(7).meta.channels.values():
        channel.status = "STOPPED"
    monkeypatch.setattr(guardian_module, "LINGER_S", 3600.0)
    await guardian.check(7)
    assert hints.suspected == []  # drained a moment ago: its removal deletes it
    monkeypatch.setattr(guardian_module, "LINGER_S", 0.0)
    await guardian.check(7)
    assert hints.suspected == [7]
