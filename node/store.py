"""A region replica's durable data: points, their origins and the applied vector.

One SQLite database in WAL mode per replica. The points and the applied vector change in the
same transaction, so the vector always describes exactly the data beside it: a copy of the file
(a snapshot) is consistent with the vector stored inside it, and a crash at any instruction
leaves the last committed transaction.

Conflicts on a key `(series, timestamp)` go to the larger `(origin, seq)`; within one batch the
later point wins. The rule depends only on the writes, so every replica converges.
"""

from __future__ import annotations

import hashlib
import sqlite3
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Concatenate, Literal, ParamSpec, TypeVar

from contracts.columns import Row

SyncMode = Literal["full", "normal"]
P = ParamSpec("P")
T = TypeVar("T")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    series TEXT NOT NULL,
    ts INTEGER NOT NULL,
    value REAL NOT NULL,
    origin INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (series, ts)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS points_by_origin ON points (origin, seq);
CREATE TABLE IF NOT EXISTS applied (
    origin INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL
);
"""

_UPSERT = """
INSERT INTO points (series, ts, value, origin, seq) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (series, ts) DO UPDATE SET
    value = excluded.value, origin = excluded.origin, seq = excluded.seq
WHERE (excluded.origin, excluded.seq) >= (points.origin, points.seq)
"""

_SET_APPLIED = """
INSERT INTO applied (origin, seq) VALUES (?, ?)
ON CONFLICT (origin) DO UPDATE SET seq = excluded.seq
"""


# A checkpoint for a snapshot waits out readers of an older state this many times (10 ms each).
_CHECKPOINT_TRIES = 500


@dataclass
class HeldView:
    """A store's main file held as a consistent copy: read `size` bytes of `path`, then
    `release()`."""

    conn: sqlite3.Connection
    path: Path
    size: int

    def release(self) -> None:
        self.conn.close()  # the read ends; checkpoints go on


class GapError(Exception):
    """A transfer batch starts after the receiver's applied seq: something in between is missing."""


@dataclass(frozen=True)
class OriginBatch:
    """Surviving points of one origin with seqs in (after, upto]; `seqs` parallels `rows`."""

    after: int
    upto: int
    seqs: list[int]
    rows: list[Row]


@dataclass(frozen=True)
class Digest:
    count: int
    hash: str


def _connect(path: Path, sync: SyncMode) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={sync.upper()}")
        conn.execute("PRAGMA busy_timeout=10000")
    except BaseException:  # the log's files may not open (descriptors run out): none kept
        conn.close()
        raise
    return conn


