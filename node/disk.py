"""How full this node's data disk is, and the flood watermark past which it takes no replica.

By default the disk is the filesystem under the data directory (statvfs). With a capacity
given (`airnode --disk-capacity`), the node counts that as its disk and its data directory's
bytes as used: for nodes that share a disk, and for tests. Planners keep moves off a node that
would pass their high watermark; the node itself refuses a new replica past the flood one.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from node.errors import NodeError

FLOOD_WATERMARK = 0.95  # Elasticsearch's flood stage: no new replica past it
_FRESH_S = 1.0  # a walk of the data directory is reused this long


@dataclass(frozen=True)
class DiskUsage:
    capacity: int
    used: int

    @property
    def fraction(self) -> float:
        return self.used / self.capacity if self.capacity else 0.0


class Disk:
    def __init__(
        self, data_dir: Path, capacity: int | None = None, flood: float = FLOOD_WATERMARK
    ) -> None:
        self.data_dir = data_dir
        self.capacity = capacity
        self.flood = flood
        self._walked: tuple[float, int] | None = None

    def usage(self, fresh: bool = False) -> DiskUsage:
        """The disk's size and use (a walk of the data directory up to _FRESH_S old, unless
        `fresh`)."""
        if self.capacity is None:
            st = os.statvfs(self.data_dir)
            total = st.f_blocks * st.f_frsize
            return DiskUsage(total, total - st.f_bavail * st.f_frsize)
        return DiskUsage(self.capacity, self._data_bytes(fresh))

    def check_room(self, node_id: int) -> None:
        """Refuse a new replica on a disk past the flood watermark (RESOURCE_EXHAUSTED)."""
        usage = self.usage(fresh=True)
        if usage.fraction > self.flood:
            raise NodeError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"node {node_id}'s disk is {usage.fraction:.0%} full, past its flood watermark "
                f"({self.flood:.0%}): it takes no new replica",
            )

    def _data_bytes(self, fresh: bool) -> int:
        now = time.monotonic()
        if fresh or self._walked is None or now - self._walked[0] > _FRESH_S:
            total = 0
            for root, _, files in os.walk(self.data_dir):
                for name in files:
                    try:
                        total += os.stat(os.path.join(root, name)).st_size
                    except FileNotFoundError:  # renamed or deleted meanwhile
                        continue
            self._walked = (now, total)
        return self._walked[1]
