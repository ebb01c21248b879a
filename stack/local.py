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
from stack.hosts import Host, Network
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


ZONE_NAMES = "abcdefghijklmnopqrstuvwxyz"  # then z27, z28, ...


def round_robin(nodes: int, zones: int, racks: int = 0) -> dict[int, list[str]]:
    """Nodes 1..`nodes` dealt into `zones` zones in turn (a, b, c, ...) and, with `racks`,
    into racks r1..rR within each zone in turn; none for no zones."""
    if zones <= 0:
        return {}
    found = {}
    for i in range(1, nodes + 1):
        z = (i - 1) % zones
        tiers = [f"zone={ZONE_NAMES[z] if z < len(ZONE_NAMES) else f'z{z + 1}'}"]
        if racks > 0:
            tiers.append(f"rack=r{(i - 1) // zones % racks + 1}")
        found[i] = tiers
    return found


class LocalStack:
    """Everything a demo or a developer needs, under one data directory (resumable). With a
    `network` (claimed, not yet made), the nodes and the workers run on test hosts of their
    own; the Temporal server stays on the operator host, and the workers reach it by the
    network's relay."""

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
        network: Network | None = None,
        zones: int = 0,
        racks: int = 0,
    ) -> None:
        self.network = network
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
        self.hosts = {name: self._host_of(name) for name in names}
        self.localities = round_robin(nodes, zones, racks)
        self.nodes = [
            NodeProcess(
                i,
                self.data_dir / f"node{i}",
                base_port + i - 1,
                extra_args=[
                    *(node_args or []),
                    *self._metrics_args(f"node{i}"),
                    *(["--locality", ",".join(self.localities[i])] if i in self.localities else []),
                ],
                tls=self._tls(node_name(i)),
                host=self.hosts[f"node{i}"],
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
                host=self.hosts[name],
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
            nodes=[
                NodeEntry(
                    id=n.node_id, address=n.address, locality=self.localities.get(n.node_id, [])
                )
                for n in self.nodes
            ],
            tls=self._tls(CLIENT_NAME),  # for airctl and the worker
            hosts=self.hosts_file if network is not None else None,
        )
        self._recorded_pids: dict[str, int] = {}

    def _host_of(self, name: str) -> Host | None:
        """Where the process `name` runs: every node on a host of its own, the workers on the
        worker host; all on loopback without a network."""
        if self.network is None:
            return None
        if name.startswith("worker"):
            return self.network.worker
        return self.network.node(int(name.removeprefix("node")))

    def _metrics_args(self, name: str) -> list[str]:
        args = ["--metrics-port", str(self.metrics[name])]
        host = self.hosts[name]
        if host is not None and not name.startswith("node"):  # a node serves on its --listen's
            args += ["--metrics-host", host.address]
        return args

    def _metrics_host(self, name: str) -> str:
        host = self.hosts[name]
        return host.address if host is not None else "127.0.0.1"

    @property
    def metrics_urls(self) -> dict[str, str]:
        return {
            name: f"http://{self._metrics_host(name)}:{port}/metrics"
            for name, port in self.metrics.items()
        }

    @property
    def hosts_file(self) -> Path:
        """The state of the stack's test hosts (`airctl fault` acts on them by it)."""
        return self.data_dir / "hosts.json"

    @property
    def targets_file(self) -> Path:
        """Prometheus file-based discovery of the stack's metrics, beside the cluster file."""
        return self.cluster_file.with_name("prometheus-targets.json")

    def write_targets(self) -> None:
        groups = [
            {
                "targets": [f"{self._metrics_host(name)}:{port}"],
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
        if self.network is not None:
            try:
                self.network.make()
            except BaseException:
                self.network.remove()  # frees its slot; anything made in it goes too
                raise
        if self.tls_dir is not None:
            issue_all(
                self.tls_dir,
                [n.node_id for n in self.nodes],
                {n.node_id: n.host.address for n in self.nodes if n.host is not None},
            )
        self.config.save(self.cluster_file)  # the worker reads it for node addresses
        self.write_targets()
        try:
            self.temporal.start()
            if self.network is not None:
                relay = self.network.relay_temporal(self.temporal.address)
                for worker in self.workers:
                    worker.temporal_address = relay
            for node in self.nodes:
                node.start()
            for worker in self.workers:
                worker.start()
            self.record_network()
        except (RuntimeError, TimeoutError) as e:
            self.stop()
            raise UserError(
                f"the stack did not start: {str(e).splitlines()[0]} (logs in {self.data_dir})"
            ) from e
        except BaseException:  # a Ctrl-C, a relay that cannot listen: nothing stays behind
            self.stop()
            raise

    def record_network(self) -> None:
        """Write the test hosts' state, their nodes' pids with it, when these have changed."""
        if self.network is None:
            return
        pids = {
            n.host.name: n.proc.pid
            for n in self.nodes
            if n.host is not None and n.proc is not None and n.alive()
        }
        if pids != self._recorded_pids or not self.hosts_file.exists():
            self.network.state(pids).save(self.hosts_file)
            self._recorded_pids = pids

    def stop(self) -> None:
        for process in reversed(self.processes()):
            process.terminate()
        self.cluster_file.unlink(missing_ok=True)
        self.targets_file.unlink(missing_ok=True)
        if self.network is not None:
            self.network.remove()
            self.hosts_file.unlink(missing_ok=True)

    def run_until_signalled(self) -> None:
        """Keep everything up until Ctrl-C, SIGTERM or SIGHUP."""
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda *_: stop.set())
        while not stop.wait(0.25):
            self.supervisor.check()
            self.record_network()  # a restarted node has a new pid
