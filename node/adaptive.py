"""The adaptive transfer limit (`--transfer-rate-limit auto`, the default): snapshots as fast
as they go while this node's user writes stay quick, and slower as soon as they do not. (Only
snapshots: the stream of new writes is never slowed by it, see `node.throttle.Throttles`.)

Each tick it looks at the latencies of the user writes this node committed in it. Their
baseline is the lowest tick median seen in the last minutes (a quiet moment: LEDBAT's base
delay). When a tick's p90 is above TARGET times that baseline while snapshots were sent, the
limit drops to BACKOFF of what they actually sent; otherwise it grows by a quarter, and above
CEILING it is lifted. (The p90, not the p99: of a tick's few dozen writes the p99 is the
slowest one, which a busy core alone makes slow; the p99 over many ticks is what it keeps
down.) A tick without enough writes says nothing about them: the limit grows. While writes
come and no snapshot is sent, it keeps the limit it learned, or takes START if it had none:
a snapshot then begins at a pace and grows (a first tick at full speed had been most of the
slow writes of a whole snapshot). The fixed limits of other systems (IoTDB 32-48 MiB/s,
CockroachDB 32 MiB/s) are a guess made once for every machine.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

TICK_S = 0.25
TARGET = 2.5  # a tick's p90 may reach this many times the baseline median
FLOOR = 2e6  # bytes/s: a transfer always moves
CEILING = 2e9  # bytes/s: above this, no limit
START = 32 * 2**20  # bytes/s: the anchors' fixed default (CockroachDB, IoTDB), grown from
GROWTH = 1.25
BACKOFF = 0.7
MIN_WRITES = 5  # fewer writes in a tick: no verdict on them
BASELINE_TICKS = int(300 / TICK_S)  # the baseline remembers five minutes


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


@dataclass
class AdaptiveRate:
    """The limit for the next tick from the last one's write latencies and bytes sent."""

    rate: float | None = None  # bytes/s; None: no limit
    _medians: deque[float] = field(default_factory=lambda: deque(maxlen=BASELINE_TICKS))

    @property
    def baseline(self) -> float | None:
        return min(self._medians) if self._medians else None

    def next(self, latencies: list[float], sent: int, seconds: float) -> float | None:
        if len(latencies) >= MIN_WRITES:
            self._medians.append(statistics.median(latencies))
            baseline = self.baseline
            assert baseline is not None
            if not sent:  # no verdict on sending; the next snapshot starts at a pace
                self.rate = self.rate or START
                return self.rate
            if p90(latencies) > TARGET * baseline:
                actual = sent / seconds
                self.rate = min(CEILING, max(FLOOR, BACKOFF * min(actual, self.rate or actual)))
                return self.rate
        if self.rate is not None:
            self.rate = self.rate * GROWTH
            if self.rate > CEILING:
                self.rate = None
        return self.rate
