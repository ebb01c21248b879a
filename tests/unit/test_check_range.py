"""One range of the consistency check on a real store, and the pacing of a check."""

from __future__ import annotations

from pathlib import Path

import pytest

from activities.check import pace
from node.check import RangeReport, RangeRequest, check_range
from node.store import OriginBatch, Store


def replica(path: Path, seqs: int) -> Store:
    """A replica that applied origin 2's writes 1..`seqs`, a point each (seq s writes key s)."""
    store = Store(path, sync="normal")
    rows = [("s", t, float(t)) for t in range(1, seqs + 1)]
    store.apply_remote(2, OriginBatch(after=0, upto=seqs, seqs=list(range(1, seqs + 1)), rows=rows))
    return store


def read(store: Store, settled: int, limit: int = 0) -> RangeReport:
    request = RangeRequest({2: settled}, after=None, until=None, limit=limit, list_points=False)
    return check_range(store.reader(), request)


def test_points_in_flight_are_counted_not_hashed(tmp_path: Path) -> None:
    behind, ahead = replica(tmp_path / "a.db", 100), replica(tmp_path / "b.db", 130)
    a, b = read(behind, settled=100), read(ahead, settled=100)
    assert a.hash == b.hash
    assert (a.settled, a.unsettled, b.settled, b.unsettled) == (100, 0, 100, 30)


def test_a_changed_point_changes_the_hash(tmp_path: Path) -> None:
    healthy, changed = replica(tmp_path / "a.db", 50), replica(tmp_path / "b.db", 50)
    changed.reader().execute("UPDATE points SET value = value + 1e-9 WHERE ts = 7")
    assert read(healthy, settled=50).hash != read(changed, settled=50).hash


def test_a_limited_range_ends_at_its_last_key_and_reports_its_cpu(tmp_path: Path) -> None:
    report = read(replica(tmp_path / "a.db", 2_000), settled=2_000, limit=500)
    assert (report.more, report.last) == (True, ("s", 500))
    assert report.bytes_read == 500 * (1 + 32)
    assert report.cpu_s > 0


@pytest.mark.parametrize(
    ("read_mb", "cpu_s", "rate", "share", "due"),
    [
        (8, 0.1, 8, 0.25, 1.0),  # the byte bound is reached first
        (1, 0.5, 8, 0.25, 2.0),  # the CPU bound is
        (1, 0.5, 0, 0.25, 2.0),  # no byte bound
        (8, 5.0, 8, 1, 1.0),  # no CPU bound
        (8, 5.0, 0, 1, 0.0),  # neither: as fast as it goes
    ],
)
def test_a_check_is_paced_by_the_bound_it_reaches_first(
    read_mb: float, cpu_s: float, rate: float, share: float, due: float
) -> None:
    assert pace(int(read_mb * 1e6), cpu_s, rate, share) == pytest.approx(due)
