"""Acknowledgement levels: how many of a region's active replicas hold one of this node's writes.

A write says how many replicas must have applied it before it is acknowledged: `ONE` (the
accepting replica, IoTDB's semantics), `QUORUM` (a majority of the region's active
replicas, the accepting one counted) or `ALL`. The peers are those this replica has a channel
to, as it knows them: an adding peer counts once it says it is active, a leaving one stops
counting once its channel is dropped (the removal's first step). What each receiver applied of
this node's writes, and whether it is active, comes back on every transfer reply. A receiver
not heard from since this node started counts as active and as holding nothing: a down peer
makes a level harder to meet, never easier.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

RECHECK_S = 0.5


class Level(enum.IntEnum):
    ONE = 0
    QUORUM = 1
    ALL = 2


@dataclass(frozen=True)
class Count:
    applied: int  # replicas that applied the write, this one included
    active: int  # active replicas, this one included
    holders: list[int]  # the other replicas that applied it

    def needed(self, level: Level) -> int:
        if level is Level.ALL:
            return self.active
        if level is Level.QUORUM:
            return self.active // 2 + 1
        return 1


class LevelNotMet(Exception):
    def __init__(self, count: Count, needed: int) -> None:
        super().__init__(f"applied by {count.applied} of the {needed} replicas needed")
        self.count = count
        self.needed = needed


class Acknowledgements:
    """What each receiver of one replica's channels last acknowledged, and writes awaiting it."""

    def __init__(self) -> None:
        self._heard: dict[int, tuple[int, bool]] = {}  # receiver -> (applied, active)
        self._changed = asyncio.Event()

    def record(self, receiver: int, applied: int, active: bool) -> None:
        """A transfer reply from `receiver`: it has applied this node's writes up to `applied`."""
        if self._heard.get(receiver) != (applied, active):
            self._heard[receiver] = (applied, active)
            self._changed.set()
            self._changed = asyncio.Event()

    def count(self, seq: int, receivers: Iterable[int]) -> Count:
        """Who holds this node's write `seq` among itself and `receivers` (its channels now)."""
        applied, active, holders = 1, 1, []
        for r in receivers:
            got, is_active = self._heard.get(r, (0, True))
            if not is_active:
                continue
            active += 1
            if got >= seq:
                applied += 1
                holders.append(r)
        return Count(applied, active, sorted(holders))

    async def wait(
        self, seq: int, level: Level, receivers: Callable[[], Iterable[int]], timeout: float
    ) -> Count:
        """Return once `level` holds for write `seq`; `LevelNotMet` after `timeout` seconds.

        `receivers()` is asked again at every look: a peer added or dropped meanwhile counts
        as it then is (a dropped channel wakes no one: looked at again every RECHECK_S)."""
        ends = time.monotonic() + timeout
        while True:
            changed = self._changed  # taken before counting: a reply meanwhile wakes us
            count = self.count(seq, receivers())
            needed = count.needed(level)
            if count.applied >= needed:
                return count
            left = ends - time.monotonic()
            if left <= 0:
                raise LevelNotMet(count, needed)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(left, RECHECK_S))
