"""A leaving replica's own writes are final only once those it accepted have committed."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from node.replica import PeerInfo, Replica, ReplicaMeta
from node.store import Store


async def test_a_leaving_replica_is_done_writing_once_its_accepted_writes_commit(
    tmp_path: Path,
) -> None:
    me = PeerInfo(node_id=1, address="127.0.0.1:1")
    replica = Replica(1, tmp_path, ReplicaMeta(region=7, peers=[me], active=True), "normal")
    replica.store = Store(tmp_path / Store.FILE, "normal")
    # the replica's one writer thread is busy: the write below is accepted, not committed
    release = threading.Event()
    busy = replica._executor.submit(release.wait)
    write = asyncio.ensure_future(replica.write([("s", 1, 1.0)]))
    await asyncio.sleep(0)  # one turn of the loop: the write is queued behind the busy thread

    replica.meta.leaving = True  # as SetActive(for_deletion) sets it
    assert not replica.done_writing()  # a channel finding nothing new must not stop yet
    release.set()
    assert await write == 1
    busy.result()
    assert replica.done_writing() and replica.max_assigned() == 1
    await replica.close()
