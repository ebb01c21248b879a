"""The worker and airctl reach Temporal over mTLS, and a client without the right cert cannot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from client import connection
from contracts.models import MigrationInput, MigrationResult
from stack.certs import Authority
from stack.processes import WorkerProcess
from tests.support.stack import Stack
from tests.support.tls_proxy import TlsProxy
from workflows.migration import RegionMigrationWorkflow

REGION = 61


@pytest.fixture
async def secured(stack: Stack, tmp_path: Path) -> AsyncIterator[tuple[str, Authority]]:
    """A TLS front (client certificates required) to the test's Temporal server."""
    ca = Authority.create("temporal test CA")
    proxy = TlsProxy(stack.temporal_address, ca.write(tmp_path / "front", "temporal"))
    address = await proxy.start()
    try:
        yield address, ca
    finally:
        await proxy.close()


async def test_a_worker_on_mtls_runs_a_migration(
    stack: Stack, secured: tuple[str, Authority], tmp_path: Path
) -> None:
    address, ca = secured
    files = ca.write(tmp_path / "worker-tls", "worker")
    for i in (1, 2, 3, 4):
        stack.cluster.add_node(i)
    await stack.cluster.create_region(REGION, [1, 2, 3])
    stack.write_cluster_file()
    worker = WorkerProcess(
        "tls-worker",
        tmp_path / "tls-worker.log",
        address,
        stack.cluster_file,
        tmp_path / "tls-worker-state",
        extra_args=[
            "--task-queue", stack.task_queue,
            "--tls-ca", str(files.ca), "--tls-cert", str(files.cert), "--tls-key", str(files.key),
        ],
    )  # fmt: skip
    stack.workers["tls-worker"] = worker
    await asyncio.to_thread(worker.start)  # the front serves on this event loop meanwhile
    assert f"{address} (namespace default, mTLS)" in worker.output()

    handle = await stack.start(
        RegionMigrationWorkflow.run, MigrationInput(region=REGION, from_node=1, to_node=4)
    )
    result = await handle.result()
    assert isinstance(result, MigrationResult) and result.remove is not None and result.remove.clean

    # the same front, with the right certificate, serves a client of our own
    flags = connection.TemporalFlags(
        address=address, tls_ca=files.ca, tls_cert=files.cert, tls_key=files.key
    )
    client = await connection.connect(connection.resolve(flags, environ={}))
    described = await client.get_workflow_handle(handle.id).describe()
    assert described.status is not None and described.status.name == "COMPLETED"


@pytest.mark.parametrize("who", ["no client certificate", "a certificate from another CA"])
async def test_a_client_without_the_right_certificate_is_refused(
    secured: tuple[str, Authority], tmp_path: Path, who: str
) -> None:
    address, ca = secured
    if who == "no client certificate":
        (tmp_path / "ca.pem").write_bytes(ca.pem)
        flags = connection.TemporalFlags(address=address, tls_ca=tmp_path / "ca.pem")
    else:
        stranger = Authority.create("someone else").write(tmp_path / "stranger", "intruder")
        flags = connection.TemporalFlags(  # trusts the right server, is not trusted by it
            address=address,
            tls_ca=ca.write(tmp_path / "right", "unused").ca,
            tls_cert=stranger.cert,
            tls_key=stranger.key,
        )
    with pytest.raises(RuntimeError) as refused:
        await connection.connect(connection.resolve(flags, environ={}))
    assert "Failed client connect" in str(refused.value), refused.value
