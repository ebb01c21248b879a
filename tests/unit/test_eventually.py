"""Waiting on a condition: errors meanwhile are "not yet", a broken probe fails at once, and a
timeout says what the probe last gave."""

from __future__ import annotations

import time

import pytest

from tests.support.waiting import eventually


async def test_a_transient_error_is_not_yet() -> None:
    failures = iter([ConnectionError("restarting"), ConnectionError("restarting")])

    async def probe() -> int:
        if (failure := next(failures, None)) is not None:
            raise failure
        return 3

    assert await eventually(probe, lambda n: n == 3, timeout=5) == 3


async def test_a_broken_probe_fails_at_once() -> None:
    async def probe() -> int:
        return None.count  # type: ignore[attr-defined, no-any-return]

    began = time.monotonic()
    with pytest.raises(AttributeError):
        await eventually(probe, timeout=30)
    assert time.monotonic() - began < 5


async def test_a_timeout_says_what_it_last_saw() -> None:
    async def probe() -> int:
        raise ConnectionError("node 4 does not answer")

    with pytest.raises(AssertionError, match="node 4 does not answer"):
        await eventually(probe, timeout=0.1, what="node 4")
