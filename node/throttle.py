"""A byte-rate limit shared by all of a node's outgoing channels (a migration throttle)."""

from __future__ import annotations

import asyncio
import contextlib
import time


class Throttle:
    """Token bucket: `acquire(n)` returns once `n` more bytes fit under `bytes_per_s`.

    With no rate it never waits. The bucket holds at most one second of bytes, so a burst
    after an idle spell is bounded. A new rate takes effect at once, for waiters too.
    """

    def __init__(self, bytes_per_s: float | None = None) -> None:
        self.rate = bytes_per_s or None
        self.acquired = 0  # bytes let through since the start: what the channels sent
        self._tokens = self.rate or 0.0
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()

    def set_rate(self, bytes_per_s: float | None) -> float | None:
        """Change the limit at run time (None or 0: no limit); returns the previous one."""
        self._refill()
        previous, self.rate = self.rate, bytes_per_s or None
        self._tokens = min(self._tokens, self.rate or 0.0)
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

    def _refill(self) -> None:
        now = time.monotonic()
        if self.rate:
            self._tokens = min(self.rate, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
