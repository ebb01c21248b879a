"""The transfer throttle: no limit never waits; lifting a limit releases a waiting sender."""

from __future__ import annotations

import asyncio

from node.throttle import Throttle


async def test_no_limit_never_waits() -> None:
    throttle = Throttle()
    async with asyncio.timeout(1):
        for _ in range(1000):
            await throttle.acquire(10**9)


async def test_lifting_the_limit_releases_a_waiting_sender() -> None:
    throttle = Throttle(1000)  # 1 kB/s: a 1 MB chunk would wait ~17 minutes
    waiting = asyncio.create_task(throttle.acquire(1_000_000))
    await asyncio.sleep(0)  # let it start waiting
    assert not waiting.done()
    assert throttle.set_rate(0) == 1000
    async with asyncio.timeout(5):
        await waiting
