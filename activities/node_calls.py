"""How activities call nodes: typed RPCs, a refusal told from an outage, the one wait for a
node that does not answer.

Every RPC is a typed call of the generated async stub (`lambda stub: stub.SetActive(...)`),
so a reply is its message type, never `Any`. A node that refuses a request (bad argument, no
such region: runtime/refusals.py) fails the activity for good (`NodeRefused`); a node that does
not answer is retried, or waited for (`until_answered`) for a bound the workflow chose, counted
across retries by heartbeat.

Why a step's retry after a crash at any line is safe, in general: every node RPC is idempotent
(doing what is already done succeeds and reports `changed = false`), and the waits only read.
A worker that dies after the side effect and before it reports (the coordinator's kill points
are exactly there) is retried, repeats the RPC, and gets "already so". Each activity's
docstring says what is particular to it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from temporalio.exceptions import ApplicationError

from activities.keep_alive import heartbeat, heartbeat_detail
from contracts.activity_models import Peer, StepInput, StepResult
from contracts.errors import NODE_REFUSED, NOT_QUICK
from protos import air_node_pb2 as pb
from runtime.backoff import Backoff
from runtime.clients import RPC_TIMEOUT_S, NodeClients, NodeStub
from runtime.directory import NodeDirectory
from runtime.killswitch import KillPoints
from runtime.refusals import refused, unreachable

T = TypeVar("T")
Rpc = Callable[[NodeStub], Awaitable[T]]

POLL = (0.05, 1.0)  # waits poll at once, then back off from 50 ms to 1 s
# A quick try asks with a short deadline and waits this long at most before it gives up.
QUICK_RPC_TIMEOUT_S = 2.0
QUICK_PATIENCE_S = 1.0


class NodeRefused(ApplicationError):
    """A node refused a request as invalid: non-retryable, the message says why."""

    def __init__(self, node: Peer, error: grpc.aio.AioRpcError) -> None:
        super().__init__(
            f"node {node.node_id} refused: {error.details()}", type=NODE_REFUSED, non_retryable=True
        )


class NotQuick(ApplicationError):
    """A quick try would have to wait: the workflow runs the step as a regular activity."""

    def __init__(self, why: str) -> None:
        super().__init__(why, type=NOT_QUICK, non_retryable=True)


class StillDown(Exception):
    """A node did not answer for the whole patience it was given (`until_answered`)."""

    def __init__(self, error: grpc.aio.AioRpcError) -> None:
        super().__init__(error.details())
        self.error = error


async def until_answered(
    attempt: Callable[[], Awaitable[T]], patience_s: float, quick: bool, who: str
) -> T:
    """Run `attempt` again, backing off, while a node it calls (`who`, in words) does not
    answer; its result once they answer. A quick try does not wait: it raises `NotQuick`.

    `StillDown` once a node has not answered for `patience_s`. How long is heartbeated, so a
    retry (or another worker) goes on counting from the first failure instead of starting over.
    """
    backoff = Backoff(*POLL)
    down_since = heartbeat_detail("down_since")  # from an earlier attempt, if any
    while True:
        try:
            return await attempt()
        except grpc.aio.AioRpcError as e:
            if not unreachable(e):
                raise
            if quick:
                raise NotQuick(f"{who} does not answer: {e.details()}") from e
            down_since = down_since or time.time()
            if time.time() - down_since >= patience_s:
                raise StillDown(e) from e
            heartbeat({"down_since": down_since})
            await backoff.sleep()


class NodeCalls:
    """The nodes as the activities reach them: by id through the directory, over `clients`,
    with the worker's kill points around each step's side effect."""

    def __init__(
        self, directory: NodeDirectory, clients: NodeClients, killpoints: KillPoints
    ) -> None:
        self.directory = directory
        self.clients = clients
        self.killpoints = killpoints

    def stub(self, node: Peer) -> NodeStub:
        return self.clients.stub(node.address)

    async def call(self, node: Peer, rpc_call: Rpc[T]) -> T:
        """One RPC; a refusal becomes a non-retryable error, anything else a retryable one."""
        try:
            return await rpc_call(self.stub(node))
        except grpc.aio.AioRpcError as e:
            if refused(e):
                raise NodeRefused(node, e) from e
            raise

    async def step(self, step: StepInput, effect: Awaitable[T]) -> T:
        """Run the step's side effect between its kill points (armed ones kill this worker)."""
        if step.kill_before is not None:
            self.killpoints.reach(step.kill_before)
        result = await effect
        if step.kill_after is not None:
            self.killpoints.reach(step.kill_after)
        return result

    async def reachable(
        self,
        node: Peer,
        rpc_call: Rpc[T],
        skip_if_down_after_s: float | None,
        quick: bool = False,
    ) -> T | None:
        """Call until the node answers. None: it stayed unreachable for `skip_if_down_after_s`
        (None: an outage fails the attempt, which Temporal retries)."""
        if skip_if_down_after_s is None:
            return await self.call(node, rpc_call)
        try:
            return await until_answered(
                lambda: self.call(node, rpc_call),
                skip_if_down_after_s,
                quick,
                f"node {node.node_id}",
            )
        except StillDown:
            return None

    async def membership(
        self,
        node: Peer,
        rpc_call: Rpc[pb.MembershipReply],
        skip_if_down_after_s: float | None = None,
        quick: bool = False,
    ) -> StepResult:
        """A membership RPC; with `skip_if_down_after_s`, a node down that long is skipped."""
        reply = await self.reachable(node, rpc_call, skip_if_down_after_s, quick)
        if reply is None:
            return skipped(node, skip_if_down_after_s)
        return StepResult(changed=reply.changed, message=reply.message)


def deadline(step: StepInput) -> float:
    return QUICK_RPC_TIMEOUT_S if step.quick else RPC_TIMEOUT_S


def skipped(node: Peer, after_s: float | None) -> StepResult:
    return StepResult(
        skipped=True, message=f"node {node.node_id} unreachable for {after_s:.0f}s: skipped"
    )
