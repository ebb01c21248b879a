"""The writer of `airctl write` and `load`: it fails over between replicas, gives up at once
when every replica refused a write, retries a node that is down within its patience, and says
what each node answered. Without patience (a test's load through chaos) it never gives up."""

from __future__ import annotations

import time

import grpc
import pytest

from client.load import LoadWriter, WriteFailed
from protos import air_node_pb2 as pb
from runtime.clients import NodeStub

QUORUM_NOT_MET = (
    "write 1 of region 5 was applied by 1 of the 2 replicas quorum needs (nodes [1]) within "
    "4.4s; its points stay there and replicate; writing them again is harmless"
)


def error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details, None)


NO_ANSWER = error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")  # gRPC's own words
DOWN = error(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses")


class Node:
    """A node's Write: its answers in turn (None acknowledges), the last one for good."""

    def __init__(self, *answers: grpc.aio.AioRpcError | None) -> None:
        self.answers = list(answers)
        self.writes = 0

    async def Write(self, request: pb.WriteRequest, timeout: float) -> pb.WriteReply:
        assert 0 < timeout <= 5
        self.writes += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if answer is not None:
            raise answer
        return pb.WriteReply(count=len(request.columns.timestamps))


def writer(nodes: dict[int, Node], patience: float | None) -> LoadWriter:
    def stub_for(node_id: int) -> NodeStub:
        return nodes[node_id]  # type: ignore[return-value]

    return LoadWriter(stub_for, 5, sorted(nodes), batch=10, patience=patience)


async def test_a_level_every_replica_refused_fails_at_once_with_the_nodes_reason() -> None:
    nodes = {1: Node(None, error(grpc.StatusCode.DEADLINE_EXCEEDED, QUORUM_NOT_MET))}
    load = writer(nodes, patience=30)
    began = time.monotonic()
    with pytest.raises(WriteFailed) as failed:
        await load.run(count=40)
    assert time.monotonic() - began < 5  # not the patience
    assert (
        str(failed.value)
        == f"10 of 40 points acknowledged; node 1 refused the write: {QUORUM_NOT_MET}"
    )
    assert nodes[1].writes == 2


async def test_a_refusal_fails_over_to_a_replica_that_takes_it() -> None:
    inactive = error(grpc.StatusCode.FAILED_PRECONDITION, "WRITE_PROCESS_REJECT: not active")
    nodes = {1: Node(inactive), 2: Node(None)}
    load = writer(nodes, patience=30)
    await load.run(count=40)
    assert len(load.acked) == 40 and load.refusals >= 1


async def test_a_node_down_for_a_moment_is_tried_again() -> None:
    nodes = {1: Node(DOWN, DOWN, None)}
    load = writer(nodes, patience=30)
    await load.run(count=20)
    assert len(load.acked) == 20 and nodes[1].writes == 4


async def test_a_node_that_never_answers_is_named_once_the_patience_is_spent() -> None:
    nodes = {1: Node(DOWN), 2: Node(NO_ANSWER)}
    load = writer(nodes, patience=0.5)
    began = time.monotonic()
    with pytest.raises(WriteFailed) as failed:
        await load.run(count=20)
    assert 0.5 <= time.monotonic() - began < 5
    assert str(failed.value) == (
        "0 of 20 points acknowledged; none in the last 0.5 s: node 1 answered "
        "UNAVAILABLE: failed to connect to all addresses; node 2 did not answer within 0.5 s"
    )


async def test_without_patience_refusals_are_tried_until_taken() -> None:
    refusal = error(grpc.StatusCode.DEADLINE_EXCEEDED, QUORUM_NOT_MET)
    nodes = {1: Node(refusal, refusal, refusal, None)}
    load = writer(nodes, patience=None)
    await load.run(count=10)
    assert len(load.acked) == 10 and load.refusals == 3
