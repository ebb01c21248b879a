"""Await a condition instead of sleeping a guessed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    check: Callable[[T], bool] = bool,
    *,
    timeout: float = 30.0,
    what: str = "condition",
    max_delay: float = 0.2,
) -> T:
    """Poll `probe` (20 ms, backing off to `max_delay`) until `check` holds; else fail."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    last: object = None
    while True:
        try:
            last = await probe()
            if check(last):
                return last
        except AssertionError:  # a failed assertion is a verdict, not "not yet"
            raise
        except Exception as e:  # a node restarting answers with errors for a moment
            last = e
        if time.monotonic() > deadline:
            seen = repr(last)
            seen = seen if len(seen) < 2000 else seen[:2000] + "..."
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {seen}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)
