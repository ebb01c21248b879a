"""Commands on the nodes and their data: regions, writes, load, digests, verification, throttles."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from airctl.args import Commands, count, high_watermark, positive
from airctl.config import parse_ids
from airctl.context import Ctl
from client.load import AckedLog, LoadWriter, missing_points
from contracts.activity_models import Disk, NodeView, Peer, Reach
from contracts.errors import InvalidRequest, UserError
from contracts.locality import tier_name
from contracts.members import stale_holders
from contracts.rates import AUTO, rate_limit
from planning.balance import under_diversified
from planning.diversity import Places, describe
from planning.placement import place_region
from protos import air_node_pb2 as pb
from runtime.reading import node_listing
from runtime.views import ask_live, reaching

# A node that has not answered in this long is shown down.
ASK_TIMEOUT_S = 5.0
# A digest reads the whole replica.
DIGEST_TIMEOUT_S = 30.0
# How long `write` and `load` try without an acknowledgement: a node restarting is back well
# within it.
WRITE_PATIENCE_S = 30.0


@dataclass(frozen=True)
class Holders:
    """A region's replicas on the nodes that answered, and the nodes that did not."""

    region: int
    live: dict[int, pb.RegionInfo]
    down: list[int]

    def listed_down(self) -> list[int]:
        """Nodes that do not answer and that a live replica still lists as a peer."""
        listed = {p.node_id for info in self.live.values() for p in info.peers}
        return sorted(listed & set(self.down))

    def note(self) -> str:
        """What a reader of the live replicas' answers should know of the others."""
        if listed := self.listed_down():
            return (
                f"node(s) {listed} do not answer and are still replicas of region "
                f"{self.region}: the answer is from nodes {sorted(self.live)} only"
            )
        return ""


async def region_holders(ctl: Ctl, region: int) -> Holders:
    """The nodes holding `region`, all asked at once; a node that does not answer is down."""
    request = pb.RegionRequest(region=region)
    nodes = [n.id for n in ctl.config.nodes]
    answers = await asyncio.gather(
        *(ctl.stub(i).DescribeRegion(request, timeout=ASK_TIMEOUT_S) for i in nodes),
        return_exceptions=True,
    )
    live, down = {}, []
    for node_id, answer in zip(nodes, answers, strict=True):
        if isinstance(answer, pb.RegionInfo):
            live[node_id] = answer
        elif not isinstance(answer, grpc.aio.AioRpcError):
            raise answer
        elif answer.code() != grpc.StatusCode.NOT_FOUND:
            down.append(node_id)
    if not live:
        if down and len(down) == len(nodes):
            raise UserError(f"no node answers (nodes {down}): is the stack up?")
        hint = f" (nodes {down} do not answer)" if down else ""
        raise UserError(f"unknown region {region}: no node holds it{hint}")
    return Holders(region, live, down)


ACKS = {"one": pb.ACKS_ONE, "quorum": pb.ACKS_QUORUM, "all": pb.ACKS_ALL}


def _acks(ctl: Ctl) -> pb.Acks:
    """--acks one|quorum|all: the acknowledgement level of every write."""
    return ACKS[ctl.args.acks]


def _warn_down(ctl: Ctl, holders: Holders) -> None:
    if note := holders.note():
        ctl.warn(note)


async def create_region(ctl: Ctl, region: int, ids: list[int]) -> list[pb.MembershipReply]:
    """The region's replica on each of `ids`, active, with the full peer list."""
    peers = [pb.Peer(node_id=i, address=ctl.config.node(i).address) for i in ids]
    request = pb.CreateLocalPeerRequest(region=region, peers=peers, active=True)
    return [await ctl.stub(i).CreateLocalPeer(request, timeout=10) for i in ids]


