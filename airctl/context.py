"""What every airctl command works with: the cluster file, node stubs, Temporal, output."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from temporalio.client import Client
from temporalio.envconfig import ClientConnectConfig

from airctl.config import cluster_path
from airctl.display import on_terminal, print_table
from client import connection
from client.starter import VALIDATE_WITHIN_S, Started
from contracts.activity_models import ClusterDescription, Peer
from contracts.errors import UserError
from runtime.clients import NodeClients, NodeStub
from runtime.cluster_file import ClusterFile, load_cluster
from runtime.reading import describe_cluster
from runtime.tls import TlsError

W = TypeVar("W")  # a workflow class
R = TypeVar("R")  # its result


class Ctl:
    """What a command needs: the cluster file, node stubs, a Temporal client, the output mode."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json = bool(args.json)
        self.path = cluster_path(args.cluster)
        self._config: ClusterFile | None = None
        self._clients: NodeClients | None = None
        self._settings: ClientConnectConfig | None = None

    @property
    def config(self) -> ClusterFile:
        if self._config is None:
            self._config = load_cluster(self.path)
        return self._config

    @property
    def clients(self) -> NodeClients:
        """Node clients, mutual TLS when the cluster file has a TLS section."""
        if self._clients is None:
            try:
                self._clients = NodeClients(self.config.tls)
            except TlsError as e:
                raise UserError(f"{e} (named in {self.path})") from e
        return self._clients

    def run(self, command: Callable[[], Awaitable[int]]) -> int:
        """Run an async command to its exit status, then close what it opened."""

        async def go() -> int:
            try:
                return await command()
            finally:
                await self.close()

        return asyncio.run(go())

    async def close(self) -> None:
        if self._clients is not None:
            await self._clients.close()

    def stub(self, node_id: int) -> NodeStub:
        return self.clients.stub(self.config.node(node_id).address)

    async def describe(self) -> ClusterDescription:
        """Which nodes hold which regions, and where they stand, read exactly as the workflows
        read it (the cluster file's localities for the nodes that do not answer)."""
        nodes = self.config.nodes
        return await describe_cluster(
            [Peer(node_id=n.id, address=n.address) for n in nodes],
            self.clients,
            {n.id: n.locality for n in nodes if n.locality},
        )

    @property
    def temporal_settings(self) -> ClientConnectConfig:
        """How to reach Temporal: flags, the cluster file, and (unless it is local) the
        environment configuration."""
        if self._settings is None:
            try:
                self._settings = connection.resolve(
                    connection.TemporalFlags.from_args(self.args),
                    address=self.config.temporal_address,
                    namespace=self.config.namespace,
                    use_environment=not self.config.local,
                )
            except connection.BadConnectionSettings as e:
                raise UserError(str(e)) from e
        return self._settings

    async def temporal(self) -> Client:
        settings = self.temporal_settings
        try:
            return await connection.connect(settings)
        except RuntimeError as e:
            raise UserError(
                f"cannot reach Temporal at {connection.describe(settings)}: is the stack up? ({e})"
            ) from e

    def emit(self, data: Any, text: str) -> None:
        print(json.dumps(data, indent=2) if self.json else text)

    def warn(self, text: str) -> None:
        """A note beside the answer, on stderr: the answer on stdout stays parseable."""
        print(f"note: {text}", file=sys.stderr)

    def emit_table(
        self,
        data: Any,
        plain: str,
        title: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[str]],
    ) -> None:
        """JSON with --json; a table on a terminal; the plain lines anywhere else."""
        if self.json or not on_terminal(sys.stdout) or not rows:
            self.emit(data, plain)
        else:
            print_table(title, columns, rows)

    def emit_started(self, started: Started[W, R]) -> None:
        """A workflow started: its id, what it will do (or that no worker took it yet), link."""
        workflow_id = started.handle.id
        url = self.workflow_url(workflow_id)
        data = {"workflow_id": workflow_id, "plan": started.plan, "ui": url}
        self.emit(data, f"started {workflow_id}: {self.plan_text(started)}\n{url}")

    @staticmethod
    def plan_text(started: Started[W, R]) -> str:
        if started.plan is not None:
            return started.plan
        return (
            f"not validated within {VALIDATE_WITHIN_S:.0f}s: no worker has taken it yet "
            "(it runs once one does)"
        )

    def workflow_url(self, workflow_id: str) -> str:
        namespace = self.temporal_settings["namespace"]
        return f"{self.config.ui_url}/namespaces/{namespace}/workflows/{workflow_id}"
