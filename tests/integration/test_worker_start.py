"""A worker refuses a namespace that lacks our search attributes, and says how to add them;
it stops cleanly on SIGTERM, leaving its migrations to another."""

from __future__ import annotations

import asyncio
import shlex
import subprocess
import uuid
from pathlib import Path

import pytest

from contracts.models import MigrationInput, Phase
from protos import air_node_pb2 as pb
from stack.processes import TemporalServer, WorkerProcess, temporal_binary
from tests.support.cluster import HELD
from tests.support.stack import Stack
from tests.support.waiting import eventually
from workflows.migration import RegionMigrationWorkflow

REGION = 41


def temporal(server: TemporalServer, *args: str) -> None:
    subprocess.run([temporal_binary(), *args, "--address", server.address], check=True)


def test_a_namespace_without_our_search_attributes_is_refused_with_the_fix(
    temporal_server: TemporalServer, tmp_path: Path
) -> None:
    namespace = f"bare-{uuid.uuid4().hex[:8]}"
    temporal(temporal_server, "operator", "namespace", "create", "--namespace", namespace)
    (tmp_path / "cluster.json").write_text('{"nodes": []}')
    worker = WorkerProcess(
        "worker",
        tmp_path / "worker.log",
        temporal_server.address,
        tmp_path / "cluster.json",
        tmp_path / "state",
        extra_args=["--namespace", namespace],
    )
    with pytest.raises(RuntimeError, match="exited during start"):
        worker.start()
    output = worker.output()
    assert f"namespace {namespace} lacks the search attributes AirRegion (Int)" in output, output
    assert "Traceback" not in output, output

    # the command it prints is the fix: run it, and the worker starts
    fix = output.split("add them with: ", 1)[1].strip().splitlines()[0]
    temporal(temporal_server, *shlex.split(fix)[1:])
    worker.start()
    worker.terminate()


async def test_sigterm_stops_the_worker_cleanly_and_another_finishes_its_migration(
    stack: Stack,
) -> None:
    cluster = stack.cluster
    for i in (1, 2, 3):
        cluster.add_node(i)
    await cluster.create_region(REGION, [1, 2])
    await cluster.stub(1).Write(pb.WriteRequest(region=REGION, points=[pb.Point(series="a")]))
    await cluster.converged(REGION, [1, 2], count=1)
    await cluster.throttle([1, 2], HELD)  # its transfer waits until the first worker is gone
    first = stack.start_worker("first")
    handle = await stack.start(
        RegionMigrationWorkflow.run, MigrationInput(region=REGION, from_node=1, to_node=3)
    )
    await eventually(
        lambda: stack.progress(handle), lambda p: p.phase == Phase.TRANSFERRING, what="transfer"
    )

    code = await asyncio.to_thread(first.terminate)  # SIGTERM, mid-migration
    assert code == 0, first.output()
    assert "worker stopped" in first.output()
    assert "Fatal Python error" not in first.output(), first.output()

    stack.start_worker("second")
    await cluster.throttle([1, 2], 0)
    result = await handle.result()
    assert result.remove is not None and result.remove.clean, result
    ran = {
        e.workflow_task_started_event_attributes.identity
        for e in (await handle.fetch_history()).events
    } - {""}
    assert ran == {"first", "second"}, ran  # the second finished what the first began