async def cmd_region_create(ctl: Ctl) -> int:
    """On the nodes given, or (`--replicas N`) on N nodes chosen to stand as far apart as the
    cluster allows (then the least full), as a repair would choose them."""
    if (ctl.args.peers is None) == (ctl.args.replicas is None):
        raise UserError("region create takes --peers 1,2,3 or --replicas N (one of them)")
    region = ctl.args.region
    if ctl.args.peers is not None:
        ids = parse_ids(ctl.args.peers, "--peers")
    else:
        try:
            ids = place_region(await ctl.describe(), region, ctl.args.replicas)
        except InvalidRequest as e:
            raise UserError(str(e)) from e
    replies = await create_region(ctl, region, ids)
    places = Places({n.id: n.locality for n in ctl.config.nodes})
    stands = f" ({_spans(places, ids)})" if places.known else ""
    ctl.emit(
        {"region": region, "peers": ids, "created": [r.changed for r in replies]},
        f"region {region} on nodes {ids}{stands}",
    )
    return 0


async def cmd_regions(ctl: Ctl) -> int:
    """Each region's replicas, their states and store sizes; then each node's replicas and
    bytes (`--by-node`: that alone). A node that does not answer is shown down, with the
    regions its peers list it in; or unreachable from here, if a live node reaches it."""
    table, down, disks, places = await _replicas(ctl)
    views = await _views_of(ctl, down)
    for held in table.values():
        for node_id, replica in held.items():
            if replica["state"] == "down" and views[node_id].reach is Reach.UNREACHABLE:
                replica["state"] = "unreachable"
    nodes = _node_summary(ctl, table, views, disks, places)
    if ctl.args.by_node:
        data: Any = {str(n): s for n, s in nodes.items()}
    else:
        data = {str(r): {str(n): s for n, s in sorted(held.items())} for r, held in table.items()}
    if ctl.json:
        ctl.emit(data, "")
        return 0
    if not ctl.args.by_node:
        rows = [
            [
                str(region),
                "  ".join(f"{n}:{_cell(s)}" for n, s in sorted(held.items())),
                _spans(places, list(held)),
            ]
            for region, held in sorted(table.items())
        ]
        plain = "\n".join(f"{region:>8}  {cells}  {spans}" for region, cells, spans in rows)
        columns = ["region", "replicas (node: state, size)", "where they stand"]
        ctl.emit_table(data, plain, "regions", columns, rows)
    rows = [
        [
            str(n),
            _node_state(views.get(n)),
            describe(tuple(s["locality"])),
            str(s["replicas"]),
            f"{s['bytes'] / 1e6:.1f}",
            _disk_cell(s),
        ]
        for n, s in nodes.items()
    ]
    plain = "\n".join(
        f"node {r[0]}: {r[1]}, {r[2]}, {r[3]} replicas, {r[4]} MB, disk {r[5]}" for r in rows
    )
    columns = ["node", "state", "locality", "replicas", "MB", "disk used"]
    ctl.emit_table(data, plain, "nodes", columns, rows)
    return 0


def _spans(places: Places, nodes: list[int]) -> str:
    """Where a region's replicas stand: the zones (first tiers) they span, and its diversity."""
    if not places.known:
        return "-"
    zones = sorted({tier_name(places.zone[n]) for n in nodes if n in places.zone})
    alone = sum(1 for n in nodes if n not in places.zone)
    spread = ", ".join(zones + ([f"{alone} without locality"] if alone else []))
    return f"{spread}; diversity {places.diversity(nodes):.2f}"


Table = dict[int, dict[int, dict[str, Any]]]


