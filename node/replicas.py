"""The replicas a node holds: found on disk at start, looked up by region, one lock each."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import grpc

from node.errors import NodeError
from node.reclaim import Reclaimer
from node.replica import Replica
from node.store import SyncMode
from runtime.files import move_aside

log = logging.getLogger(__name__)

_REGION_DIR = re.compile(r"^region_(\d+)$")


class Replicas:
    def __init__(self, node_id: int, data_dir: Path, sync: SyncMode) -> None:
        self.node_id = node_id
        self.data_dir = data_dir
        self.sync = sync
        self._by_region: dict[int, Replica] = {}
        # a lock lives while someone holds or awaits it: regions come and go all a node's
        # life, and a lock kept for each one ever held would grow without bound
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()
        self.reclaimer = Reclaimer()

    def recover(self) -> None:
        """Load every region folder; drop what a crash left half made or half deleted.

        Reads each replica's small `replica.json` and opens its store: nothing proportional
        to the data it holds.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.data_dir.glob("region_*.creating"):  # a replica.json, no data
            log.warning("removing %s left by an interrupted create", leftover.name)
            shutil.rmtree(leftover)
        for leftover in self.data_dir.glob("region_*.deleting*"):
            log.warning("removing %s left by an interrupted delete", leftover.name)
            self.reclaimer.remove(leftover)
        for path in sorted(self.data_dir.iterdir()):
            if not (match := _REGION_DIR.match(path.name)) or not path.is_dir():
                continue
            replica = Replica.load(self.node_id, path, self.sync)
            if replica.installed:  # a replica awaiting its snapshot keeps what it received
                replica.remove_partial_snapshots()
            replica.confirmed = replica.meta.peer_ids() <= {self.node_id}
            self._by_region[int(match.group(1))] = replica
            log.debug(
                "recovered region %d (active=%s, installed=%s)",
                replica.region,
                replica.meta.active,
                replica.installed,
            )
        log.info("recovered %d regions", len(self._by_region))

    def lock(self, region: int) -> asyncio.Lock:
        """The lock every membership change of `region` holds (the same object while anyone
        holds or awaits it)."""
        lock = self._locks.get(region)
        if lock is None:
            lock = self._locks[region] = asyncio.Lock()
        return lock

    def directory(self, region: int) -> Path:
        return self.data_dir / f"region_{region}"

    def remove_folder(self, region: int) -> None:
        """The folder of a replica no longer held moved out of its name at once, durably, and
        removed in the background: a crash leaves it whole under its name or under a trash
        name the next start removes (`recover`). A trash name of its own each time, so the
        region may be created and deleted again while the last one's goes."""
        folder = self.directory(region)
        trash = folder.with_name(f"{folder.name}.deleting-{time.time_ns()}")
        move_aside(folder, trash)
        self.reclaimer.remove(trash)

    def find(self, region: int) -> Replica | None:
        return self._by_region.get(region)

    def get(self, region: int) -> Replica:
        """This node's replica of `region`; NOT_FOUND when it has none."""
        replica = self._by_region.get(region)
        if replica is None:
            raise NodeError(
                grpc.StatusCode.NOT_FOUND, f"region {region} has no replica on node {self.node_id}"
            )
        return replica

    def add(self, replica: Replica) -> None:
        self._by_region[replica.region] = replica

    def pop(self, region: int) -> Replica | None:
        return self._by_region.pop(region, None)

    def regions(self) -> list[int]:
        """A copy: callers may await between regions while others come and go."""
        return list(self._by_region)

    def __iter__(self) -> Iterator[Replica]:
        return iter(list(self._by_region.values()))

    def __len__(self) -> int:
        return len(self._by_region)

    def page(self, after_region: int = 0, limit: int = 0) -> tuple[list[Replica], int]:
        """The replicas after `after_region`, in region order, at most `limit` (0: all), and
        the region the next page starts after (0: this is the last page)."""
        regions = sorted(r for r in self._by_region if r > after_region)
        if limit > 0 and len(regions) > limit:
            regions, next_after = regions[:limit], regions[limit - 1]
        else:
            next_after = 0
        return [self._by_region[r] for r in regions], next_after
