"""`airctl up`: the Temporal dev server, the nodes and the workers, in the foreground, kept up.

A worker or node that dies is started again (stack/supervisor.py); Ctrl-C, SIGTERM and SIGHUP
(a closed terminal) stop everything; and since each process dies with the `airctl` that started
it, not even a SIGKILL of `airctl up` leaves one behind holding its port.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

from client.connection import DEFAULT_NAMESPACE
from contracts.errors import UserError
from runtime.cluster_file import ClusterFile, NodeEntry
from runtime.identity import node_name
from runtime.tls import TlsFiles
from stack.certs import CLIENT_NAME, issue_all, tls_paths
from stack.processes import (
    ManagedProcess,
    NodeProcess,
    TemporalServer,
    WorkerProcess,
    free_ports,
    reserve,
)
from stack.supervisor import Supervisor


class LocalWorker(WorkerProcess):
    """The stack's worker: it reaches the dev server by its flags alone, so the shell's
    TEMPORAL_* settings (a prod profile, an API key) are not passed to it."""

    def environment(self) -> dict[str, str]:
        inherited = super().environment()
        return {k: v for k, v in inherited.items() if not k.startswith("TEMPORAL_")}


class LocalStack:
    """Everything a demo or a developer needs, under one data directory (resumable)."""

    def __init__(
        self,
        data_dir: Path,
        nodes: int = 4,
        temporal_port: int = 7233,
        ui_port: int = 8233,
        base_port: int = 50051,
        cluster_file: Path | None = None,
        node_args: list[str] | None = None,
        tls: bool = False,
        workers: int = 1,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.cluster_file = (cluster_file or data_dir / "cluster.json").resolve()
        # throwaway certificates, made anew by each start: every process starts with them
        self.tls_dir = self.data_dir / "tls" if tls else None
        reserve([temporal_port, ui_port, *range(base_port, base_port + nodes)])
        self.temporal = TemporalServer(self.data_dir / "temporal.db", temporal_port, ui_port)
        # every node and worker serves Prometheus metrics, on ports free now (a file-based
        # discovery file lists them, so Prometheus follows whichever they are)
        names = [f"node{i}" for i in range(1, nodes + 1)] + (
            ["worker"] if workers == 1 else [f"worker-{i}" for i in range(1, workers + 1)]
        )
        self.metrics = dict(zip(names, free_ports(len(names)), strict=True))
        self.nodes = [
            NodeProcess(
                i,
                self.data_dir / f"node{i}",
                base_port + i - 1,
                extra_args=[*(node_args or []), *self._metrics_args(f"node{i}")],
                tls=self._tls(node_name(i)),
            )
            for i in range(1, nodes + 1)
        ]
        self.workers = [
            LocalWorker(
                name,
                self.data_dir / f"{name}.log",
                self.temporal.address,
                self.cluster_file,
                self.data_dir / f"{name}-state",
                extra_args=["--identity", name, "--make-current", *self._metrics_args(name)],
            )
            for name in names[nodes:]
        ]
        for process in self.processes():
            process.die_with_parent = True
        self.supervisor = Supervisor(self.processes())
        self.config = ClusterFile(
            temporal_address=self.temporal.address,
            namespace=DEFAULT_NAMESPACE,
            local=True,
            ui_url=self.temporal.ui_url,
            nodes=[NodeEntry(id=n.node_id, address=n.address) for n in self.nodes],
            tls=self._tls(CLIENT_NAME),  # for airctl and the worker
        )

    def _metrics_args(self, name: str) -> list[str]:
        return ["--metrics-port", str(self.metrics[name])]

    @property
    def targets_file(self) -> Path:
        """Prometheus file-based discovery of the stack's metrics, beside the cluster file."""
        return self.cluster_file.with_name("prometheus-targets.json")

    def write_targets(self) -> None:
        groups = [
            {
                "targets": [f"127.0.0.1:{port}"],
                "labels": {
                    "job": "airnode" if name.startswith("node") else "air-worker",
                    "instance": name,
                },
            }
            for name, port in self.metrics.items()
        ]
        tmp = self.targets_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups, indent=2) + "\n")
        tmp.replace(self.targets_file)

    def _tls(self, name: str) -> TlsFiles | None:
        return tls_paths(self.tls_dir, name) if self.tls_dir is not None else None

    @property
    def worker(self) -> LocalWorker:
        return self.workers[0]

    def processes(self) -> list[ManagedProcess]:
        return [self.temporal, *self.nodes, *self.workers]

    def start(self) -> None:
        """Start everything (stopping what started if anything fails), then the cluster file."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.tls_dir is not None:
            issue_all(self.tls_dir, [n.node_id for n in self.nodes])
        self.config.save(self.cluster_file)  # the worker reads it for node addresses
        self.write_targets()
        try:
            self.temporal.start()
            for node in self.nodes:
                node.start()
            for worker in self.workers:
                worker.start()
        except (RuntimeError, TimeoutError) as e:
            self.stop()
            raise UserError(
                f"the stack did not start: {str(e).splitlines()[0]} (logs in {self.data_dir})"
            ) from e

    def stop(self) -> None:
        for process in reversed(self.processes()):
            process.terminate()
        self.cluster_file.unlink(missing_ok=True)
        self.targets_file.unlink(missing_ok=True)

    def run_until_signalled(self) -> None:
        """Keep everything up until Ctrl-C, SIGTERM or SIGHUP."""
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda *_: stop.set())
        while not stop.wait(0.25):
            self.supervisor.check()
