"""The byte-rate limits of a node's outgoing channels (migration throttles)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

# The snapshots' bucket holds this much: a burst is what the writes beside them feel.
SNAPSHOT_BURST_S = 0.05


class Throttle:
    """Token bucket: `acquire(n)` returns once `n` more bytes fit under `bytes_per_s`.

    With no rate it never waits. The bucket holds at most `burst_s` seconds of bytes, so a
    burst after an idle spell is bounded. A new rate takes effect at once, for waiters too.
    """

    def __init__(self, bytes_per_s: float | None = None, burst_s: float = 1.0) -> None:
        self.rate = bytes_per_s or None
        self.burst_s = burst_s
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
        self._changed.set()  # waiters recompute their wait under the new rate
        self._changed = asyncio.Event()
        return previous

    async def acquire(self, n: int) -> None:
        self.acquired += n
        if not self.rate:
            return
        async with self._lock:
            self._refill()
            self._tokens -= n
            while self.rate and self._tokens < 0:
                changed = self._changed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), -self._tokens / self.rate)
                self._refill()

    @property
    def _capacity(self) -> float:
        return (self.rate or 0.0) * self.burst_s

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
    snapshots: Throttle = field(default_factory=lambda: Throttle(burst_s=SNAPSHOT_BURST_S))

    async def acquire_snapshot(self, n: int) -> None:
        await self.snapshots.acquire(n)
        await self.every.acquire(n)
