"""The byte-rate limits of a node's outgoing channels (migration throttles)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

# A bucket holds this many seconds of bytes: a burst is what the writes beside a transfer feel.
# A second's worth, as a fixed limit held before, went at full speed at each transfer's start,
# on both cores, a snapshot's sender and receiver each taking one (BENCHMARKS.md, 2026-12-07).
BURST_S = 0.05


class Throttle:
    """Token bucket: `acquire(n)` returns once `n` more bytes fit under `bytes_per_s`.

    With no rate it never waits. The bucket holds at most BURST_S seconds of bytes, so a
    burst after an idle spell is bounded. A new rate takes effect at once, for waiters too.
    Paused, it lets nothing through, whatever its rate (`auto`'s probe windows).
    """

    def __init__(self, bytes_per_s: float | None = None) -> None:
        self.rate = bytes_per_s or None
        self.paused = False
        self.auto = False  # its rate follows `auto` (node.adaptive), for the progress to say
        self.acquired = 0  # bytes let through since the start: what the channels sent
        self._tokens = self._capacity
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()

    def set_rate(self, bytes_per_s: float | None) -> float | None:
        """Change the limit at run time (None or 0: no limit); returns the previous one."""
        self._refill()
        previous, self.rate = self.rate, bytes_per_s or None
        self._tokens = min(self._tokens, self._capacity)
        self._wake()  # waiters recompute their wait under the new rate
        return previous

    def pause(self, paused: bool) -> None:
        if paused != self.paused:
            self.paused = paused
            self._wake()

    async def acquire(self, n: int) -> None:
        if self.rate or self.paused:
            await self._wait(n)
        self.acquired += n  # counted once through: a held chunk has not been sent

    async def _wait(self, n: int) -> None:
        async with self._lock:
            self._refill()
            self._tokens -= n
            while self.paused or (self.rate and self._tokens < 0):
                changed = self._changed
                timeout = None if self.paused or not self.rate else -self._tokens / self.rate
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), timeout)
                self._refill()
            if not self.rate:  # let through unlimited: no debt for a later rate to repay
                self._tokens = 0.0

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def _capacity(self) -> float:
        return (self.rate or 0.0) * BURST_S

    def _refill(self) -> None:
        now = time.monotonic()
        if self.rate:
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now


@dataclass(frozen=True)
class Throttles:
    """A node's two limits. `every` is the operator's fixed limit, on every byte its channels
    send. `snapshots` is the adaptive one (`auto`), on snapshot chunks only: a bulk copy of
    history can wait, but the stream of new writes cannot, as slowing it would hold back the
    very writes `auto` protects (their replicas' lag, a `quorum` write's acknowledgement)."""

    every: Throttle = field(default_factory=Throttle)
    snapshots: Throttle = field(default_factory=Throttle)

    async def acquire_snapshot(self, n: int) -> None:
        await self.snapshots.acquire(n)
        await self.every.acquire(n)

    def snapshot_limit(self) -> tuple[float | None, bool]:
        """The limit snapshot chunks go at now (None: none), and whether `auto` sets it."""
        rates = [r for r in (self.snapshots.rate, self.every.rate) if r]
        return min(rates, default=None), self.snapshots.auto
