"""Keeping a local stack up: a process that dies is started again, with a backoff.

What died, how, and when it comes back is one log line each. The Temporal server, the nodes
and the workers are all kept; a stack that is stopped on purpose is left alone.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass, field

from stack.processes import ManagedProcess

log = logging.getLogger("airctl.supervisor")

FIRST_DELAY_S = 0.5  # a crash is restarted this soon; each crash soon after one doubles it
MAX_DELAY_S = 30.0
STEADY_S = 60.0  # up this long, a process's next crash is treated as a first one


def how_it_ended(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


@dataclass
class _Watch:
    process: ManagedProcess
    delay_s: float = FIRST_DELAY_S
    started_at: float = field(default_factory=time.monotonic)
    restart_at: float | None = None  # set while it is down


class Supervisor:
    """Restarts the processes it watches: call `check()` often, from the thread that started
    them (a child of a stack dies with the thread that started it: see `die_with_parent`)."""

    def __init__(self, processes: list[ManagedProcess]) -> None:
        self._watches = [_Watch(p) for p in processes]

    def check(self) -> None:
        now = time.monotonic()
        for w in self._watches:
            if w.restart_at is None:
                self._notice(w, now)
            elif now >= w.restart_at:
                self._restart(w)

    def _notice(self, w: _Watch, now: float) -> None:
        proc = w.process.proc
        if proc is None or proc.poll() is None:
            return
        if now - w.started_at > STEADY_S:
            w.delay_s = FIRST_DELAY_S
        w.restart_at = now + w.delay_s
        log.warning(
            "%s %s at %s; restarting it in %.1fs",
            w.process.name,
            how_it_ended(proc.returncode),
            time.strftime("%H:%M:%S"),
            w.delay_s,
        )

    def _restart(self, w: _Watch) -> None:
        try:
            w.process.start()
        except (RuntimeError, TimeoutError) as e:  # it will be noticed dead again
            log.warning("%s did not come back: %s", w.process.name, str(e).splitlines()[0])
        else:
            log.warning("%s restarted at %s", w.process.name, time.strftime("%H:%M:%S"))
        w.started_at = time.monotonic()
        w.delay_s = min(w.delay_s * 2, MAX_DELAY_S)
        w.restart_at = None
