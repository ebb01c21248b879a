"""The adaptive transfer limit: it drops below what was sent when user writes slow down,
grows back while they are quick or absent, is lifted above its ceiling, never stops a
transfer, and starts a snapshot at a pace while there are writes to protect."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from node.adaptive import BACKOFF, CEILING, FLOOR, GROWTH, START, TARGET, AdaptiveRate

QUICK = [0.003] * 20
SENT = 50_000_000  # bytes in a 0.25 s tick: 200 MB/s


def slow(baseline: float = 0.003) -> list[float]:
    return [baseline] * 16 + [baseline * TARGET * 2] * 4


def test_slow_writes_halve_what_was_sent_and_quick_ones_let_it_grow_back() -> None:
    adaptive = AdaptiveRate()
    assert adaptive.next(QUICK, SENT, 0.25) is None  # quick writes, unlimited: stays lifted
    limited = adaptive.next(slow(), SENT, 0.25)
    assert limited == SENT / 0.25 * BACKOFF
    grown = adaptive.next(QUICK, SENT, 0.25)
    assert grown is not None and grown > limited


def test_no_writes_let_it_grow_until_it_is_lifted() -> None:
    adaptive = AdaptiveRate(rate=FLOOR)
    rates = [adaptive.next([], SENT, 0.25) for _ in range(100)]
    assert rates[-1] is None and all(r is None or r >= FLOOR for r in rates)


def test_the_baseline_is_the_quietest_moment_remembered() -> None:
    adaptive = AdaptiveRate()
    adaptive.next([0.010] * 10, 0, 0.25)
    adaptive.next([0.002] * 10, 0, 0.25)
    adaptive.next([0.008] * 10, 0, 0.25)
    assert adaptive.baseline == 0.002
    # 8 ms medians are slow against a 2 ms baseline: a transfer sending is slowed
    assert adaptive.next([0.008] * 10, SENT, 0.25) is not None


def test_slow_writes_with_nothing_sent_are_not_the_transfers_fault() -> None:
    adaptive = AdaptiveRate()
    before = adaptive.next(QUICK, 0, 0.25)
    assert adaptive.next(slow(), 0, 0.25) == before


def test_with_writes_to_protect_a_snapshot_starts_at_a_pace_and_grows() -> None:
    adaptive = AdaptiveRate()
    assert adaptive.next(QUICK, 0, 0.25) == START  # writes, no snapshot yet: not unlimited
    assert adaptive.next(QUICK, 0, 0.25) == START  # nothing sent: nothing learned, no growth
    assert adaptive.next(QUICK, SENT, 0.25) == START * GROWTH


def test_what_it_learned_is_kept_between_snapshots_while_writes_come() -> None:
    adaptive = AdaptiveRate()
    adaptive.next(QUICK, 0, 0.25)
    learned = adaptive.next(slow(), SENT, 0.25)
    assert [adaptive.next(QUICK, 0, 0.25) for _ in range(100)] == [learned] * 100


@given(
    st.lists(
        st.tuples(st.lists(st.floats(0.0001, 1.0), max_size=30), st.integers(0, 10**9)),
        max_size=60,
    )
)
def test_the_limit_is_lifted_or_between_floor_and_ceiling(
    ticks: list[tuple[list[float], int]],
) -> None:
    adaptive = AdaptiveRate()
    for latencies, sent in ticks:
        rate = adaptive.next(latencies, sent, 0.25)
        assert rate is None or FLOOR <= rate <= CEILING
