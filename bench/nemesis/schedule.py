"""The nemesis's schedule: which faults strike when and for how long, and which operations
start when, drawn from one seed (the same seed, the same schedule).

Pure: no process, no clock. Faults come one at a time, each healed after its duration, as
Jepsen's nemesis generators alternate start and stop; operations start on their own rhythm,
whatever fault is on. No node is lost for good: every fault ends, so even writes acknowledged
by one replica must all survive.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

K = TypeVar("K")


class FaultKind(StrEnum):
    ISOLATE = "isolate"  # a node cut from every other node and from the worker
    CUT = "cut"  # the link between two nodes, both ways
    ONE_WAY = "one-way"  # packets from one node to another dropped, the reverse passes
    FLAKY = "flaky"  # a share of the packets between two nodes dropped
    PARTITION = "partition"  # the nodes in two halves; the worker stays with the first
    FREEZE = "freeze"  # a node's process stopped (SIGSTOP), then continued
    KILL_NODE = "kill-node"  # a node SIGKILLed, then started again
    KILL_WORKER = "kill-worker"  # the worker SIGKILLed, then started again
    CUT_WORKER = "cut-worker"  # the worker cannot reach a node; the node's peers can
    CUT_TEMPORAL = "cut-temporal"  # the worker cannot reach the Temporal server


class OperationKind(StrEnum):
    MIGRATE = "migrate"
    ADD_REMOVE = "add-remove"  # a peer added, then another removed: the count is kept
    DRAIN = "drain"
    REBALANCE = "rebalance"


@dataclass(frozen=True)
class Fault:
    at_s: float
    kind: FaultKind
    nodes: tuple[int, ...] = ()  # the node(s) it strikes; a partition's first half
    others: tuple[int, ...] = ()  # a partition's second half
    loss: int = 0  # FLAKY: percent of packets dropped
    duration_s: float = 0.0

    @property
    def ends_s(self) -> float:
        return self.at_s + self.duration_s

    def describe(self) -> str:
        match self.kind:
            case FaultKind.PARTITION:
                return f"partition {list(self.nodes)} | {list(self.others)}"
            case FaultKind.FLAKY:
                return f"flaky {self.nodes[0]}-{self.nodes[1]} {self.loss}%"
            case FaultKind.CUT | FaultKind.ONE_WAY:
                arrow = "->" if self.kind is FaultKind.ONE_WAY else "-"
                return f"{self.kind} {self.nodes[0]}{arrow}{self.nodes[1]}"
            case FaultKind.KILL_WORKER | FaultKind.CUT_TEMPORAL:
                return str(self.kind)
            case _:
                return f"{self.kind} {self.nodes[0]}"


@dataclass(frozen=True)
class Operation:
    at_s: float
    kind: OperationKind
    pick: int  # a number the runner turns into a region and nodes from the cluster as it is then


@dataclass(frozen=True)
class Schedule:
    seed: int
    seconds: float
    faults: list[Fault] = field(default_factory=list)
    operations: list[Operation] = field(default_factory=list)


# Fault durations: most shorter than the autopilot's dead_after (a blip), some longer (a node
# that stays unreachable is repaired; one reached by a live peer must not be).
SHORT_S = (3.0, 12.0)
PAUSE_S = (2.0, 6.0)  # between one fault's heal and the next fault
OPERATION_EVERY_S = (6.0, 14.0)
# The weights of the faults: the link faults that only a network test can make, first.
WEIGHTS = {
    FaultKind.ISOLATE: 3,
    FaultKind.CUT: 2,
    FaultKind.ONE_WAY: 2,
    FaultKind.FLAKY: 2,
    FaultKind.PARTITION: 2,
    FaultKind.FREEZE: 2,
    FaultKind.KILL_NODE: 2,
    FaultKind.KILL_WORKER: 1,
    FaultKind.CUT_WORKER: 2,
    FaultKind.CUT_TEMPORAL: 1,
}
OPERATION_WEIGHTS = {
    OperationKind.MIGRATE: 4,
    OperationKind.ADD_REMOVE: 2,
    OperationKind.DRAIN: 1,
    OperationKind.REBALANCE: 1,
}


def plan(seed: int, seconds: float, nodes: list[int], dead_after_s: float) -> Schedule:
    """Faults and operations over `seconds`, each fault healed before the end."""
    rng = random.Random(seed)
    faults: list[Fault] = []
    at = rng.uniform(*PAUSE_S)
    while True:
        kind = _pick(rng, WEIGHTS)
        duration = _duration(rng, kind, dead_after_s)
        if at + duration > seconds:
            break
        faults.append(_fault(rng, kind, at, duration, nodes))
        at += duration + rng.uniform(*PAUSE_S)
    operations: list[Operation] = []
    at = rng.uniform(*OPERATION_EVERY_S) / 2
    while at < seconds:
        operations.append(Operation(at, _pick(rng, OPERATION_WEIGHTS), rng.randrange(1 << 30)))
        at += rng.uniform(*OPERATION_EVERY_S)
    return Schedule(seed, seconds, faults, operations)


def _pick(rng: random.Random, weights: dict[K, int]) -> K:
    kinds = list(weights)
    return rng.choices(kinds, weights=[weights[k] for k in kinds])[0]


def _duration(rng: random.Random, kind: FaultKind, dead_after_s: float) -> float:
    """A third of the isolations and of the worker's cuts outlast dead_after: the first must
    be repaired, the second must not."""
    if kind in (FaultKind.ISOLATE, FaultKind.CUT_WORKER) and rng.random() < 1 / 3:
        return dead_after_s * rng.uniform(1.5, 2.5)
    if kind is FaultKind.KILL_WORKER:
        return rng.uniform(0.5, 3.0)  # the time until it is started again
    return rng.uniform(*SHORT_S)


def _fault(
    rng: random.Random, kind: FaultKind, at: float, duration: float, nodes: list[int]
) -> Fault:
    match kind:
        case FaultKind.CUT | FaultKind.ONE_WAY:
            a, b = rng.sample(nodes, 2)
            return Fault(at, kind, (a, b), duration_s=duration)
        case FaultKind.FLAKY:
            a, b = rng.sample(nodes, 2)
            return Fault(at, kind, (a, b), loss=rng.choice([20, 30, 50]), duration_s=duration)
        case FaultKind.PARTITION:
            shuffled = rng.sample(nodes, len(nodes))
            cut = rng.randrange(1, len(nodes))
            first, second = sorted(shuffled[:cut]), sorted(shuffled[cut:])
            return Fault(at, kind, tuple(first), tuple(second), duration_s=duration)
        case FaultKind.KILL_WORKER | FaultKind.CUT_TEMPORAL:
            return Fault(at, kind, duration_s=duration)
        case _:
            return Fault(at, kind, (rng.choice(nodes),), duration_s=duration)
