"""A worker refuses a namespace that lacks our search attributes, and says how to add them."""

from __future__ import annotations

import shlex
import subprocess
import uuid
from pathlib import Path

import pytest

from stack.processes import TemporalServer, WorkerProcess, temporal_binary


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
