"""The transfer throttles: no limit never waits; lifting a limit releases a waiting sender; a
pause holds one until it ends; `auto` holds back snapshots, never the stream of new writes;
the progress says which limit a snapshot goes at."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from airctl.progress import transfer
from contracts.activity_models import TransferProgress
from contracts.models import Phase
from contracts.rates import limit_text
from node.node import Node
from node.throttle import BURST_S, Throttle, Throttles
from workflows.machinery.progress import ChangeReporter, NoWorkflow


def loop_time() -> float:
    return asyncio.get_running_loop().time()


async def test_no_limit_never_waits() -> None:
    throttle = Throttle()
    async with asyncio.timeout(1):
        for _ in range(1000):
            await throttle.acquire(10**9)


async def test_a_limit_lets_through_no_more_than_a_short_burst_at_once() -> None:
    throttle = Throttle(1_000_000)  # 1 MB/s, its bucket full: BURST_S of bytes
    began = loop_time()
    await throttle.acquire(int(1_000_000 * BURST_S))
    await throttle.acquire(10_000)  # past the burst: paced, 10 ms at this rate
    assert loop_time() - began >= 0.009


async def test_lifting_the_limit_releases_a_waiting_sender() -> None:
    throttle = Throttle(1000)  # 1 kB/s: a 1 MB chunk would wait ~17 minutes
    waiting = asyncio.create_task(throttle.acquire(1_000_000))
    await asyncio.sleep(0)  # let it start waiting
    assert not waiting.done()
    assert throttle.set_rate(0) == 1000
    async with asyncio.timeout(5):
        await waiting


@pytest.mark.parametrize("rate", [None, 1e9])
async def test_a_pause_holds_a_sender_until_it_ends_whatever_the_rate(rate: float | None) -> None:
    throttle = Throttle(rate)
    throttle.pause(True)
    waiting = asyncio.create_task(throttle.acquire(1000))
    await asyncio.sleep(0.05)
    assert not waiting.done() and throttle.acquired == 0  # held: not counted as sent
    throttle.pause(False)
    async with asyncio.timeout(5):
        await waiting
    assert throttle.acquired == 1000


async def test_the_snapshots_limit_does_not_hold_the_stream() -> None:
    throttles = Throttles(snapshots=Throttle(1000))
    async with asyncio.timeout(1):
        await throttles.every.acquire(1_000_000)  # a batch of new writes goes at once


@pytest.mark.parametrize("limited", ["snapshots", "every"])
async def test_a_snapshot_chunk_waits_for_either_limit(limited: str) -> None:
    throttles = Throttles(**{limited: Throttle(1000)})
    snapshot = asyncio.create_task(throttles.acquire_snapshot(1_000_000))
    await asyncio.sleep(0)  # let it start waiting
    assert not snapshot.done()
    snapshot.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await snapshot


async def test_auto_limits_snapshots_only_and_a_rate_limits_every_byte(tmp_path: Path) -> None:
    node = Node(1, "127.0.0.1:1", tmp_path, auto_rate_limit=True)
    throttles = node.channels.throttles
    assert node.set_throttle(5e6).bytes_per_s == 5e6
    assert (throttles.every.rate, throttles.snapshots.rate) == (5e6, None)
    assert throttles.snapshot_limit() == (5e6, False)
    change = node.set_throttle(0, auto=True)
    assert change.previous == 5e6
    # auto starts from the limit it replaces, on snapshots alone
    assert (throttles.every.rate, throttles.snapshots.rate) == (None, 5e6)
    assert throttles.snapshot_limit() == (5e6, True)
    throttles.snapshots.pause(True)  # in a probe window: a fixed limit ends it
    assert node.set_throttle(0).previous == 5e6
    assert (throttles.every.rate, throttles.snapshots.rate) == (None, None)
    assert throttles.snapshot_limit() == (None, False) and not throttles.snapshots.paused
    await node.clients.close()


class Shown(NoWorkflow):
    """Outside a workflow, a reporter's details kept as it gives them."""

    def __init__(self) -> None:
        self.shown: list[str] = []

    def details(self, markdown: str) -> None:
        self.shown.append(markdown)


def test_the_progress_says_which_limit_a_snapshot_goes_at() -> None:
    assert limit_text(38.4e6, True) == "auto: 38 MB/s"
    assert limit_text(0, True) == "auto: no limit"
    assert limit_text(4e6, False) == "limit 4.0 MB/s"
    assert limit_text(0, False) == ""
    # as `airctl migrate --wait` and the workflow's details in the UI show it
    shown = Shown()
    reporter = ChangeReporter("migration", shown)
    reporter.begin(7, [1, 4], 60)
    reporter.enter(Phase.TRANSFERRING)
    slice_ = TransferProgress(
        complete=False, lag=1, snapshot_received=int(120e6), snapshot_limit=38e6
    )
    reporter.transfer(slice_.model_copy(update={"snapshot_limit_auto": True}), [4], 0)
    assert "snapshot: 120.0 MB received, auto: 38 MB/s" in shown.shown[-1], shown.shown
    assert "snapshot 120.0 MB received (auto: 38 MB/s)" in transfer(reporter.progress)
    reporter.transfer(slice_.model_copy(update={"snapshot_limit": 0}), [4], 0)
    assert transfer(reporter.progress).endswith("snapshot 120.0 MB received")  # no limit
