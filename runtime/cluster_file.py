"""cluster.json, the one description of where a stack's Temporal server, UI and nodes are:
`airctl up` writes it, the worker reads its nodes from it, airctl and the tests read it."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from contracts.errors import UserError
from contracts.ids import TASK_QUEUE
from runtime.tls import TlsFiles


class NodeEntry(BaseModel):
    id: int
    address: str
    # where the node stands (its --locality tiers): what the planners know of a node that
    # does not answer (one that answers reports its own)
    locality: list[str] = Field(default_factory=list)


class ClusterFile(BaseModel):
    # unset in a cluster file written by hand for a real cluster: the connection then comes
    # from flags or the SDK's environment configuration (client/connection.py)
    temporal_address: str | None = None
    namespace: str | None = None
    # written by `airctl up`: a local dev server, reached with the flags and this file only
    # (the SDK's environment configuration, perhaps a prod profile, is not applied)
    local: bool = False
    ui_url: str = ""
    task_queue: str = TASK_QUEUE
    nodes: list[NodeEntry]
    tls: TlsFiles | None = None  # the client side of the nodes' mutual TLS, when they use it
    # written by `airctl up --hosts`: the state file of the stack's test hosts, by which
    # `airctl fault` finds them (absent: the nodes are on loopback, no fault can be made)
    hosts: Path | None = None

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


def load_cluster(path: Path) -> ClusterFile:
    if not path.exists():
        raise UserError(f"no stack running: {path} does not exist (start one with `airctl up`)")
    try:
        return ClusterFile.model_validate_json(path.read_text())
    except ValidationError as e:
        raise UserError(f"{path} is not a valid cluster file: {e.errors()[0]['msg']}") from e
