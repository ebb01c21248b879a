"""The consistency check's reads, in a helper process at a low CPU priority.

Hashing a range is CPU work in Python. In the node's own process it shares the GIL with the
event loop that serves the writes, so a write arriving during a range waits for it; in a
process of its own under SCHED_IDLE (Linux; niced elsewhere), the lowest priority there is, it
runs only on a core nothing else wants. (Measured: no better than nice alone on two virtual
cores, where any use of the other core raises the writes' tail alike; BENCHMARKS.md.) Being a
process of its own, it holds no lock the node's threads wait for (not the GIL), so starving it
delays only the check, which its CPU bound paces anyway. The helper
starts with the node's first check (an idle node runs none), is spawned rather than forked (it
inherits no socket of the node's), and dies with the node.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sqlite3
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import grpc

from node.check import RangeReport, RangeRequest, check_range
from node.errors import NodeError
from runtime.parent_death import die_with

HELPER_NICE = 10  # below the node's own threads: on busy cores the writes go first


def lowest_priority() -> None:
    """This process runs only when nothing else would (SCHED_IDLE), or niced where there is no
    such policy."""
    os.nice(HELPER_NICE)
    if hasattr(os, "SCHED_IDLE"):  # any process may lower its own policy to it
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def _start_helper(node_pid: int) -> None:
    """In the helper: the lowest priority, and death with the node (even by SIGKILL)."""
    die_with(node_pid)
    lowest_priority()


def read_range(path: str, request: RangeRequest) -> RangeReport:
    """One range of the store at `path`, read-only (a store deleted meanwhile is an error, never
    an empty file created in its place)."""
    uri = f"{Path(path).resolve().as_uri()}?mode=ro"  # as_uri: any character in the path
    conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=10000")
        return check_range(conn, request)
    finally:
        conn.close()


class CheckReader:
    """The helper process, started at the first read, started again if it died."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    async def read(self, path: Path, request: RangeRequest) -> RangeReport:
        """Read-only, so a retry after any failure is safe."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_helper,
                initargs=(os.getpid(),),
            )
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._pool, read_range, str(path), request
            )
        except BrokenProcessPool:
            self.close()  # the next read starts another helper
            raise NodeError(
                grpc.StatusCode.UNAVAILABLE,
                "the check's reader process died mid-range; read the range again",
            ) from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
