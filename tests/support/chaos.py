"""Chaos helpers: watch an armed process die at its kill point, then bring it back."""

from __future__ import annotations

import asyncio
from typing import Any

from contracts.killpoints import EXIT_CODE, KillPoint
from stack.processes import ManagedProcess
from tests.support.waiting import eventually


async def died_at(
    process: ManagedProcess,
    point: KillPoint,
    workflow: asyncio.Future[Any],
    timeout: float = 60.0,
) -> None:
    """Wait until `process` dies at `point`; fail if `workflow` ends first (it never fired)."""

    async def probe() -> tuple[int | None, bool]:
        assert process.proc is not None, f"{process.name} was never started"
        return process.proc.poll(), workflow.done()

    code, _ = await eventually(
        probe,
        lambda state: state[0] is not None or state[1],
        timeout=timeout,
        what=f"{process.name} to die at kill point {point}",
    )
    if code is None:
        outcome = workflow.exception() or workflow.result()
        raise AssertionError(
            f"kill point {point} never fired in {process.name}: the workflow ended first "
            f"({outcome!r})"
        )
    output = process.output()
    assert code == EXIT_CODE, f"{process.name} exited with {code}, not at a kill point:\n{output}"
    assert f"[KILL POINT] {point}" in output, f"{process.name} died elsewhere:\n{output[-4000:]}"


async def restart(process: ManagedProcess) -> None:
    """Start `process` again with the same environment, the event loop running meanwhile."""
    await asyncio.to_thread(process.start)


async def rearm(process: ManagedProcess, env: dict[str, str]) -> None:
    """Restart `process` with `env` (kill points armed only now, past the test's setup)."""
    await asyncio.to_thread(process.terminate)
    process.env = {**process.env, **env}
    await restart(process)
