"""Where nodes are: node id -> gRPC address, from the cluster file and the command line."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from activities.models import Peer
from node.tls import TlsError, TlsFiles


class UnknownNode(Exception):
    pass


class NodeDirectory:
    """Node addresses. The cluster file is read on every lookup, so nodes added later appear."""

    def __init__(self, cluster_file: Path | None = None, nodes: dict[int, str] | None = None):
        self.cluster_file = cluster_file
        self.fixed = dict(nodes or {})

    def all(self) -> list[Peer]:
        nodes = dict(self.fixed)
        if self.cluster_file is not None and self.cluster_file.exists():
            data = json.loads(self.cluster_file.read_text())
            for n in data.get("nodes", []):
                nodes.setdefault(int(n["id"]), str(n["address"]))
        return [Peer(node_id=i, address=a) for i, a in sorted(nodes.items())]

    def tls(self) -> TlsFiles | None:
        """The client side of the nodes' mutual TLS, if the cluster file has one."""
        if self.cluster_file is None or not self.cluster_file.exists():
            return None
        section = json.loads(self.cluster_file.read_text()).get("tls")
        try:
            return TlsFiles.model_validate(section) if section else None
        except ValidationError as e:
            raise TlsError(f"{self.cluster_file}: bad tls section: {e.errors()[0]['msg']}") from e

    def get(self, node_id: int) -> Peer:
        for peer in self.all():
            if peer.node_id == node_id:
                return peer
        known = ", ".join(str(p.node_id) for p in self.all()) or "none"
        raise UnknownNode(f"node {node_id} is not in the cluster (known nodes: {known})")
