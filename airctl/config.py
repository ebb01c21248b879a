"""Where airctl finds the cluster file, and the ids users type."""

from __future__ import annotations

import os
from pathlib import Path

from contracts.errors import UserError

DEFAULT_PATH = Path(".air/cluster.json")


def cluster_path(given: Path | None) -> Path:
    return given or Path(os.environ.get("AIR_CLUSTER") or DEFAULT_PATH)


def parse_ids(text: str, what: str) -> list[int]:
    """`1,2,3` -> [1, 2, 3]: distinct ids, at least one; `what` names them in errors."""
    try:
        ids = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise UserError(f"{what} are ids like 1,2,3, not {text!r}") from e
    if not ids or len(set(ids)) != len(ids):
        raise UserError(f"{what} must be distinct ids, got {text!r}")
    return ids
