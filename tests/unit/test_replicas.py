"""A region's lock: one object while anyone holds or awaits it, none kept after."""

from __future__ import annotations

import asyncio
import weakref
from pathlib import Path

from node.replicas import Replicas


async def test_a_lock_is_shared_while_held_and_not_kept_after(tmp_path: Path) -> None:
    replicas = Replicas(1, tmp_path, "normal")
    order: list[str] = []

    async def change(name: str) -> None:
        async with replicas.lock(7):
            order.append(f"{name} in")
            await asyncio.sleep(0)  # a chance for the other to barge in, which it must not
            order.append(f"{name} out")

    held = replicas.lock(7)
    async with held:
        waiting = [asyncio.create_task(change(n)) for n in ("a", "b")]
        await asyncio.sleep(0)  # both now wait on the lock held here
        assert replicas.lock(7) is held
    await asyncio.gather(*waiting)
    assert order == ["a in", "a out", "b in", "b out"]

    gone = weakref.ref(held)
    del held
    assert gone() is None  # a region deleted long ago leaves no lock behind
