"""Test hosts for the partition tests: a network made for each test in its xdist process's
slot (another free one if that is taken) and removed after it, whatever the test's outcome.
Here `cluster` runs each node on its own host, so `stack` (tests/conftest.py) runs its worker
on the worker host, reaching the session's Temporal server by the network's relay."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from stack.hosts import Network, missing_requirements
from tests.support.cluster import Cluster
from tests.support.hosts import xdist_slot
from tests.support.requirements import require

NODES = 5


@pytest.fixture
def network() -> Iterator[Network]:
    require(missing_requirements())
    made = Network.claim(NODES, prefer=xdist_slot(), wait_s=60)
    try:
        yield made.make()
    finally:
        made.remove()


@pytest.fixture
async def cluster(tmp_path: Path, network: Network) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path, network=network)
    try:
        yield c
    finally:
        await c.close()
