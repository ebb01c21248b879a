"""How each node looks, from here and from the others: the two-step probe.

First each node is asked directly (a one-region ListRegions, with a deadline). Then, for each
node that did not answer, up to `WITNESSES` of those that did are asked at once to `Probe` it
(an indirect probe, as in SWIM), so that one vantage point alone (the worker's, airctl's)
never decides that a node is down: a cut between it and one node is not a death. The
autopilot's probe and `airctl regions` both take their views from here; `classify` is the one
rule. Every call is read-only and has a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import grpc

from contracts.activity_models import NodeView, Peer, Reach
from protos import air_node_pb2 as pb
from runtime.clients import NodeClients, NodeStub

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0  # a direct probe's deadline, and the timeout a witness's Probe is given
WITNESSES = 3  # live nodes asked about each node that does not answer (SWIM's k)
# a witness's Probe call may take this much longer than its own probe: it answers, not times out
WITNESS_MARGIN_S = 1.0
MAX_PROBE_TIMEOUT_S = 60.0  # the longest probe a node makes for another


@dataclass(frozen=True)
class Reached:
    reached: bool
    detail: str  # why not, when not
    seconds: float


async def reach(stub: NodeStub, node_id: int, timeout_s: float) -> Reached:
    """Whether the node behind `stub` answers now, as node `node_id`, within `timeout_s`."""
    began = time.monotonic()
    try:
        reply = await stub.ListRegions(pb.ListRegionsRequest(limit=1), timeout=timeout_s)
    except grpc.aio.AioRpcError as e:
        return Reached(False, f"{e.code().name}: {e.details()}", time.monotonic() - began)
    seconds = time.monotonic() - began
    if reply.node_id != node_id:  # another node at that address: not the one asked for
        return Reached(False, f"node {reply.node_id} answers there, not node {node_id}", seconds)
    return Reached(True, "", seconds)


def classify(answered: bool, reached_by: list[int], asked: list[int]) -> Reach:
    """The rule: up if it answered the asker; else unreachable (from the asker only) if a live
    node reaches it; else down if at least one live node answered about it and none reaches
    it; else unconfirmed: no view but the asker's, which alone decides nothing."""
    if answered:
        return Reach.UP
    if reached_by:
        return Reach.UNREACHABLE
    return Reach.DOWN if asked else Reach.UNCONFIRMED


async def look(
    nodes: list[Peer], clients: NodeClients, timeout_s: float = PROBE_TIMEOUT_S
) -> dict[int, NodeView]:
    """Every node: asked directly, then, for those that do not answer, through the others."""
    direct = await asyncio.gather(
        *(reach(clients.stub(n.address), n.node_id, timeout_s) for n in nodes)
    )
    answered = {n.node_id for n, r in zip(nodes, direct, strict=True) if r.reached}
    return await ask_live(nodes, answered, clients, timeout_s)


async def ask_live(
    nodes: list[Peer], answered: set[int], clients: NodeClients, timeout_s: float = PROBE_TIMEOUT_S
) -> dict[int, NodeView]:
    """Each node's view, given which of `nodes` answered the caller's own call (the first
    step, which a caller that has just asked every node need not repeat): the others are
    probed by up to `WITNESSES` of those, all at once."""
    live = [n for n in nodes if n.node_id in answered]
    asks = [(t, w) for t in nodes if t.node_id not in answered for w in witnesses(t, live)]
    replies = await asyncio.gather(*(_ask(clients, w, t, timeout_s) for t, w in asks))
    reached_by: dict[int, list[int]] = {}
    asked: dict[int, list[int]] = {}
    for (target, witness), reply in zip(asks, replies, strict=True):
        if reply is None:  # the witness did not answer about it: no view
            continue
        asked.setdefault(target.node_id, []).append(witness.node_id)
        if reply.reached:
            reached_by.setdefault(target.node_id, []).append(witness.node_id)
    views = {}
    for n in nodes:
        by, of = sorted(reached_by.get(n.node_id, [])), sorted(asked.get(n.node_id, []))
        views[n.node_id] = NodeView(
            reach=classify(n.node_id in answered, by, of), reached_by=by, asked=of
        )
    return views


def reaching(nodes: list[int]) -> str:
    """`node 1 reaches it`, `nodes 1, 2 reach it`: who reaches a node unreachable from here."""
    if len(nodes) == 1:
        return f"node {nodes[0]} reaches it"
    return f"nodes {', '.join(map(str, nodes))} reach it"


def witnesses(target: Peer, live: list[Peer]) -> list[Peer]:
    """The live nodes asked about `target`: up to `WITNESSES`, those after it in id order
    (wrapping round), so that the asks about several silent nodes spread over the live ones."""
    ordered = sorted(live, key=lambda n: n.node_id)
    after = [n for n in ordered if n.node_id > target.node_id]
    before = [n for n in ordered if n.node_id < target.node_id]
    return (after + before)[:WITNESSES]


async def _ask(
    clients: NodeClients, witness: Peer, target: Peer, timeout_s: float
) -> pb.ProbeReply | None:
    request = pb.ProbeRequest(
        target=pb.Peer(node_id=target.node_id, address=target.address), timeout_s=timeout_s
    )
    try:
        reply: pb.ProbeReply = await clients.stub(witness.address).Probe(
            request, timeout=timeout_s + WITNESS_MARGIN_S
        )
    except grpc.aio.AioRpcError as e:  # cut off too, or a build without Probe: no view
        log.info(
            "node %d could not be asked about node %d: %s: %s",
            witness.node_id,
            target.node_id,
            e.code().name,
            e.details(),
        )
        return None
    if not reply.reached:
        log.info(
            "node %d does not reach node %d: %s", witness.node_id, target.node_id, reply.detail
        )
    return reply