class Store:
    """Single-writer store. Writers call from one thread at a time; readers use `query()`.

    The writer's connection is opened on its first write and closed by `rest()`: an idle store
    holds no file descriptor and little memory, so a node can hold many thousands of regions
    (each open connection holds three descriptors and about a hundred KB)."""

    FILE = "store.db"

    def __init__(self, path: Path, sync: SyncMode = "full") -> None:
        self.path = path
        self.sync = sync
        self._conn: sqlite3.Connection | None = None
        conn = _connect(path, sync)
        try:
            conn.executescript(_SCHEMA)
            self._applied = self._read_applied(conn)
        finally:
            conn.close()

    @staticmethod
    def _read_applied(conn: sqlite3.Connection) -> dict[int, int]:
        return dict(conn.execute("SELECT origin, seq FROM applied").fetchall())

    @property
    def _writer(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = _connect(self.path, self.sync)
        return self._conn

    @property
    def resting(self) -> bool:
        return self._conn is None

    def rest(self) -> None:
        """Close the writer's connection (its log checkpointed into the main file); the next
        write opens it again."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        self.rest()

    def reader(self) -> sqlite3.Connection:
        """A connection for reads, which in WAL mode never block the writer."""
        return _connect(self.path, self.sync)

    def query(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `fn` on a reader of its own, opened and closed in the calling thread.

        A reader is never shared across threads, so a caller cancelled while the query still
        runs in a worker thread leaves nothing half closed behind.
        """
        conn = self.reader()
        try:
            return fn(conn, *args, **kwargs)
        finally:
            conn.close()

    @property
    def applied(self) -> dict[int, int]:
        return dict(self._applied)

    def applied_of(self, origin: int) -> int:
        return self._applied.get(origin, 0)

    def write_local(self, origin: int, batches: Sequence[Sequence[Row]]) -> list[int]:
        """Commit user batches as this node's next seqs, all in one transaction (group commit)."""
        first = self.applied_of(origin) + 1
        seqs = list(range(first, first + len(batches)))
        params = [
            (series, ts, value, origin, seq)
            for seq, batch in zip(seqs, batches, strict=True)
            for series, ts, value in batch
        ]
        conn = self._writer
        with _transaction(conn):
            conn.executemany(_UPSERT, params)
            conn.execute(_SET_APPLIED, (origin, seqs[-1]))
        self._applied[origin] = seqs[-1]
        return seqs

    def apply_remote(self, origin: int, batch: OriginBatch) -> int:
        """Apply a sender's batch at most once; returns the applied seq of that origin.

        Points at or below the applied seq were applied before and are skipped, so a resend
        after any crash is harmless.
        """
        applied = self.applied_of(origin)
        if batch.after > applied:
            raise GapError(
                f"batch of origin {origin} starts after seq {batch.after}, "
                f"but only {applied} is applied here"
            )
        if batch.upto <= applied:
            return applied
        params = [
            (series, ts, value, origin, seq)
            for seq, (series, ts, value) in zip(batch.seqs, batch.rows, strict=True)
            if seq > applied
        ]
        conn = self._writer
        with _transaction(conn):
            conn.executemany(_UPSERT, params)
            conn.execute(_SET_APPLIED, (origin, batch.upto))
        self._applied[origin] = batch.upto
        return batch.upto

    def hold_view(self) -> HeldView:
        """The main file made a consistent copy of the store, and kept so while the view is
        held. Call it from the writer's thread: no write may commit in between.

        Every committed write is first checkpointed into the main file (the write-ahead log
        emptied), then a read transaction begins on that state. While it stays open, a
        checkpoint copies into the main file no frame newer than it, so the file stays exactly
        that state, and its bytes can be sent as they are read: no second copy on disk. New
        writes go on into the log meanwhile.
        """
        for _ in range(_CHECKPOINT_TRIES):
            busy, _, _ = self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                break
            time.sleep(0.01)  # a reader holds an older state: it ends within milliseconds
        else:
            raise RuntimeError(f"{self.path}: the log could not be checkpointed for a snapshot")
        conn = self.reader()
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM applied").fetchone()  # the read begins here
        return HeldView(conn, self.path, self.path.stat().st_size)


def fetch_origin(conn: sqlite3.Connection, origin: int, after: int, limit: int) -> OriginBatch:
    """The next surviving points of `origin` after seq `after`, whole seqs only.

    `upto` is the highest seq covered: seqs in (after, upto] with no row were overwritten.
    """
    with _transaction(conn, "BEGIN"):
        row = conn.execute("SELECT seq FROM applied WHERE origin = ?", (origin,)).fetchone()
        top = row[0] if row else 0
        found = conn.execute(
            "SELECT seq, series, ts, value FROM points "
            "WHERE origin = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            (origin, after, top, limit + 1),
        ).fetchall()
        if len(found) <= limit:
            upto = top
        else:
            upto = found[-1][0] - 1
            found = [r for r in found if r[0] <= upto]
            if not found:  # one seq larger than the limit: send it whole
                upto += 1
                found = conn.execute(
                    "SELECT seq, series, ts, value FROM points "
                    "WHERE origin = ? AND seq = ? ORDER BY series, ts",
                    (origin, upto),
                ).fetchall()
    return OriginBatch(
        after=after,
        upto=max(upto, after),
        seqs=[r[0] for r in found],
        rows=[(r[1], r[2], r[3]) for r in found],
    )


def read_range(conn: sqlite3.Connection, series: str, start: int, end: int | None) -> list[Row]:
    hi = end if end is not None else 2**63 - 1
    return conn.execute(
        "SELECT series, ts, value FROM points WHERE series = ? AND ts >= ? AND ts < ? ORDER BY ts",
        (series, start, hi),
    ).fetchall()


def digest(conn: sqlite3.Connection) -> Digest:
    """Count and sha256 of (series, timestamp, value) in key order: equal iff contents equal."""
    h = hashlib.sha256()
    count = 0
    pack = struct.Struct("<qd").pack
    with _transaction(conn, "BEGIN"):
        cursor = conn.execute("SELECT series, ts, value FROM points ORDER BY series, ts")
        while rows := cursor.fetchmany(65536):
            for series, ts, value in rows:
                h.update(series.encode())
                h.update(b"\0")
                h.update(pack(ts, value))
            count += len(rows)
    return Digest(count=count, hash=h.hexdigest())


def applied_vector(conn: sqlite3.Connection) -> dict[int, int]:
    return Store._read_applied(conn)


class _transaction:
    """BEGIN ... COMMIT, or ROLLBACK on error (the connection is in autocommit mode)."""

    def __init__(self, conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> None:
        self.conn = conn
        self.begin = begin

    def __enter__(self) -> None:
        self.conn.execute(self.begin)

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
