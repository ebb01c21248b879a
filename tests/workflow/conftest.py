from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client

from client import connection
from stack.processes import TemporalServer


@pytest.fixture
async def client(temporal_server: TemporalServer) -> AsyncIterator[Client]:
    """A client of the session's dev server."""
    yield await connection.connect(connection.local(temporal_server.address))
