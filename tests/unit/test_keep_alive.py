"""Every regular activity heartbeats while it runs, re-sending its last details (the SDK's
ActivityEnvironment stands in for the worker: it records each heartbeat)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

from temporalio.testing import ActivityEnvironment

from activities.keep_alive import KeepAlive, heartbeat
from tests.support.waiting import eventually

BEAT = timedelta(seconds=0.3)  # a heartbeat every 0.1 s


def environment(**info: Any) -> tuple[ActivityEnvironment, list[tuple[Any, ...]]]:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, **info)
    beats: list[tuple[Any, ...]] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    return env, beats


class Activity:
    """Stands for the activity the interceptor calls: it runs `body` in the activity."""

    def __init__(self, body: Any) -> None:
        self.body = body

    async def execute_activity(self, _input: Any) -> Any:
        return await self.body()


async def run(env: ActivityEnvironment, body: Any) -> Any:
    inbound = KeepAlive().intercept_activity(Activity(body))  # type: ignore[arg-type]
    return await env.run(inbound.execute_activity, None)  # type: ignore[arg-type]


async def test_a_running_activity_heartbeats_its_last_details_and_stops_when_it_ends() -> None:
    env, beats = environment(heartbeat_timeout=BEAT, heartbeat_details=[{"down_since": 1.0}])

    async def count() -> int:
        return len(beats)

    async def body() -> str:
        # the earlier attempt's details are kept alive until this attempt heartbeats its own
        await eventually(count, lambda n: n >= 3)
        assert all(b == ({"down_since": 1.0},) for b in beats), beats
        heartbeat({"down_since": 2.0})
        mine = len(beats)
        await eventually(count, lambda n: n >= mine + 3)
        assert all(b == ({"down_since": 2.0},) for b in beats[mine - 1 :]), beats
        return "done"

    assert await run(env, body) == "done"
    ended = len(beats)
    await asyncio.sleep(BEAT.total_seconds())  # three beats' time: none comes
    assert len(beats) == ended, beats


async def test_an_activity_without_a_heartbeat_timeout_is_left_alone() -> None:
    env, beats = environment(heartbeat_timeout=None)

    async def body() -> str:
        await asyncio.sleep(0.3)
        return "done"

    assert await run(env, body) == "done"
    assert beats == []
