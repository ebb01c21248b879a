"""One range of a replica's keys, read for the consistency check.

Replicas under write load rarely stand at the same applied vector, and a key keeps only its
latest value, so no replica can be read "as of" another's vector. What makes them comparable:
a key's winner is the largest (origin, seq) written to it, whatever the order of arrival. Take
a vector `settled` that every replica has applied (the componentwise minimum of theirs). If a
replica's winner for a key is at or below `settled`, every replica has applied that write, and
none has applied a larger one at or below `settled` that the first has not; so every replica
whose winner is also settled holds the same one. A winner above `settled` is a write in flight:
counted, not compared. Hashing the settled points of a range in key order therefore gives
equal hashes on healthy replicas under any load, and a point missing, extra or changed on one
replica changes its hash (the check then diffs that range's keys).

Each call reads one range in one short read transaction, never the whole store at once, and
reports the CPU it took: on a node whose cores are shared, CPU is what a check takes from the
writes beside it, more than disk (see BENCHMARKS.md).
"""

from __future__ import annotations

import hashlib
import sqlite3
import struct
import time
from dataclasses import dataclass, field

from node.store import applied_vector

POINT_BYTES = 32  # a point's fixed fields as stored (timestamp, value, origin, seq)

Key = tuple[str, int]
Point = tuple[str, int, float, int, int]  # series, timestamp, value, origin, seq


@dataclass(frozen=True)
class RangeRequest:
    settled: dict[int, int]
    after: Key | None  # None: from the first key
    until: Key | None  # None: to the last key
    limit: int  # points read at most; 0: no limit
    list_points: bool


@dataclass
class RangeReport:
    hash: str
    settled: int
    unsettled: int
    more: bool
    last: Key | None
    bytes_read: int
    applied: dict[int, int]
    points: list[Point] = field(default_factory=list)
    cpu_s: float = 0.0  # this thread's CPU for the range: what the check's CPU bound counts


def check_range(conn: sqlite3.Connection, request: RangeRequest) -> RangeReport:
    """Hash the settled points of one range of keys, in one read transaction; with the CPU
    seconds this thread spent on it, which the check paces by as well as by bytes."""
    cpu_began = time.thread_time()
    conditions: list[str] = []
    params: list[str | int] = []
    if request.after is not None:
        conditions.append("(series, ts) > (?, ?)")
        params.extend(request.after)
    if request.until is not None:
        conditions.append("(series, ts) <= (?, ?)")
        params.extend(request.until)
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    limit = f"LIMIT {int(request.limit)}" if request.limit > 0 else ""
    sql = f"SELECT series, ts, value, origin, seq FROM points {where} ORDER BY series, ts {limit}"
    h = hashlib.sha256()
    update, pack, settled = h.update, struct.Struct("<qdiq").pack, request.settled.get
    report = RangeReport("", 0, 0, False, None, 0, {})
    conn.execute("BEGIN")
    try:
        report.applied = applied_vector(conn)
        rows = conn.execute(sql, params).fetchall()
    finally:
        conn.execute("COMMIT")
    for series, ts, value, origin, seq in rows:  # outside the transaction: rows are in memory
        report.bytes_read += len(series)
        if seq > settled(origin, 0):
            report.unsettled += 1
            continue
        report.settled += 1
        update(series.encode())
        update(b"\0")
        update(pack(ts, value, origin, seq))
    report.bytes_read += POINT_BYTES * len(rows)
    report.more = request.limit > 0 and len(rows) == request.limit
    report.last = rows[-1][:2] if rows else None
    if request.list_points:
        report.points = rows
    report.hash = h.hexdigest()
    report.cpu_s = time.thread_time() - cpu_began
    return report
