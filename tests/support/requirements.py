"""What a test needs from the machine: skipped with the reason on a developer's machine,
failed under CI=true, where .ci/run installs it (a skip there would hide a missing install)."""

from __future__ import annotations

import os

import pytest


def require(missing: str | None) -> None:
    """Go on when `missing` is None; else skip (or, under CI=true, fail) saying what lacks."""
    if missing is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{missing} (under CI=true .ci/run installs it: its absence is a failure)")
    pytest.skip(missing)
