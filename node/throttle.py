"""A byte-rate limit shared by all of a node's outgoing channels (a migration throttle)."""

from __future__ import annotations

import asyncio
import time


class Throttle:
    """Token bucket: `acquire(n)` returns once `n` more bytes fit under `bytes_per_s`.

    With no rate it never waits. The bucket holds at most one second of bytes, so a burst
    after an idle spell is bounded.
    """

    def __init__(self, bytes_per_s: float | None = None) -> None:
        self.rate = bytes_per_s
        self._tokens = bytes_per_s or 0.0
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    def set_rate(self, bytes_per_s: float | None) -> float | None:
        """Change the limit at run time (None or 0: no limit); returns the previous one."""
        previous, self.rate = self.rate, bytes_per_s or None
        self._tokens = min(self._tokens, self.rate or 0.0)
        return previous

    async def acquire(self, n: int) -> None:
        if not self.rate:
            return
        async with self._lock:
            now = time.monotonic()
            self._tokens = min(self.rate, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= n
            if self._tokens < 0:
                await asyncio.sleep(-self._tokens / self.rate)
