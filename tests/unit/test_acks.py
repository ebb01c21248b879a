"""Acknowledgement levels: who counts, what a level needs, a wait that ends on a reply."""

from __future__ import annotations

import asyncio

import pytest

from node.acks import Acknowledgements, Level, LevelNotMet


def test_a_peer_not_heard_from_counts_as_active_and_holding_nothing() -> None:
    acks = Acknowledgements()
    count = acks.count(5, [2, 3])
    assert (count.applied, count.active) == (1, 3)
    assert [count.needed(level) for level in Level] == [1, 2, 3]


def test_an_inactive_peer_does_not_count_and_a_holder_does() -> None:
    acks = Acknowledgements()
    acks.record(2, applied=7, active=True)
    acks.record(3, applied=9, active=False)  # adding, or leaving: not a voter
    count = acks.count(7, [2, 3])
    assert (count.applied, count.active, count.holders) == (2, 2, [2])
    assert count.needed(Level.QUORUM) == 2 and count.needed(Level.ALL) == 2
    assert acks.count(8, [2, 3]).applied == 1  # node 2 holds up to 7 only
    assert acks.count(7, [3]).holders == []  # a dropped channel is no longer asked


async def test_a_wait_ends_on_the_reply_that_meets_the_level() -> None:
    acks = Acknowledgements()
    waiting = asyncio.create_task(acks.wait(4, Level.QUORUM, lambda: [2, 3], timeout=30))
    await asyncio.sleep(0)
    assert not waiting.done()
    acks.record(2, applied=4, active=True)
    async with asyncio.timeout(5):
        count = await waiting
    assert (count.applied, count.holders) == (2, [2])


async def test_a_level_not_met_in_time_says_how_many_applied() -> None:
    acks = Acknowledgements()
    acks.record(2, applied=4, active=True)
    with pytest.raises(LevelNotMet) as e:
        await acks.wait(4, Level.ALL, lambda: [2, 3], timeout=0.05)
    assert (e.value.count.applied, e.value.needed) == (2, 3)
