"""The adaptive transfer limit (`--transfer-rate-limit auto`, the default): snapshots as fast as
they go while this node's user writes stay within BOUND of what they cost with no snapshot
sent, measured now. (Only snapshots: the stream of new writes is never slowed by it, see
`node.throttle.Throttles`.)

What the writes cost without the transfer is measured beside it, in probe windows: every
PROBE_EVERY ticks of sending, the snapshots pause for SETTLE_TICKS + 1 ticks, and the writes
of the window's last tick (the first lets what was in flight land) are the baseline, with
those of ticks that sent nothing. A baseline remembered from a quiet moment (LEDBAT's base
delay) is moved by everything but the transfer: beside a client writing at full speed every
write is slower than that moment, transfer or not, so every tick looks slow and such a limit
sits at its floor through a whole migration (BENCHMARKS.md, 2026-12-07).

Each tick of sending with enough writes, their p90 against BOUND times the p90 of the newest
windows' writes: above it, the limit drops in proportion to the excess (a p90 1.25x the bound
takes a fifth off; at most half in a tick), from what was actually sent; within it, the limit
grows by GROWTH, and above CEILING it is lifted. A slow tick is acted on only against a
window at most RECHECK ticks old; against an older one, a window comes first (the foreground
may have changed since, and the pause spares it meanwhile). (The p90, not the p99: of a
tick's few dozen writes the p99 is the slowest one, which a busy core alone makes slow; the
p99 over many ticks is what it keeps down; a tick of fewer than VERDICT_WRITES is judged
with the tick before.) A tick with too few writes says nothing about them: the limit grows.
Nor does the tick sending begins in, whose writes waited for the checkpoint that holds the
store's view and whose rate is of part of a tick: the limit holds (cut there, a snapshot
crept from a few MB/s). While no snapshot is sent it keeps the limit it learned, or takes
START if it had none and writes come: a snapshot then begins at a pace and grows, doubling
each tick until its first slow one (TCP's slow start): at GROWTH alone, the climb from START
to what a busy pair of nodes sends took two seconds of a five-second snapshot (BENCHMARKS.md,
2026-12-07 evening, `bench/migrate_big.py`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

TICK_S = 0.2
BOUND = 2.0  # a tick's p90 may reach this many times the baseline's p90
# bytes/s: a transfer always moves. 4 MB/s still moves a 1 GB region in about four minutes;
# slower, a migration outlasts its operator's patience, and its snapshot holds its view of the
# store (the log kept out of checkpoints, growing with every write) for as long: a cost to the
# very writes the limit protects.
FLOOR = 4e6
CEILING = 2e9  # bytes/s: above this, no limit
START = 32 * 2**20  # bytes/s: the anchors' fixed default (CockroachDB, IoTDB), grown from
GROWTH = 1.25
RAMP_GROWTH = 2.0  # ... and until the first slow tick since it took START
DEEPEST_CUT = 0.5  # one tick takes at most half off: one slow tick is not a verdict on a rate
MIN_WRITES = 5  # fewer writes in a tick: no verdict on them, no window of them
# A tick of fewer writes is judged with the tick before's, if that was within the bound: the
# p90 of ten writes is their slowest, which one busy moment makes slow (a client at full
# speed spread over three holders leaves a sender about ten writes a tick).
VERDICT_WRITES = 20
PROBE_EVERY = 15  # ticks of sending (3 s) between probe windows: they cost ~12% of its time
# A slow tick is acted on only against a window at most this many ticks old: a client that
# starts writing at full speed as a snapshot begins is not the transfer's doing. (At 5, beside
# a busy client, a slow tick found a window too old every 2 s: the snapshot paused 20% of it.)
RECHECK = 10
SETTLE_TICKS = 1
# The baseline: the writes of the newest windows, this many at least (one window's p90 moves
# with whatever else the machine does then: 0.4 to 4 ms from one to the next, measured here),
BASELINE_WRITES = 100
WINDOWS = 6  # ... of at most this many,
WINDOW_AGE = int(30 / TICK_S)  # ... at most this many ticks old


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


@dataclass(frozen=True)
class Limit:
    """The snapshots' limit for the next tick."""

    rate: float | None  # bytes/s; None: no limit
    paused: bool = False  # a probe window: no snapshot chunk goes


@dataclass
class AdaptiveRate:
    """The limit for the next tick from the last one's write latencies and bytes sent."""

    rate: float | None = None  # bytes/s; None: no limit
    _tick: int = 0
    _windows: deque[tuple[int, list[float]]] = field(default_factory=lambda: deque(maxlen=WINDOWS))
    _since_window: int = PROBE_EVERY  # ticks since the last window: none yet, one is due
    _probe: int = 0  # ticks of the probe window under way so far (0: none)
    _sent_last: bool = False
    _ramping: bool = False  # no slow tick since the limit took START: it doubles
    _carried: list[float] = field(default_factory=list)  # the last tick's, if judged within

    @property
    def baseline(self) -> float | None:
        """The p90 of the writes of the newest windows, BASELINE_WRITES of them at least
        (None: too few, or too old)."""
        recent: list[float] = []
        for at, latencies in reversed(self._windows):
            if self._tick - at > WINDOW_AGE or len(recent) >= BASELINE_WRITES:
                break
            recent += latencies
        return p90(recent) if len(recent) >= MIN_WRITES else None

    def next(self, latencies: list[float], sent: int, seconds: float) -> Limit:
        self._tick += 1
        carried, self._carried = self._carried, []
        self._since_window += 1
        writes = len(latencies) >= MIN_WRITES
        if self._probe:
            self._probe += 1
            if self._probe <= SETTLE_TICKS + 1:
                return Limit(self.rate, paused=True)
            self._probe = 0  # the window's last tick: its writes are the baseline
            self._remember(latencies)
            return Limit(self.rate)
        sent_last, self._sent_last = self._sent_last, bool(sent)
        if not sent:
            if writes and not sent_last:  # the tick before sent nothing either: a window
                self._remember(latencies)
            if writes:  # no verdict on sending; the next snapshot starts at a pace
                if self.rate is None:
                    self.rate, self._ramping = START, True
                return Limit(self.rate)
            return self._grow()
        if not writes:
            return self._grow()
        baseline = self.baseline
        if baseline is not None and sent_last:  # the tick sending began in is no verdict
            judged = latencies if len(latencies) >= VERDICT_WRITES else carried + latencies
            allowed, observed = BOUND * baseline, p90(judged)
            if observed <= allowed:
                self._grow()
                self._carried = latencies
            elif self._since_window <= RECHECK:
                self._ramping = False
                actual, cut = sent / seconds, max(DEEPEST_CUT, allowed / observed)
                self.rate = min(CEILING, max(FLOOR, cut * min(actual, self.rate or actual)))
            else:  # slow against an older window: checked first (the pause spares the writes)
                self._probe = 1
        if self._since_window >= (RECHECK if baseline is None else PROBE_EVERY):
            self._probe = 1
        return Limit(self.rate, paused=bool(self._probe))

    def _remember(self, latencies: list[float]) -> None:
        if len(latencies) >= MIN_WRITES:
            self._windows.append((self._tick, latencies))
        self._since_window = 0

    def _grow(self) -> Limit:
        if self.rate is not None:
            self.rate = self.rate * (RAMP_GROWTH if self._ramping else GROWTH)
            if self.rate > CEILING:
                self.rate = None
        return Limit(self.rate)
