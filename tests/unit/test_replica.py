"""A leaving replica's own writes are final only once those it accepted have committed; an idle
replica rests (no descriptor, no thread) and wakes on its next write."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from node.replica import PeerInfo, Replica, ReplicaMeta
from node.store import Store
from tests.support.waiting import eventually


async def test_a_leaving_replica_is_done_writing_once_its_accepted_writes_commit(
    tmp_path: Path,
) -> None:
    me = PeerInfo(node_id=1, address="127.0.0.1:1")
    replica = Replica(1, tmp_path, ReplicaMeta(region=7, peers=[me], active=True), "normal")
    replica.store = Store(tmp_path / Store.FILE, "normal")
    # the replica's one writer thread is busy: the write below is accepted, not committed
    release = threading.Event()
    busy = asyncio.ensure_future(replica._run(release.wait))
    await asyncio.sleep(0)
    write = asyncio.ensure_future(replica.write([("s", 1, 1.0)]))
    await asyncio.sleep(0)  # one turn of the loop: the write is queued behind the busy thread

    replica.meta.leaving = True  # as SetActive(for_deletion) sets it
    assert not replica.done_writing()  # a channel finding nothing new must not stop yet
    release.set()
    assert await write == 1
    await busy
    assert replica.done_writing() and replica.max_assigned() == 1
    await replica.close()


async def test_an_idle_replica_rests_holding_no_descriptor_nor_thread_and_wakes_on_a_write(
    tmp_path: Path,
) -> None:
    me = PeerInfo(node_id=1, address="127.0.0.1:1")
    replica = Replica(1, tmp_path, ReplicaMeta(region=7, peers=[me], active=True), "normal")
    replica.store = Store(tmp_path / Store.FILE, "normal")
    opened = len(os.listdir("/proc/self/fd"))
    assert replica.store.resting and not await replica.rest()  # made resting: nothing to do
    assert await replica.write([("s", 1, 1.0)]) == 1
    assert not replica.store.resting and len(os.listdir("/proc/self/fd")) > opened
    threads = threading.active_count()

    assert await replica.rest()
    assert replica.store.resting and len(os.listdir("/proc/self/fd")) == opened
    await eventually(  # a thread ends a moment after its executor is shut down, not waited for
        lambda: asyncio.sleep(0, threading.active_count()),
        lambda count: count < threads,
        what="the writer's thread to end",
    )
    assert await replica.write([("s", 2, 2.0)]) == 2  # opened again, on a new thread
    assert replica.store.query(lambda c: c.execute("SELECT count(*) FROM points").fetchone()) == (
        2,
    )
    await replica.close()


async def test_a_replica_does_not_rest_while_a_write_is_on_its_way(tmp_path: Path) -> None:
    me = PeerInfo(node_id=1, address="127.0.0.1:1")
    replica = Replica(1, tmp_path, ReplicaMeta(region=7, peers=[me], active=True), "normal")
    replica.store = Store(tmp_path / Store.FILE, "normal")
    release = threading.Event()
    busy = asyncio.ensure_future(replica._run(release.wait))
    await asyncio.sleep(0)
    write = asyncio.ensure_future(replica.write([("s", 1, 1.0)]))
    await asyncio.sleep(0)
    assert not await replica.rest()
    release.set()
    await busy
    assert await write == 1
    await replica.close()
