"""Kill points that fire: a process started with `AIR_KILL_POINTS=NAME[,NAME...]` logs
`[KILL POINT] NAME` when it reaches an armed point and exits with `os._exit` (no cleanup, like
SIGKILL). Each point fires once: the firing is recorded durably before the exit, in
`AIR_KILL_POINT_STATE` or else the directory the process configured (a node's data directory),
so a restart with the same environment goes on past it.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from contracts.killpoints import ENV_POINTS, ENV_STATE, EXIT_CODE, KillPoint
from runtime.files import fsync_dir, write_durably

log = logging.getLogger(__name__)


class KillPoints:
    """The armed points of this process and where their firings are recorded."""

    def __init__(self, armed: set[KillPoint], state_dir: Path) -> None:
        self.armed = armed
        self.state_dir = state_dir

    @classmethod
    def from_env(cls, default_state_dir: Path) -> KillPoints:
        """Parse `AIR_KILL_POINTS`; an unknown name is an error, not a silent no-op."""
        names = [n.strip() for n in os.environ.get(ENV_POINTS, "").split(",") if n.strip()]
        unknown = [n for n in names if n not in KillPoint.__members__]
        if unknown:
            raise ValueError(
                f"{ENV_POINTS}: unknown kill point(s) {', '.join(unknown)}; "
                f"known: {', '.join(KillPoint.__members__)}"
            )
        state = Path(os.environ.get(ENV_STATE) or default_state_dir / ".killpoints")
        return cls({KillPoint(n) for n in names}, state)

    def fired(self, point: KillPoint) -> bool:
        return (self.state_dir / point.value).exists()

    def reach(self, point: KillPoint) -> None:
        """Die here if `point` is armed and has not fired yet."""
        if point not in self.armed or self.fired(point):
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        write_durably(self.state_dir / point.value, f"{os.getpid()}\n".encode())
        fsync_dir(self.state_dir)
        message = f"[KILL POINT] {point.value}"
        log.critical(message)
        print(message, file=sys.stderr, flush=True)
        os._exit(EXIT_CODE)
