"""The region store: at-most-once apply, the conflict rule, batching by whole seqs, snapshots."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from node.store import GapError, OriginBatch, Store, applied_vector, digest, fetch_origin


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store.db", sync="normal")


def test_local_writes_take_consecutive_seqs_in_one_commit(store: Store) -> None:
    seqs = store.write_local(1, [[("a", 1, 1.0)], [("a", 2, 2.0), ("b", 1, 3.0)]])
    assert seqs == [1, 2]
    assert store.write_local(1, [[("c", 1, 0.0)]]) == [3]
    assert store.applied == {1: 3}


def test_remote_batches_apply_at_most_once(store: Store) -> None:
    batch = OriginBatch(after=0, upto=2, seqs=[1, 2], rows=[("a", 1, 1.0), ("a", 2, 2.0)])
    assert store.apply_remote(2, batch) == 2
    resent = OriginBatch(after=1, upto=3, seqs=[2, 3], rows=[("a", 2, 99.0), ("a", 3, 3.0)])
    assert store.apply_remote(2, resent) == 3
    conn = store.reader()
    rows = conn.execute("SELECT ts, value FROM points ORDER BY ts").fetchall()
    assert rows == [(1, 1.0), (2, 2.0), (3, 3.0)]  # seq 2 was not applied a second time


def test_a_batch_after_a_gap_is_refused(store: Store) -> None:
    with pytest.raises(GapError, match="only 0 is applied"):
        store.apply_remote(2, OriginBatch(after=5, upto=6, seqs=[6], rows=[("a", 1, 1.0)]))
    assert store.applied == {}


def test_larger_origin_and_seq_wins_whatever_the_arrival_order(tmp_path: Path) -> None:
    a = OriginBatch(after=0, upto=1, seqs=[1], rows=[("k", 1, 1.0)])
    b = OriginBatch(after=0, upto=1, seqs=[1], rows=[("k", 1, 2.0)])
    first = Store(tmp_path / "1.db")
    first.apply_remote(1, a)
    first.apply_remote(2, b)
    second = Store(tmp_path / "2.db")
    second.apply_remote(2, b)
    second.apply_remote(1, a)
    assert digest(first.reader()) == digest(second.reader())
    assert first.reader().execute("SELECT value FROM points").fetchall() == [(2.0,)]


def test_fetch_sends_whole_seqs_and_skips_overwritten_ones(store: Store) -> None:
    store.write_local(1, [[("a", t, 0.0) for t in range(3)], [("b", 0, 0.0)], [("a", 0, 9.0)]])
    conn = store.reader()
    first = fetch_origin(conn, 1, after=0, limit=2)
    assert (first.upto, first.seqs) == (1, [1, 1])  # seq 1 lost point a/0 to seq 3
    rest = fetch_origin(conn, 1, after=first.upto, limit=10)
    assert (rest.after, rest.upto, rest.seqs) == (1, 3, [2, 3])
    assert fetch_origin(conn, 1, after=3, limit=10).upto == 3  # nothing new


def test_a_seq_larger_than_the_limit_is_sent_whole(store: Store) -> None:
    store.write_local(1, [[("a", t, 0.0) for t in range(5)]])
    batch = fetch_origin(store.reader(), 1, after=0, limit=2)
    assert (batch.upto, len(batch.rows)) == (1, 5)


def test_a_held_view_stays_the_state_it_was_taken_at(store: Store, tmp_path: Path) -> None:
    """The main file, read while the view is held, is the store as of the view, with its
    applied vector; writes after it, checkpointed or not, stay out of it until it is released."""
    store.write_local(1, [[("a", 1, 1.0)], [("a", 2, 2.0)]])
    expected = digest(store.reader())
    view = store.hold_view()
    for t in range(3, 3000):  # enough to trigger automatic checkpoints
        store.write_local(1, [[("a", t, float(t))]])
    store._writer.execute("PRAGMA wal_checkpoint(PASSIVE)")
    (tmp_path / "copy.db").write_bytes(view.path.read_bytes()[: view.size])
    view.release()
    copy = sqlite3.connect(tmp_path / "copy.db")
    assert applied_vector(copy) == {1: 2}
    assert digest(copy) == expected
    store.hold_view().release()  # released, later checkpoints reach the file again
    assert applied_vector(store.reader()) == {1: 2999}


def test_reopened_store_resumes_its_seqs(tmp_path: Path) -> None:
    Store(tmp_path / "s.db").write_local(4, [[("a", 1, 1.0)]])
    assert Store(tmp_path / "s.db").write_local(4, [[("a", 2, 1.0)]]) == [2]