async def _replicas(ctl: Ctl) -> tuple[Table, list[int], dict[int, Disk], Places]:
    """Region -> node -> its replica's state and locality; the nodes that did not answer; the
    others' disks; where every node stands (the cluster file's word for those down)."""
    nodes = ctl.config.nodes
    answers = await asyncio.gather(
        *(node_listing(ctl.stub(n.id)) for n in nodes), return_exceptions=True
    )
    failed = [a for a in answers if isinstance(a, grpc.aio.AioRpcError)]
    if failed and len(failed) == len(answers):
        raise failed[0]  # not a node down: none answers (no stack, wrong TLS settings...)
    table: Table = {}
    listed: dict[int, set[int]] = {}
    lists: dict[tuple[int, int], set[int]] = {}  # (region, node) -> the peers it lists
    down, disks = [], {}
    localities = {n.id: n.locality for n in nodes}
    for node, answer in zip(nodes, answers, strict=True):
        if isinstance(answer, grpc.aio.AioRpcError):
            down.append(node.id)
            continue
        if isinstance(answer, BaseException):
            raise answer
        disks[node.id] = answer.disk
        localities[node.id] = answer.locality
        for r in answer.regions:
            table.setdefault(r.region, {})[node.id] = {
                "state": _state(r),
                "active": r.active,
                "installed": r.installed,
                "leaving": r.leaving,
                "store_bytes": r.store_bytes,
                "locality": answer.locality,
            }
            listed.setdefault(r.region, set()).update(p.node_id for p in r.peers)
            lists[(r.region, node.id)] = {p.node_id for p in r.peers}
    for region, peers in listed.items():
        for node_id in peers & set(down):
            table[region][node_id] = {"state": "down", "locality": localities.get(node_id, [])}
    for region, replicas in table.items():
        held = {n: peers for (r, n), peers in lists.items() if r == region}
        took_writes = [n for n in held if replicas[n]["state"] in ("active", "removing")]
        for node_id in stale_holders(held, took_writes):
            replicas[node_id]["state"] = "stale"
    return table, down, disks, Places(localities)


async def _views_of(ctl: Ctl, down: list[int]) -> dict[int, NodeView]:
    """How the nodes that did not answer here look from those that did (runtime/views.py)."""
    if not down:
        return {}
    peers = [Peer(node_id=n.id, address=n.address) for n in ctl.config.nodes]
    answered = {p.node_id for p in peers} - set(down)
    views = await ask_live(peers, answered, ctl.clients)
    return {n: views[n] for n in down}


def _node_summary(
    ctl: Ctl, table: Table, views: dict[int, NodeView], disks: dict[int, Disk], places: Places
) -> dict[int, dict[str, Any]]:
    """Per node: whether it answered (if not: whether a live node reaches it), where it
    stands, its replicas and their store bytes, its disk."""
    nodes: dict[int, dict[str, Any]] = {}
    for n in ctl.config.nodes:
        view = views.get(n.id)
        nodes[n.id] = {"down": view is not None and view.reach is not Reach.UNREACHABLE}
        nodes[n.id]["locality"] = list(places.of(n.id))
        if view is not None and view.reach is Reach.UNREACHABLE:
            nodes[n.id] |= {"unreachable_from_here": True, "reached_by": view.reached_by}
        elif view is not None and view.reach is Reach.UNCONFIRMED:
            nodes[n.id]["unconfirmed"] = True  # no live node could be asked about it
        nodes[n.id] |= {"replicas": 0, "bytes": 0}
    for node_id, disk in disks.items():
        nodes[node_id] |= {"disk_capacity": disk.capacity, "disk_used": disk.used}
    for held in table.values():
        for node_id, replica in held.items():
            if node_id in nodes and replica["state"] not in ("down", "unreachable"):
                nodes[node_id]["replicas"] += 1
                nodes[node_id]["bytes"] += replica["store_bytes"]
    return nodes


def _node_state(view: NodeView | None) -> str:
    """`up`, `down`, or, for a node that does not answer here, what the live nodes say."""
    if view is None:
        return "up"
    if view.reach is Reach.UNREACHABLE:
        return f"unreachable from here ({reaching(view.reached_by)})"
    if view.reach is Reach.UNCONFIRMED:
        return "down? (no live node could be asked)"
    return "down"


def _disk_cell(summary: dict[str, Any]) -> str:
    if not summary.get("disk_capacity"):
        return "-"
    used, capacity = summary["disk_used"], summary["disk_capacity"]
    return f"{used / capacity:.0%} of {capacity / 1e9:.1f} GB"


