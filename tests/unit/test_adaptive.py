"""The adaptive transfer limit, as a pure controller (latencies and bytes sent in, a limit out):
it judges the writes during a transfer against the same writes in its probe windows, so a
foreground slow on its own does not hold the transfer back; latency that rises with the rate
makes it back off in proportion; the floor holds; it recovers once the writes stop; and it is
always lifted or between floor and ceiling."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.adaptive import (
    BASELINE_WRITES,
    BOUND,
    CEILING,
    DEEPEST_CUT,
    FLOOR,
    GROWTH,
    PROBE_EVERY,
    RAMP_GROWTH,
    SETTLE_TICKS,
    START,
    TICK_S,
    AdaptiveRate,
    Limit,
)

CAPACITY = 200e6  # bytes/s a snapshot goes at with no limit
QUICK = [0.003] * 20
SENT = int(CAPACITY * TICK_S)

# The latencies of one tick's writes, given the rate the snapshot went at in it (0: none sent)
Foreground = Callable[[float], list[float]]


def drive(adaptive: AdaptiveRate, ticks: int, foreground: Foreground) -> list[Limit]:
    """`ticks` ticks of a snapshot sent as fast as the limit lets it (CAPACITY at most)."""
    limit, limits = Limit(adaptive.rate), []
    for _ in range(ticks):
        rate = 0.0 if limit.paused else min(limit.rate or CAPACITY, CAPACITY)
        limit = adaptive.next(foreground(rate), int(rate * TICK_S), TICK_S)
        limits.append(limit)
    return limits


def sending(limits: list[Limit]) -> list[float]:
    """The rates of the ticks a snapshot went in (None, no limit: CAPACITY)."""
    return [min(x.rate or CAPACITY, CAPACITY) for x in limits if not x.paused]


def quiet_then(adaptive: AdaptiveRate, latency: float = 0.003) -> AdaptiveRate:
    """Some ticks of writes at `latency` and no snapshot: the baseline."""
    for _ in range(5):
        adaptive.next([latency] * 20, 0, TICK_S)
    return adaptive


def saturated(seed: int) -> Foreground:
    """A client writing at full speed: 20 ms a write (median), a heavy tail, however fast the
    snapshot goes (the transfer does not slow it)."""
    rng = random.Random(seed)
    return lambda rate: [rng.lognormvariate(-3.9, 0.6) for _ in range(30)]


def test_a_saturating_foreground_the_transfer_does_not_slow_does_not_hold_it_back() -> None:
    # A quiet spell at 1 ms a write, then the client, then a snapshot. (The limit this replaces
    # took the quiet spell as its baseline, found every tick slow and sat at its floor.)
    adaptive = quiet_then(AdaptiveRate(), 0.001)
    writer = saturated(7)
    for _ in range(10):
        adaptive.next(writer(0), 0, TICK_S)
    rates = sending(drive(adaptive, 600, writer))
    assert min(rates) >= START  # never cut
    assert sum(r == CAPACITY for r in rates) / len(rates) > 0.8  # mostly at full speed


def test_a_client_that_starts_writing_during_a_transfer_does_not_keep_it_down() -> None:
    adaptive = quiet_then(AdaptiveRate(), 0.001)
    drive(adaptive, 50, lambda rate: [0.001] * 20)
    rates = sending(drive(adaptive, 600, saturated(11)))
    later = rates[len(rates) // 4 :]
    assert sum(r == CAPACITY for r in later) / len(later) > 0.8


def test_latency_that_rises_with_the_rate_settles_near_the_bound() -> None:
    # the writes slow down in proportion to the snapshot's rate: within BOUND at 50 MB/s
    adaptive = quiet_then(AdaptiveRate())
    jitter = random.Random(3)
    per_byte = (BOUND - 1) / 50e6

    def contended(rate: float) -> list[float]:
        return [0.003 * (1 + rate * per_byte) * jitter.uniform(0.9, 1.1) for _ in range(20)]

    rates = sending(drive(adaptive, 600, contended))
    late = sorted(rates[len(rates) // 2 :])
    median = late[len(late) // 2]
    assert 35e6 < median < 70e6, median
    assert late[-1] < CAPACITY  # never lifted: at full speed the writes are far too slow


def test_a_slow_tick_cuts_what_was_sent_in_proportion_to_the_excess() -> None:
    adaptive = quiet_then(AdaptiveRate())  # baseline p90 3 ms; START
    at_start = int(START * TICK_S)
    assert adaptive.next(QUICK, at_start, TICK_S) == Limit(START)  # sending began: no verdict
    assert adaptive.next(QUICK, at_start, TICK_S) == Limit(START * RAMP_GROWTH)  # within: grows
    slower = [0.003] * 10 + [0.003 * BOUND * 1.25] * 10  # p90 1.25x the bound
    limited = adaptive.next(slower, at_start, TICK_S)  # sent less than the limit: from that
    assert limited.rate == pytest.approx(START / 1.25)
    much_slower = [0.003 * BOUND * 4] * 20  # 4x: the deepest cut, not a quarter
    cut = adaptive.next(much_slower, at_start, TICK_S).rate
    assert cut == pytest.approx(START / 1.25 * DEEPEST_CUT)


def test_the_floor_holds() -> None:
    adaptive = quiet_then(AdaptiveRate())

    def crushed(rate: float) -> list[float]:
        return [0.3 if rate else 0.003] * 20  # a hundred times slower while anything is sent

    limits = drive(adaptive, 200, crushed)
    assert all(x.rate is not None and x.rate >= FLOOR for x in limits)
    assert limits[-1].rate == FLOOR and sending(limits)[-1] == FLOOR  # and it still sends


def test_once_the_writes_stop_the_limit_grows_until_it_is_lifted() -> None:
    adaptive = quiet_then(AdaptiveRate(rate=FLOOR))
    limits = drive(adaptive, 40, lambda rate: [])
    assert limits[-1] == Limit(None)
    assert all(x.rate is None or x.rate >= FLOOR for x in limits)


def test_a_probe_window_pauses_the_snapshot_and_its_first_tick_is_not_counted() -> None:
    adaptive = quiet_then(AdaptiveRate(), 0.010)  # a baseline of 10 ms writes, then...
    settle = [0.500] * BASELINE_WRITES  # what was in flight lands: not the baseline

    def foreground(rate: float) -> list[float]:
        nonlocal settle
        if rate:
            return [0.005] * 20
        taken, settle = settle, [0.002] * BASELINE_WRITES
        return taken

    limits = drive(adaptive, PROBE_EVERY + SETTLE_TICKS + 2, foreground)
    paused = [i for i, x in enumerate(limits) if x.paused]
    assert paused == list(range(PROBE_EVERY - 1, PROBE_EVERY + SETTLE_TICKS))
    # ...the window measured 2 ms (the settling tick's 500 ms not counted): 5 ms writes while
    # sending are now too slow, and the limit, above what is sent before, is cut from that
    assert adaptive.baseline == 0.002
    assert limits[-2].rate is None or limits[-2].rate > CAPACITY
    assert limits[-1].rate == CAPACITY * max(DEEPEST_CUT, 0.002 * BOUND / 0.005)


def test_a_transfer_with_writes_and_no_baseline_probes_at_once() -> None:
    adaptive = AdaptiveRate()
    assert adaptive.next(QUICK, SENT, TICK_S).paused


def test_with_writes_to_protect_a_snapshot_starts_at_a_pace_and_grows() -> None:
    adaptive = AdaptiveRate()
    assert adaptive.next(QUICK, 0, TICK_S) == Limit(START)  # writes, no snapshot: a pace
    assert adaptive.next(QUICK, 0, TICK_S) == Limit(START)  # nothing sent: no growth
    at_start = int(START * TICK_S)
    assert adaptive.next(QUICK, at_start, TICK_S) == Limit(START)  # sending began: no verdict
    assert adaptive.next(QUICK, at_start, TICK_S) == Limit(START * RAMP_GROWTH)


def test_the_tick_a_snapshot_begins_in_is_no_verdict_however_slow() -> None:
    # its writes waited for the checkpoint that holds the store's view
    adaptive = quiet_then(AdaptiveRate())
    assert adaptive.next([0.003 * BOUND * 4] * 20, SENT // 8, TICK_S) == Limit(START)
    assert adaptive.next(QUICK, SENT, TICK_S) == Limit(START * RAMP_GROWTH)


def test_a_snapshot_doubles_its_pace_until_its_first_slow_tick_then_grows_gently() -> None:
    adaptive = quiet_then(AdaptiveRate())  # baseline p90 3 ms; START
    rates = [adaptive.next(QUICK, SENT, TICK_S).rate for _ in range(4)]
    assert rates == [START * RAMP_GROWTH**n for n in (0, 1, 2, 3)]
    slow = [0.003 * BOUND * 1.25] * 20
    cut = adaptive.next(slow, SENT, TICK_S).rate
    assert cut is not None and cut == pytest.approx(CAPACITY / 1.25)  # from what was sent
    assert adaptive.next(QUICK, SENT, TICK_S) == Limit(cut * GROWTH)
    # writes on, no snapshot: the pace it learned is kept, and the next one does not ramp
    assert adaptive.next(QUICK, 0, TICK_S) == Limit(cut * GROWTH)
    assert adaptive.next(QUICK, SENT, TICK_S) == Limit(cut * GROWTH)  # began: no verdict
    assert adaptive.next(QUICK, SENT, TICK_S) == Limit(cut * GROWTH**2)


def test_what_it_learned_is_kept_between_snapshots_while_writes_come() -> None:
    adaptive = quiet_then(AdaptiveRate())
    learned = adaptive.next([0.010] * 20, SENT, TICK_S)
    assert learned.rate is not None and learned.rate < CAPACITY
    assert [adaptive.next(QUICK, 0, TICK_S) for _ in range(100)] == [learned] * 100


@given(
    st.lists(
        st.tuples(st.lists(st.floats(0.0001, 1.0), max_size=30), st.integers(0, 10**9)),
        max_size=80,
    )
)
def test_the_limit_is_lifted_or_between_floor_and_ceiling(
    ticks: list[tuple[list[float], int]],
) -> None:
    adaptive = AdaptiveRate()
    for latencies, sent in ticks:
        limit = adaptive.next(latencies, sent, TICK_S)
        assert limit.rate is None or FLOOR <= limit.rate <= CEILING


def test_a_tick_of_few_writes_is_judged_with_the_tick_before_if_that_was_within() -> None:
    one_slow = [0.003] * 9 + [0.003 * BOUND * 2]  # ten writes: their p90 is the slowest
    alone = quiet_then(AdaptiveRate())  # baseline p90 3 ms
    alone.next(QUICK, SENT, TICK_S)  # sending began
    assert alone.next(one_slow, SENT, TICK_S).rate == START * DEEPEST_CUT  # judged alone: cut

    adaptive = quiet_then(AdaptiveRate())
    adaptive.next(QUICK, SENT, TICK_S)
    assert adaptive.next(QUICK[:10], SENT, TICK_S).rate == START * RAMP_GROWTH  # within
    assert adaptive.next(one_slow, SENT, TICK_S).rate == START * RAMP_GROWTH**2  # one of 20
    # after a cut nothing is carried: the same tick is judged alone again
    cut = START * RAMP_GROWTH**2 * DEEPEST_CUT
    assert adaptive.next([0.003 * BOUND * 4] * 20, SENT, TICK_S).rate == cut
    assert adaptive.next(one_slow, SENT, TICK_S).rate == cut * DEEPEST_CUT
