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
    """Poll `probe` (20 ms, backing off to `max_delay`) until `check` holds; else fail, with
    what the probe last returned or raised. A probe that raises a programming error (a wrong
    name or type) fails at once: that is a broken probe, not "not yet"."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    last: object = None
    while True:
        try:
            last = await probe()
            if check(last):
                return last
        except (AssertionError, TypeError, AttributeError, NameError):  # verdicts and bugs
            raise
        except Exception as e:  # a node restarting answers with errors for a moment
            last = e
        if time.monotonic() > deadline:
            seen = repr(last)
            seen = seen if len(seen) < 2000 else seen[:2000] + "..."
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {seen}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)
