"""Exponential backoff: start at once, then wait longer each time, up to a cap."""

from __future__ import annotations

import asyncio


class Backoff:
    def __init__(self, initial: float = 0.05, cap: float = 2.0, factor: float = 2.0) -> None:
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self._next = initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * self.factor, self.cap)
        return delay

    def reset(self) -> None:
        self._next = self.initial

    async def sleep(self) -> None:
        await asyncio.sleep(self.next_delay())
