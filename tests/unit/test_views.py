"""The two-step probe's second step and its rule, with fake nodes (tests/integration/
test_probe.py probes real ones)."""

from __future__ import annotations

from typing import cast

import grpc

from contracts.activity_models import NodeView, Peer, Reach
from protos import air_node_pb2 as pb
from runtime.clients import NodeClients
from runtime.views import PROBE_TIMEOUT_S, WITNESS_MARGIN_S, WITNESSES, ask_live, classify

NODES = [Peer(node_id=i, address=f"127.0.0.1:{5000 + i}") for i in range(1, 6)]


class FakeNode:
    def __init__(self, node_id: int, world: FakeNodes) -> None:
        self.node_id = node_id
        self.world = world

    async def Probe(self, request: pb.ProbeRequest, timeout: float) -> pb.ProbeReply:
        self.world.asked.append((self.node_id, request.target.node_id, timeout))
        if self.node_id in self.world.silent_witnesses:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                details="Deadline Exceeded",
                debug_error_string="",
            )
        return pb.ProbeReply(reached=(self.node_id, request.target.node_id) in self.world.links)


class FakeNodes:
    """Nodes by address; `links`: (prober, target) pairs where the prober reaches the target."""

    def __init__(
        self, links: set[tuple[int, int]], silent_witnesses: frozenset[int] = frozenset()
    ) -> None:
        self.links = links
        self.silent_witnesses = silent_witnesses
        self.asked: list[tuple[int, int, float]] = []  # (witness, target, call deadline)

    def stub(self, address: str) -> FakeNode:
        return FakeNode(int(address.rsplit(":", 1)[1]) - 5000, self)


async def views(
    answered: set[int], links: set[tuple[int, int]], silent: frozenset[int] = frozenset()
) -> tuple[dict[int, NodeView], FakeNodes]:
    nodes = FakeNodes(links, silent)
    return await ask_live(NODES, answered, cast(NodeClients, nodes)), nodes


def test_the_rule() -> None:
    assert classify(True, [], []) is Reach.UP
    assert classify(False, [1], [1, 2]) is Reach.UNREACHABLE
    assert classify(False, [], [1, 2]) is Reach.DOWN
    assert classify(False, [], []) is Reach.UNCONFIRMED


async def test_a_node_a_live_node_reaches_is_unreachable_from_here_not_down() -> None:
    found, nodes = await views({1, 2, 3, 4}, links={(2, 5)})
    assert found[5] == NodeView(reach=Reach.UNREACHABLE, reached_by=[2], asked=[1, 2, 3])
    assert all(found[i] == NodeView(reach=Reach.UP) for i in (1, 2, 3, 4))
    # a bounded number of witnesses, each call with a deadline past the probe's own timeout
    assert sorted(nodes.asked) == [(w, 5, PROBE_TIMEOUT_S + WITNESS_MARGIN_S) for w in (1, 2, 3)]
    assert len(nodes.asked) == WITNESSES


async def test_a_node_no_live_node_reaches_is_down() -> None:
    found, _ = await views({1, 2, 3}, links={(1, 4)})
    assert found[4].reach is Reach.UNREACHABLE  # each silent node is asked about on its own
    assert found[5] == NodeView(reach=Reach.DOWN, asked=[1, 2, 3])


async def test_witnesses_follow_the_silent_node_in_id_order() -> None:
    _, nodes = await views({1, 3, 4, 5}, links=set())
    assert sorted(w for w, t, _ in nodes.asked if t == 2) == [3, 4, 5]
    _, nodes = await views({1, 2, 3, 4}, links=set())
    assert sorted(w for w, t, _ in nodes.asked if t == 5) == [1, 2, 3]


async def test_a_witness_that_does_not_answer_gives_no_view() -> None:
    found, _ = await views({1, 2, 3, 4}, links=set(), silent=frozenset({1}))
    assert found[5] == NodeView(reach=Reach.DOWN, asked=[2, 3])
    found, _ = await views({1, 2, 3, 4}, links=set(), silent=frozenset({1, 2, 3}))
    assert found[5] == NodeView(reach=Reach.UNCONFIRMED)


async def test_with_no_live_node_nothing_is_confirmed() -> None:
    found, nodes = await views(set(), links=set())
    assert all(v == NodeView(reach=Reach.UNCONFIRMED) for v in found.values())
    assert nodes.asked == []
