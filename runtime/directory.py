"""Where nodes are: node id -> gRPC address, from the cluster file and the command line."""

from __future__ import annotations

from pathlib import Path

from contracts.activity_models import Peer
from contracts.errors import UserError
from runtime.cluster_file import ClusterFile, load_cluster
from runtime.tls import TlsError, TlsFiles


class NodeDirectory:
    """Node addresses. The cluster file is read on every lookup, so nodes added later appear."""

    def __init__(self, cluster_file: Path | None = None, nodes: dict[int, str] | None = None):
        self.cluster_file = cluster_file
        self.fixed = dict(nodes or {})

    def all(self) -> list[Peer]:
        nodes = dict(self.fixed)
        if (file := self._file()) is not None:
            for n in file.nodes:
                nodes.setdefault(n.id, n.address)
        return [Peer(node_id=i, address=a) for i, a in sorted(nodes.items())]

    def localities(self) -> dict[int, list[str]]:
        """Each node's locality as the cluster file names it (none for a node it does not)."""
        file = self._file()
        return {n.id: n.locality for n in file.nodes if n.locality} if file is not None else {}

    def tls(self) -> TlsFiles | None:
        """The client side of the nodes' mutual TLS, if the cluster file has one."""
        try:
            file = self._file()
        except UserError as e:
            raise TlsError(str(e)) from e
        return file.tls if file is not None else None

    def _file(self) -> ClusterFile | None:
        if self.cluster_file is None or not self.cluster_file.exists():
            return None
        return load_cluster(self.cluster_file)
