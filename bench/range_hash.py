"""Where a check's time goes on one node: hashing a store's ranges as `node/check.py` does,
beside fetching the same rows into Python and beside building the hashed text inside SQLite.

One store of `--points` points (100 series, two origins), read in ranges of 5,000 keys:
- `check_range`: the node's code (fetch, settled filter and sha256 in Python);
- `fetch_only`: the same rows fetched and dropped, the floor of any hashing done in Python;
- `sql_quote`: the settled rows' text built by SQLite (`quote()` keeps every double exact)
  and concatenated there (`group_concat`), then one sha256 call per range;
- `cat`: the store file read to /dev/null, the disk floor (page cache warm).
It also counts doubles that `printf('%!.17g')`, the faster text, does not give back exactly.
Run: `python bench/range_hash.py [--points 100000]`; prints one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts.check import RANGE_POINTS
from node.check import RangeRequest, check_range
from node.store import Store

Key = tuple[str, int]
SETTLED = {1: 10**12, 2: 10**12}
_RANGE = "FROM points {where} ORDER BY series, ts LIMIT {limit}"


def fill(path: Path, points: int) -> None:
    store = Store(path, sync="normal")
    conn = store.reader()
    rng = random.Random(0)
    rows = [(f"s{t % 100}", t, rng.uniform(-1e6, 1e6), 1 + t % 2, t) for t in range(points)]
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO points VALUES (?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    conn.close()
    store.close()


def by_ranges(read: Callable[[Key | None], Key | None]) -> float:
    """Seconds to read every range, each starting after the last key of the one before."""
    began, after = time.perf_counter(), None
    while (after := read(after)) is not None:
        pass
    return time.perf_counter() - began


def where(after: Key | None) -> tuple[str, list[object]]:
    return ("WHERE (series, ts) > (?, ?)", list(after)) if after else ("", [])


def main(points: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.db"
        fill(path, points)
        conn = sqlite3.connect(path, isolation_level=None)

        def node(after: Key | None) -> Key | None:
            report = check_range(conn, RangeRequest(SETTLED, after, None, RANGE_POINTS, False))
            return report.last if report.more else None

        def fetch(after: Key | None) -> Key | None:
            cond, params = where(after)
            sql = "SELECT series, ts, value, origin, seq " + _RANGE
            rows = conn.execute(sql.format(where=cond, limit=RANGE_POINTS), params).fetchall()
            return rows[-1][:2] if len(rows) == RANGE_POINTS else None

        def sql_quote(after: Key | None) -> Key | None:
            cond, params = where(after)
            inner = "SELECT series, ts, value, origin, seq " + _RANGE
            settled = " ".join(f"WHEN {o} THEN {s}" for o, s in SETTLED.items())
            sql = (
                "SELECT count(*), group_concat(CASE WHEN seq <= (CASE origin "
                f"{settled} ELSE 0 END) THEN quote(series) || ',' || ts || ',' || "
                "quote(value) || ',' || origin || ',' || seq END, ';') "
                f"FROM ({inner.format(where=cond, limit=RANGE_POINTS)})"
            )
            count, text = conn.execute(sql, params).fetchone()
            hashlib.sha256((text or "").encode())
            if count < RANGE_POINTS:
                return None
            last = f"SELECT series, ts {_RANGE} OFFSET {RANGE_POINTS - 1}"
            series, ts = conn.execute(last.format(where=cond, limit=1), params).fetchone()
            return series, ts

        seconds = {
            "check_range": by_ranges(node),
            "fetch_only": by_ranges(fetch),
            "sql_quote": by_ranges(sql_quote),
        }
        began = time.perf_counter()
        subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
        seconds["cat"] = time.perf_counter() - began
        rng = random.Random(1)
        doubles = [rng.uniform(-1e300, 1e300) for _ in range(20_000)]
        inexact = sum(
            float(conn.execute("SELECT printf('%!.17g', ?)", (d,)).fetchone()[0]) != d
            for d in doubles
        )
        conn.close()
    return {
        "points": points,
        "range_points": RANGE_POINTS,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "points_per_s": {k: round(points / v) for k, v in seconds.items() if k != "cat"},
        "ratios_to_check_range": {
            k: round(v / seconds["check_range"], 2) for k, v in seconds.items()
        },
        "printf_17g_inexact_of_20000": inexact,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=100_000)
    print(json.dumps(main(parser.parse_args().points), indent=2))
