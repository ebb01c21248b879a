"""One region replica on this node: its durable membership state, its store, its write path."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal, ParamSpec, TypeVar

from pydantic import BaseModel

from contracts.columns import Row
from node.acks import Acknowledgements
from node.snapshot import IncomingSnapshot, Sent
from node.store import HeldView, OriginBatch, Store, SyncMode
from runtime.files import atomic_write, fsync_dir

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

CHANNEL_PREFIX = "__consensus."  # IoTDB's CONSENSUS_PIPE_PREFIX
ChannelStatus = Literal["RUNNING", "STOPPED"]


class PeerInfo(BaseModel, frozen=True):
    node_id: int
    address: str


class ChannelState(BaseModel):
    """An outgoing channel (region, this node, receiver), durable with its last known cursor.

    `acked` is the receiver's applied seq of this node's writes as it last acknowledged them
    (durably applied there, so never ahead of the truth). A session resumes from what the
    receiver reports; a channel whose `acked` reaches this node's last seq opens no stream,
    after a restart too, until the next write.
    """

    receiver: PeerInfo
    snapshot: bool = False
    status: ChannelStatus = "RUNNING"
    acked: int = 0


class ReplicaMeta(BaseModel):
    """What `replica.json` holds. The data and the applied vector live in the store."""

    region: int
    peers: list[PeerInfo]
    active: bool
    leaving: bool = False
    # Former peers whose channels to here may still drain (they left by DropChannel).
    departed: list[int] = []
    # Former peers removed while they could not be reached: their channels take nothing here;
    # told so, they retire, handing their own writes to every member (retirement.py).
    written_off: list[int] = []
    channels: dict[int, ChannelState] = {}

    def peer_ids(self) -> set[int]:
        return {p.node_id for p in self.peers}


def channel_name(region: int, sender: int, receiver: int) -> str:
    return f"{CHANNEL_PREFIX}{region}_{sender}_{receiver}"


class Replica:
    """A region replica. All store writes run on its one writer thread, in arrival order."""

    META = "replica.json"

    def __init__(self, node_id: int, path: Path, meta: ReplicaMeta, sync: SyncMode) -> None:
        self.node_id = node_id
        self.path = path
        self.meta = meta
        self.sync = sync
        self.store: Store | None = None
        self.inbound = 0  # open Transfer streams into this replica
        self.check_reads = 0  # ranges the consistency check read here since the node started
        self.snapshots_sent: dict[int, Sent] = {}  # by receiver, since the node started
        self.receiving: dict[int, IncomingSnapshot] = {}  # snapshots coming in, by sender
        self.snapshot_locks: dict[int, asyncio.Lock] = {}  # one stream at a time per sender
        # Recovered replicas serve no user write until a peer confirms this node is a member.
        self.confirmed = True
        # the writer's thread, started by its first task and ended by `rest()`
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._in_executor = 0  # tasks handed to it and not yet done
        self.last_used = time.monotonic()
        self._pending: list[tuple[list[Row], asyncio.Future[int]]] = []
        self._flushing = False
        self._flush_task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.acks = Acknowledgements()  # what its channels' receivers hold of its own writes
        self._persisted = b""
        if (path / Store.FILE).exists():
            self.store = Store(path / Store.FILE, sync)

    @property
    def region(self) -> int:
        return self.meta.region

    @property
    def installed(self) -> bool:
        return self.store is not None

    def store_bytes(self) -> int:
        """The store's size on disk (its database and write-ahead log): what a snapshot moves."""
        if self.store is None:
            return 0
        files = (self.path / name for name in (Store.FILE, f"{Store.FILE}-wal"))
        return sum(f.stat().st_size for f in files if f.exists())

    @classmethod
    def load(cls, node_id: int, path: Path, sync: SyncMode) -> Replica:
        data = (path / cls.META).read_bytes()
        replica = cls(node_id, path, ReplicaMeta.model_validate_json(data), sync)
        replica._persisted = data
        return replica

    def persist(self) -> None:
        data = self.meta.model_dump_json(indent=2).encode()
        atomic_write(self.path / self.META, data)
        self._persisted = data

    def persist_if_changed(self) -> None:
        """Persist what changed without a membership call, such as channel cursors."""
        if self.meta.model_dump_json(indent=2).encode() != self._persisted:
            self.persist()

    def applied(self) -> dict[int, int]:
        return self.store.applied if self.store else {}

    @property
    def takes_writes(self) -> bool:
        """Active, installed and not leaving: a replica that counts toward acknowledgements."""
        return self.meta.active and self.installed and not self.meta.leaving

    def receivers(self) -> list[int]:
        """The peers its running channels send to."""
        return [r for r, c in self.meta.channels.items() if c.status == "RUNNING"]

    def max_assigned(self) -> int:
        return self.store.applied_of(self.node_id) if self.store else 0

    # -- writes ---------------------------------------------------------------------------

    async def write(self, rows: list[Row]) -> int:
        """Commit a user batch durably and return its seq. Concurrent batches share a commit."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((rows, future))
        if not self._flushing:
            self._flushing = True
            self._flush_task = asyncio.create_task(self._flush())
        return await future

    def done_writing(self) -> bool:
        """Leaving, and every user write it accepted has committed: its own writes are final.

        A leaving replica takes no new user write, but one accepted just before it left may
        still be committing; until it has, a channel that finds nothing to send is not drained.
        """
        return self.meta.leaving and not self._flushing

    async def quiesce(self) -> None:
        """Return once every write accepted so far has committed (or failed)."""
        while self._flush_task is not None and not self._flush_task.done():
            await asyncio.shield(self._flush_task)

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    rows = [b for b, _ in batch]
                    seqs = await self._run(self._store().write_local, self.node_id, rows)
                except Exception as e:
                    for _, f in batch:
                        f.set_exception(e)
                    continue
                for (_, f), seq in zip(batch, seqs, strict=True):
                    f.set_result(seq)
                self.notify()
        finally:
            self._flushing = False
            self.notify()  # a leaving replica's channels wait for this: done_writing()

    async def hold_view(self) -> HeldView:
        """The store's main file held as a consistent copy (`Store.hold_view`), taken on the
        writer's thread so that no write commits while it is made."""
        return await self._run(self._store().hold_view)

    async def apply_remote(self, origin: int, batch: OriginBatch) -> int:
        return await self._run(self._store().apply_remote, origin, batch)

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"region-{self.region}"
            )
        loop = asyncio.get_running_loop()
        self._in_executor += 1
        try:
            return await loop.run_in_executor(
                self._executor, functools.partial(fn, *args, **kwargs)
            )
        finally:
            self._in_executor -= 1
            self.last_used = time.monotonic()

    @property
    def resting(self) -> bool:
        """Its writer's thread is closed (and so its store's connection): see `rest`."""
        return self._executor is None

    async def rest(self) -> bool:
        """Close the store's writer connection and end the writer's thread, if nothing uses
        them: an idle replica then holds no file descriptor and no thread. True if it rested.
        The next write opens both again."""
        busy = self._pending or self._flushing or self.inbound or self.receiving
        if busy or self._executor is None or self._in_executor:
            return False
        store = self.store
        if store is not None:
            await self._run(store.rest)
        if self._in_executor == 0 and self._executor is not None:  # none came meanwhile
            self._executor.shutdown(wait=False)
            self._executor = None
            return True
        return False

    def _store(self) -> Store:
        if self.store is None:
            raise RuntimeError(f"region {self.region} has no store yet (awaiting a snapshot)")
        return self.store

    # -- change notification for the channels ---------------------------------------------

    def notify(self) -> None:
        """Wake everything waiting for a change (a new write, a flag, an installed snapshot)."""
        self._changed.set()
        self._changed = asyncio.Event()

    def changes(self) -> asyncio.Event:
        """The event the next change sets: taken before a look, it catches a change that
        comes while the look runs."""
        return self._changed

    async def wait_changed(self, timeout: float, since: asyncio.Event | None = None) -> None:
        """Return on the next change (or the first since `since` was taken), or after
        `timeout`."""
        event = since or self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    # -- lifecycle ------------------------------------------------------------------------

    async def install(self, incoming: Path) -> bool:
        """Make a received snapshot file this replica's store, atomically (one rename).

        A replica that already has a store keeps it (it may hold writes newer than the
        snapshot): the resent snapshot is dropped and False returned.
        """
        installed = await self._run(self._install, incoming)
        self.notify()
        return installed

    def _install(self, incoming: Path) -> bool:
        if self.store is not None:
            incoming.unlink(missing_ok=True)
            return False
        target = self.path / Store.FILE
        for leftover in (Path(f"{target}-wal"), Path(f"{target}-shm")):
            leftover.unlink(missing_ok=True)
        incoming.replace(target)
        fsync_dir(self.path)
        self.store = Store(target, self.sync)
        self.remove_partial_snapshots()
        return True

    def remove_partial_snapshots(self) -> None:
        """Snapshots from other senders, and their records, are of no use once installed."""
        for partial in self.path.glob("snapshot.*"):
            partial.unlink(missing_ok=True)

    def snapshot_received(self) -> int:
        """The bytes this replica holds of the snapshots now coming in."""
        return sum(incoming.bytes_held for incoming in self.receiving.values())

    def snapshot_limit(self) -> tuple[float, bool]:
        """The limit of a snapshot now coming in, as its sender last said (bytes/s, 0: none;
        whether `auto` sets it)."""
        return next((i.sender_limit for i in self.receiving.values()), (0.0, False))

    async def close(self) -> None:
        await self._run(self._close_store)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _close_store(self) -> None:
        if self.store is not None:
            self.store.close()
