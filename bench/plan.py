"""How long the planners take on a large cluster with failure domains: pure, no processes.

A cluster of `--nodes` nodes in `--zones` zones (two racks each), `--regions` regions of three
replicas in three zones, every one of them with a replica on node 1. It times the plan of a
drain of node 1 and of a rebalance's first round (what a workflow plans at once), and says
whether any planned move lowered a region's diversity (`diversity_kept`). The baseline, in the
same run: the same cluster with no locality known (the planners rank by bytes alone).
Run: `python bench/plan.py [--nodes 100] [--zones 10] [--regions 10000] [--seed 1]`.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts.activity_models import ClusterDescription, Disk, Peer
from contracts.models import Move
from planning.balance import after, plan_rebalance
from planning.diversity import Places
from planning.placement import members, plan_drain

MB = 10**6


def cluster(nodes: int, zones: int, regions: int, seed: int) -> ClusterDescription:
    """Node i in zone (i-1) mod `zones`, rack 1 or 2 within it; each region on node 1 and on
    two nodes of two other zones, 1 to 100 MB; disks of 10 TB, as full as their replicas."""
    rng = random.Random(seed)
    zone = {i: (i - 1) % zones for i in range(1, nodes + 1)}
    by_zone: dict[int, list[int]] = {}
    for i, z in zone.items():
        by_zone.setdefault(z, []).append(i)
    holders, sizes = {}, {}
    for region in range(1, regions + 1):
        two = rng.sample([z for z in by_zone if z != zone[1]], 2)
        holders[region] = sorted([1, *(rng.choice(by_zone[z]) for z in two)])
        sizes[region] = rng.randint(MB, 100 * MB)
    used = dict.fromkeys(zone, 0)
    for region, on in holders.items():
        for n in on:
            used[n] += sizes[region]
    return ClusterDescription(
        nodes=[Peer(node_id=i, address=f"10.0.0.{i}:50051") for i in zone],
        holders=holders,
        peers=holders,
        store_bytes=sizes,
        disks={i: Disk(capacity=10**13, used=used[i]) for i in zone},
        localities={i: [f"zone=z{z}", f"rack=r{rack(i, zones)}"] for i, z in zone.items()},
    )


def rack(node: int, zones: int) -> int:
    """Rack 1 or 2 of its zone: the nodes of a zone alternate."""
    return (node - 1) // zones % 2 + 1


def kept(before: ClusterDescription, moves: list[Move]) -> bool:
    """Whether no region ends less diverse than it was."""
    places, later = Places(before.localities), after(before, moves)
    return all(
        places.diversity(members(later, m.region)) >= places.diversity(members(before, m.region))
        for m in moves
    )


def timed(described: ClusterDescription) -> dict[str, object]:
    began = time.perf_counter()
    drain = plan_drain(described, 1)
    drain_s = time.perf_counter() - began
    began = time.perf_counter()
    rebalance = plan_rebalance(described)
    rebalance_s = time.perf_counter() - began
    return {
        "drain_plan_s": round(drain_s, 3),
        "drain_moves": len(drain.moves),
        "drain_kept": len(drain.kept),
        "rebalance_plan_s": round(rebalance_s, 3),
        "rebalance_moves": len(rebalance.moves),
        "rebalance_kept": len(rebalance.kept),
        "diversity_kept": kept(described, drain.moves) and kept(described, rebalance.moves),
    }


def main(args: argparse.Namespace) -> dict[str, object]:
    described = cluster(args.nodes, args.zones, args.regions, args.seed)
    zoned = timed(described)
    baseline = timed(described.model_copy(update={"localities": {}}))
    return {
        "regions": args.regions,
        "nodes": args.nodes,
        "zones": args.zones,
        **zoned,
        "baseline_without_localities": {k: v for k, v in baseline.items() if k != "diversity_kept"},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--zones", type=int, default=10)
    parser.add_argument("--regions", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    print(json.dumps(main(parser.parse_args()), indent=2))
