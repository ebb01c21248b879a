"""Every regular activity heartbeats while it runs, so a worker that dies holding one is known
dead within the heartbeat timeout.

Temporal retries an activity whose worker died only once its attempt times out. One that
heartbeats only between polls (or not at all: describing a region, creating a replica) would
leave a killed worker's step idle for the whole attempt, 15 to 30 s, and an RPC slower than the
heartbeat timeout would fail a live attempt. The interceptor heartbeats each running activity every
third of its heartbeat timeout, re-sending the details it last heartbeated (`heartbeat`), so a
retry still resumes from them. Local activities and those without a heartbeat timeout run as
they are.
"""

from __future__ import annotations

import asyncio
import contextlib
from contextvars import ContextVar
from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

# The details the running activity last heartbeated, which the keep-alive sends again.
_details: ContextVar[list[Any] | None] = ContextVar("heartbeat_details", default=None)


def heartbeat(details: Any) -> None:
    """Heartbeat a regular activity; a local one (a quick try) has no heartbeat to send."""
    if activity.info().is_local:
        return
    held = _details.get()
    if held is not None:
        held[:] = [details]
    activity.heartbeat(details)


def heartbeat_detail(key: str) -> float | None:
    """A value the previous attempt of this activity heartbeated (before a crash), if any."""
    details = activity.info().heartbeat_details
    if details and isinstance(details[-1], dict) and key in details[-1]:
        return float(details[-1][key])
    return None


class KeepAlive(Interceptor):
    """The worker's interceptor: each regular activity with a heartbeat timeout heartbeats."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _KeepAliveInbound(next)


class _KeepAliveInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        if info.is_local or not info.heartbeat_timeout:
            return await self.next.execute_activity(input)
        # an earlier attempt's details go on being sent until this one heartbeats its own
        held: list[Any] = list(info.heartbeat_details[-1:])
        token = _details.set(held)
        beating = asyncio.create_task(_beat(held, info.heartbeat_timeout.total_seconds() / 3))
        try:
            return await self.next.execute_activity(input)
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
            _details.reset(token)


async def _beat(held: list[Any], every_s: float) -> None:
    while True:
        activity.heartbeat(*held)
        await asyncio.sleep(every_s)