def _state(r: pb.RegionInfo) -> str:
    if r.leaving:
        return "removing"
    if not r.installed:
        return "awaiting-snapshot"
    return "active" if r.active else "adding"


def _cell(replica: dict[str, Any]) -> str:
    if replica["state"] == "down":
        return "DOWN"
    if replica["state"] == "unreachable":
        return "UNREACHABLE FROM HERE"
    if replica["state"] == "stale":
        return f"STALE (removed, retiring) {replica['store_bytes'] / 1e6:.1f}MB"
    return f"{replica['state']} {replica['store_bytes'] / 1e6:.1f}MB"


async def cmd_placement(ctl: Ctl) -> int:
    """The regions one move of a replica would make more diverse (under-diversified), each
    with why it is so: the move a rebalance would make, or the places without room."""
    cluster = await ctl.describe()
    found = under_diversified(cluster, float(ctl.args.high_watermark) / 100)
    places = Places(cluster.localities)
    data = {
        "under_diversified": {str(r): why for r, why in found.items()},
        "regions": len(set(cluster.holders) | set(cluster.peers)),
        "localities_known": places.known,
        "unreachable": cluster.unreachable,
    }
    if not places.known:
        text = "no node names a locality (airnode --locality): every replica stands apart"
    elif not found:
        text = f"every region is as diverse as the cluster allows ({data['regions']} regions)"
    else:
        text = "\n".join(f"region {r}: {why}" for r, why in found.items())
        text += f"\n{len(found)} of {data['regions']} regions under-diversified"
    if cluster.unreachable:
        text += f"\nnode(s) {cluster.unreachable} do not answer: placed as the cluster file says"
    ctl.emit(data, text)
    return 0


async def cmd_write(ctl: Ctl) -> int:
    holders = await region_holders(ctl, ctl.args.region)
    _warn_down(ctl, holders)
    targets = [ctl.args.via] if ctl.args.via else sorted(holders.live)
    if ctl.args.via:
        ctl.config.node(ctl.args.via)
        if ctl.args.via in holders.down:
            raise UserError(f"node {ctl.args.via} does not answer; write through another")
    writer = LoadWriter(
        ctl.stub,
        ctl.args.region,
        targets,
        log=AckedLog(ctl.args.acked_log),
        acks=_acks(ctl),
        patience=ctl.args.timeout,
    )
    began = time.monotonic()
    await writer.run(count=ctl.args.count)
    elapsed = time.monotonic() - began
    ctl.emit(
        {"region": ctl.args.region, "acked": len(writer.acked), "series": writer.series},
        f"{len(writer.acked)} points acknowledged in {elapsed:.1f}s (series {writer.series})",
    )
    return 0


async def cmd_load(ctl: Ctl) -> int:
    holders = await region_holders(ctl, ctl.args.region)
    _warn_down(ctl, holders)
    writer = LoadWriter(
        ctl.stub,
        ctl.args.region,
        sorted(holders.live),
        log=AckedLog(ctl.args.acked_log),
        acks=_acks(ctl),
        patience=ctl.args.timeout,
    )
    await writer.run_for(ctl.args.seconds, rate=ctl.args.rate)
    ctl.emit(
        {"region": ctl.args.region, "acked": len(writer.acked), "refusals": writer.refusals},
        f"{len(writer.acked)} points acknowledged in {ctl.args.seconds}s "
        f"({writer.refusals} refusals failed over)",
    )
    return 0


async def digests(ctl: Ctl, holders: Holders) -> dict[int, pb.DigestReply]:
    """The live replicas' digests, asked at once."""
    request = pb.RegionRequest(region=holders.region)
    nodes = sorted(holders.live)
    replies = await asyncio.gather(
        *(ctl.stub(i).Digest(request, timeout=DIGEST_TIMEOUT_S) for i in nodes)
    )
    return dict(zip(nodes, replies, strict=True))


