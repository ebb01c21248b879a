"""cluster.json: where the stack's Temporal server, UI and nodes are."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ValidationError

from node.tls import TlsFiles
from workflows.ids import TASK_QUEUE

DEFAULT_PATH = Path(".air/cluster.json")


class UserError(Exception):
    """Something the user can fix; printed as one line, without a traceback."""


class NodeEntry(BaseModel):
    id: int
    address: str


class ClusterConfig(BaseModel):
    # unset in a cluster file written by hand for a real cluster: the connection then comes
    # from flags or the SDK's environment configuration (workflows/connection.py)
    temporal_address: str | None = None
    namespace: str | None = None
    # written by `airctl up`: a local dev server, reached with the flags and this file only
    # (the SDK's environment configuration, perhaps a prod profile, is not applied)
    local: bool = False
    ui_url: str = ""
    task_queue: str = TASK_QUEUE
    nodes: list[NodeEntry]
    tls: TlsFiles | None = None  # the client side of the nodes' mutual TLS, when they use it

    def node(self, node_id: int) -> NodeEntry:
        for n in self.nodes:
            if n.id == node_id:
                return n
        known = ", ".join(str(n.id) for n in self.nodes)
        raise UserError(f"unknown node {node_id} (the cluster has nodes {known})")

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json(indent=2) + "\n")
        tmp.replace(path)


def cluster_path(given: Path | None) -> Path:
    return given or Path(os.environ.get("AIR_CLUSTER") or DEFAULT_PATH)


def load_cluster(path: Path) -> ClusterConfig:
    if not path.exists():
        raise UserError(f"no stack running: {path} does not exist (start one with `airctl up`)")
    try:
        return ClusterConfig.model_validate_json(path.read_text())
    except ValidationError as e:
        raise UserError(f"{path} is not a valid cluster file: {e.errors()[0]['msg']}") from e


def parse_ids(text: str, what: str) -> list[int]:
    """`1,2,3` -> [1, 2, 3]: distinct ids, at least one; `what` names them in errors."""
    try:
        ids = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise UserError(f"{what} are ids like 1,2,3, not {text!r}") from e
    if not ids or len(set(ids)) != len(ids):
        raise UserError(f"{what} must be distinct ids, got {text!r}")
    return ids
