"""Start, kill and restart `airnode` processes (for tests, benchmarks and the local stack)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from node.__main__ import READY


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class NodeProcess:
    """One node as a child process, its output appended to `<data_dir>.log`."""

    def __init__(
        self,
        node_id: int,
        data_dir: Path,
        port: int | None = None,
        *,
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.node_id = node_id
        self.data_dir = data_dir
        self.port = port or free_port()
        self.env = env or {}
        self.extra_args = extra_args or []
        self.log_path = data_dir.with_name(data_dir.name + ".log")
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, *, wait: bool = True, timeout: float = 30.0) -> NodeProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        cmd = [
            sys.executable, "-m", "node",
            "--id", str(self.node_id),
            "--listen", self.address,
            "--data-dir", str(self.data_dir),
            *self.extra_args,
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
            )
        if wait:
            self.wait_ready(timeout)
        return self

    def output(self) -> str:
        """What this process printed since its last start."""
        with open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            return f.read().decode(errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> None:
        ready = READY.format(id=self.node_id, address=self.address)
        deadline = time.monotonic() + timeout
        while ready not in self.output():
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"node {self.node_id} exited during start:\n{self.output()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"node {self.node_id} not ready in {timeout}s:\n{self.output()}")
            time.sleep(0.02)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: no cleanup, as a crash."""
        self._signal(signal.SIGKILL)

    def terminate(self, timeout: float = 15.0) -> int:
        self._signal(signal.SIGTERM, timeout)
        assert self.proc is not None
        return self.proc.returncode

    def _signal(self, sig: signal.Signals, timeout: float = 15.0) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(sig)
            self.proc.wait(timeout)