async def cmd_digest(ctl: Ctl) -> int:
    holders = await region_holders(ctl, ctl.args.region)
    found = await digests(ctl, holders)
    data: dict[str, Any] = {
        str(i): {"count": d.count, "hash": d.hash, "active": d.active} for i, d in found.items()
    }
    lines = [
        f"node {i}: {d.count} points  {d.hash[:16]}  active={d.active}" for i, d in found.items()
    ]
    for i in holders.listed_down():
        data[str(i)] = {"down": True}
        lines.append(f"node {i}: DOWN (still a replica of region {ctl.args.region})")
    ctl.emit(data, "\n".join(lines))
    return 0


async def verify(ctl: Ctl, region: int, log: Path, timeout: float) -> tuple[bool, dict[str, Any]]:
    """Equal digests on every replica (awaited) and every acknowledged point on each."""
    acked = AckedLog.read(log)
    holders = await region_holders(ctl, region)
    _warn_down(ctl, holders)
    deadline = time.monotonic() + timeout
    while True:
        found = await digests(ctl, holders)
        if len({(d.count, d.hash) for d in found.values()}) == 1 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    missing = {i: len(await missing_points(ctl.stub(i), region, acked)) for i in found}
    equal = len({(d.count, d.hash) for d in found.values()}) == 1
    ok = equal and not any(missing.values())
    report = {
        "region": region,
        "ok": ok,
        "acked": len(acked),
        "replicas": {str(i): {"count": d.count, "hash": d.hash} for i, d in found.items()},
        "missing": {str(i): m for i, m in missing.items()},
        "equal": equal,
        "down": holders.listed_down(),  # replicas that could not be checked
    }
    return ok, report


async def cmd_verify(ctl: Ctl) -> int:
    if not ctl.args.acked_log.exists():
        raise UserError(f"no acked log at {ctl.args.acked_log}")
    ok, report = await verify(ctl, ctl.args.region, ctl.args.acked_log, ctl.args.timeout)
    replicas = ", ".join(f"node {n} {r['count']}" for n, r in report["replicas"].items())
    verdict = "OK" if ok else "FAILED"
    text = (
        f"{verdict}: {report['acked']} acknowledged points; replicas {replicas}; "
        f"digests {'equal' if report['equal'] else 'DIFFER'}; "
        f"missing {sum(report['missing'].values())}"
    )
    ctl.emit(report, text)
    return 0 if ok else 1


async def cmd_throttle(ctl: Ctl) -> int:
    ctl.config.node(ctl.args.node)
    auto = ctl.args.mbps == AUTO
    request = pb.ThrottleRequest(bytes_per_s=0 if auto else ctl.args.mbps * 1e6, auto=auto)
    reply = await ctl.stub(ctl.args.node).SetThrottle(request, timeout=10)
    limit = AUTO if auto else f"{ctl.args.mbps} MB/s" if ctl.args.mbps else "no limit"
    ctl.emit(
        {
            "node": ctl.args.node,
            "bytes_per_s": reply.bytes_per_s,
            "auto": auto,
            "previous": reply.previous,
        },
        f"node {ctl.args.node}: transfer throttle {limit} (was "
        f"{f'{reply.previous / 1e6:g} MB/s' if reply.previous else 'no limit'})",
    )
    return 0


async def cmd_node_forget(ctl: Ctl) -> int:
    """Take a node out of the cluster file, which the worker, the autopilot and airctl read:
    refused, changing nothing, while it holds a replica or any region lists it as a peer."""
    node_id = ctl.args.node
    ctl.config.node(node_id)
    table, down, _, _ = await _replicas(ctl)
    listed = sorted(region for region, held in table.items() if node_id in held)
    if listed and node_id not in down:
        raise UserError(
            f"node {node_id} answers and holds region(s) {listed}: move them off first "
            f"(airctl drain --node {node_id})"
        )
    if listed:
        raise UserError(
            f"region(s) {listed} still list node {node_id} as a replica: repair it first "
            f"(airctl repair --node {node_id})"
        )
    if others := [n for n in down if n != node_id]:
        ctl.warn(f"nodes {others} do not answer: whether they list node {node_id} is unknown")
    config = ctl.config
    config.nodes = [n for n in config.nodes if n.id != node_id]
    config.save(ctl.path)
    ctl.emit(
        {"node": node_id, "forgotten": True, "nodes": [n.id for n in config.nodes]},
        f"node {node_id} forgotten: the worker, the autopilot and airctl no longer ask it",
    )
    return 0


