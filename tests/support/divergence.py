"""A replica made to diverge the way a disk or a bug would: its store file changed on disk behind
its node's back (a test hook, never a production path)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.support.cluster import Cluster

CHANGED = "UPDATE points SET value = value + 1 WHERE series = 'kept' AND ts = 7"
DELETED = "DELETE FROM points WHERE series = 'kept' AND ts = 8"
# an extra point as settled as the rest: node 1's first write
ADDED = "INSERT INTO points (series, ts, value, origin, seq) VALUES ('kept', 1000, 1.0, 1, 1)"


def corrupt(cluster: Cluster, node: int, region: int, sql: str, *params: object) -> None:
    """Change a replica's store on disk, behind its node's back."""
    path: Path = cluster.region_dir(node, region) / "store.db"
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        assert conn.execute(sql, params).rowcount == 1, sql
    finally:
        conn.close()
