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


def one_replica(tmp_path: Path) -> Replica:
    """An active replica of region 7 on node 1, alone, with its store."""
    me = PeerInfo(node_id=1, address="127.0.0.1:1")
    replica = Replica(1, tmp_path, ReplicaMeta(region=7, peers=[me], active=True), "normal")
    replica.store = Store(tmp_path / Store.FILE, "normal")
    return replica


async def write_behind_a_busy_writer(
    replica: Replica,
) -> tuple[threading.Event, asyncio.Task[bool], asyncio.Task[int]]:
    """A write accepted, not committed: the replica's one writer thread is busy until the
    event is set. Each `sleep(0)` is one turn of the loop, enough for the task before it to
    reach the writer's queue (no thread runs in between that it waits for)."""
    release = threading.Event()
    busy = asyncio.ensure_future(replica._run(release.wait))
    await asyncio.sleep(0)
    write = asyncio.ensure_future(replica.write([("s", 1, 1.0)]))
    await asyncio.sleep(0)
    return release, busy, write


async def test_a_leaving_replica_is_done_writing_once_its_accepted_writes_commit(
    tmp_path: Path,
) -> None:
    replica = one_replica(tmp_path)
    release, busy, write = await write_behind_a_busy_writer(replica)

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
    replica = one_replica(tmp_path)
    store = replica.store
    assert store is not None
    opened = len(os.listdir("/proc/self/fd"))
    assert store.resting and not await replica.rest()  # made resting: nothing to do
    assert await replica.write([("s", 1, 1.0)]) == 1
    assert not store.resting and len(os.listdir("/proc/self/fd")) > opened
    threads = threading.active_count()

    assert await replica.rest()
    assert store.resting and len(os.listdir("/proc/self/fd")) == opened
    await eventually(  # a thread ends a moment after its executor is shut down, not waited for
        lambda: asyncio.sleep(0, threading.active_count()),
        lambda count: count < threads,
        what="the writer's thread to end",
    )
    assert await replica.write([("s", 2, 2.0)]) == 2  # opened again, on a new thread
    assert store.query(lambda c: c.execute("SELECT count(*) FROM points").fetchone()) == (2,)
    await replica.close()


async def test_a_replica_does_not_rest_while_a_write_is_on_its_way(tmp_path: Path) -> None:
    replica = one_replica(tmp_path)
    release, busy, write = await write_behind_a_busy_writer(replica)
    assert not await replica.rest()
    release.set()
    await busy
    assert await write == 1
    await replica.close()