# -- arguments --------------------------------------------------------------------------------


def register(sub: Commands) -> None:
    """Regions, nodes and data: create, list, forget, write, load, digest, verify, throttle."""
    regions = sub.add_parser("region", help="region commands")
    region = regions.add_subparsers(dest="action", required=True)
    create = region.add_parser("create", help="create a region on some nodes")
    create.add_argument("region", type=int)
    create.add_argument("--peers", help="node ids, e.g. 1,2,3")
    create.add_argument(
        "--replicas",
        type=count,
        help="instead of --peers: on this many nodes, as far apart as the cluster allows",
    )
    create.set_defaults(handler=cmd_region_create)
    placement = sub.add_parser(
        "placement", help="the regions whose replicas could stand further apart, and why"
    )
    high_watermark(placement)
    placement.set_defaults(handler=cmd_placement)
    listing = sub.add_parser(
        "regions", help="regions, their replicas' states, sizes and places; nodes"
    )
    listing.add_argument(
        "--by-node",
        action="store_true",
        help="only each node's locality, replicas and bytes",
    )
    listing.set_defaults(handler=cmd_regions)

    nodes = sub.add_parser("node", help="node commands")
    node = nodes.add_subparsers(dest="action", required=True)
    forget = node.add_parser(
        "forget", help="take a node that holds no replica out of the cluster's directory"
    )
    forget.add_argument("node", type=int)
    forget.set_defaults(handler=cmd_node_forget)

    write = sub.add_parser("write", help="write N unique points")
    write.add_argument("region", type=int)
    write.add_argument("--count", type=count, required=True)
    write.add_argument("--via", type=int, help="write through this node only")
    write.add_argument("--acked-log", type=Path)
    write.set_defaults(handler=cmd_write)
    load = sub.add_parser("load", help="write without pause for a while")
    load.add_argument("region", type=int)
    load.add_argument("--seconds", type=positive, required=True)
    load.add_argument("--rate", type=positive, help="points/s (default: as fast as acknowledged)")
    load.add_argument("--acked-log", type=Path, required=True)
    load.set_defaults(handler=cmd_load)
    for c in (write, load):
        c.add_argument(
            "--acks",
            choices=list(ACKS),
            default="one",
            help="replicas that must apply each write before it is acknowledged (default one)",
        )
        c.add_argument(
            "--timeout",
            type=positive,
            default=WRITE_PATIENCE_S,
            metavar="SECONDS",
            help="give up, saying what each node answered, once no write was acknowledged for "
            f"this long (default {WRITE_PATIENCE_S:g}); a write every replica refused (a level "
            "not met, an inactive replica) fails at once",
        )
    digest = sub.add_parser("digest", help="count and hash per replica")
    digest.add_argument("region", type=int)
    digest.set_defaults(handler=cmd_digest)
    ver = sub.add_parser("verify", help="equal replicas holding every acknowledged point")
    ver.add_argument("region", type=int)
    ver.add_argument("--acked-log", type=Path, required=True)
    ver.add_argument("--timeout", type=float, default=30, help="seconds to await convergence")
    ver.set_defaults(handler=cmd_verify)
    throttle = sub.add_parser("throttle", help="a node's transfer throttle, at run time")
    throttle.add_argument("--node", type=int, required=True)
    throttle.add_argument(
        "--mbps",
        type=rate_limit,
        required=True,
        help="MB/s on every byte sent; 0 lifts the limit; auto (the nodes' default): "
        "snapshots follow the node's write latencies",
    )
    throttle.set_defaults(handler=cmd_throttle)
