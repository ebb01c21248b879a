"""Inputs, results and progress of the workflows: plain JSON, so any Temporal client can start one.

`temporal workflow start --type RegionMigrationWorkflow --task-queue air-replication
 --workflow-id air-region-7 --input '{"region": 7, "from_node": 1, "to_node": 4}'`
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Self

from pydantic import BaseModel, Field

# No move may take a node's disk past this fraction (Elasticsearch's high watermark is 90%,
# CockroachDB rebalances onto no store past 92.5%); a node past 95% refuses replicas itself.
HIGH_WATERMARK = 0.90


class AddPeerInput(BaseModel):
    region: int
    new_peer: int
    coordinator: int | None = None  # default: a live holder chosen at random, as IoTDB does
    down_timeout_s: float = 60.0  # the new peer unreachable this long fails (and rolls back)
    stall_after_s: float = 60.0  # a transfer whose lag is flat this long is "stalled"
    # A new replica on a node that leaves its region less diverse than another live node it
    # fits on would is refused, unless allowed (planning/placement.py `check_place`).
    allow_less_diverse: bool = False


class RemovePeerInput(BaseModel):
    region: int
    peer: int
    down_timeout_s: float = 30.0  # a leaving peer down this long is skipped, as IoTDB does
    stall_after_s: float = 60.0  # a transfer whose lag is flat this long is "stalled"


class MigrationInput(BaseModel):
    region: int
    from_node: int
    to_node: int
    coordinator: int | None = None
    down_timeout_s: float = 60.0
    stall_after_s: float = 60.0  # a transfer whose lag is flat this long is "stalled"
    # How long the removal waits for a leaving node that does not answer before it skips its
    # steps (default: down_timeout_s). A repair sets it short: the node is known dead.
    leaving_down_timeout_s: float | None = None
    # The leaving node is gone (a repair's move): it may not answer, and the survivors first
    # take its writes from each other. Otherwise a migration off a node that does not answer
    # is refused: it may be restarting, and its writes must follow.
    from_node_gone: bool = False
    allow_less_diverse: bool = False  # as AddPeerInput's; an operation's moves set it


class ReconstructInput(BaseModel):
    region: int
    node: int  # the replica rebuilt from the others
    down_timeout_s: float = 60.0  # the node unable to take it back this long: elsewhere
    stall_after_s: float = 60.0


class Phase(enum.StrEnum):
    VALIDATING = "VALIDATING"
    CREATING_LOCAL_PEER = "CREATING_LOCAL_PEER"
    INACTIVATING_NEW_PEER = "INACTIVATING_NEW_PEER"
    CREATING_CHANNELS = "CREATING_CHANNELS"
    CAPTURING_TARGET = "CAPTURING_TARGET"
    TRANSFERRING = "TRANSFERRING"
    ACTIVATING = "ACTIVATING"
    DROPPING_CHANNELS = "DROPPING_CHANNELS"
    INACTIVATING_LEAVING_PEER = "INACTIVATING_LEAVING_PEER"
    HANDING_OFF = "HANDING_OFF"  # the leaving replica hands its last writes to the others
    CATCHING_UP = "CATCHING_UP"  # survivors take a dead peer's writes from each other
    RELEASING = "RELEASING"
    DELETING = "DELETING"
    ROLLING_BACK = "ROLLING_BACK"
    MOVING = "MOVING"  # drain: region migrations run as children
    PAUSED = "PAUSED"  # drain: no new migration starts until resumed
    DONE = "DONE"
    ROLLED_BACK = "ROLLED_BACK"


class Progress(BaseModel):
    """What the `progress` query returns; the UI's current details show the same."""

    kind: str
    region: int
    nodes: list[int]
    phase: Phase = Phase.VALIDATING
    steps_done: list[str] = Field(default_factory=list)
    target: dict[int, int] = Field(default_factory=dict)
    lag: int | None = None
    rate: float | None = None  # seqs applied per second in the last wait slice
    stalled: bool = False  # the lag has not shrunk for stall_after_s
    message: str = ""
    # seconds spent in each phase left so far (a phase entered again adds to its count)
    phase_seconds: dict[str, float] = Field(default_factory=dict)
    snapshot_received: int = 0  # TRANSFERRING: bytes the new replicas hold of their snapshots
    # ... and the limit their sender sends them at (bytes/s, 0: none), set by `auto` or not
    snapshot_limit: float = 0.0
    snapshot_limit_auto: bool = False


class StallReport(BaseModel):
    """A child's transfer stalled (with what it waits for) or moves again: sent to its parent."""

    region: int
    stalled: bool
    detail: str = ""


class AddPeerResult(BaseModel):
    region: int
    new_peer: int
    coordinator: int
    peers: list[int]  # the region's replicas afterwards
    target: dict[int, int]


class RemovePeerResult(BaseModel):
    region: int
    peer: int
    peers: list[int]  # the region's replicas afterwards
    clean: bool  # False when the leaving peer was down and steps were skipped
    skipped_steps: list[str] = Field(default_factory=list)
    # Of the leaving peer's own writes: what it had assigned (when reachable) and the highest
    # seq the remaining peers had applied. When it was down, writes beyond that are gone. 0 when
    # its replica was already gone: a restarted leaving node deletes it once the others hold
    # all of its writes.
    leaving_max_assigned: int | None = None
    applied_from_leaving: int = 0
    message: str = ""


class ReconstructResult(BaseModel):
    region: int
    node: int
    rebuilt_on: int  # the node, or another live node when it could not take it back
    remove: RemovePeerResult
    add: AddPeerResult
    message: str


class MigrationResult(BaseModel):
    region: int
    from_node: int
    to_node: int
    add: AddPeerResult
    remove: RemovePeerResult | None = None
    cancelled: bool = False
    message: str = ""


class Move(BaseModel):
    region: int
    from_node: int
    to_node: int
    store_bytes: int = 0  # the region's store when planned: what its snapshot moves
    # The nodes the new replica may copy from (the mover picks the least busy when it starts
    # the move); every planner names at least one.
    sources: list[int] = Field(default_factory=list)


class MovesProgress(BaseModel):
    """An operation of many moves (a drain, a rebalance): its plan and how far it got."""

    planned: list[Move] = Field(default_factory=list)
    done: list[int] = Field(default_factory=list)
    running: list[int] = Field(default_factory=list)
    failed: dict[int, str] = Field(default_factory=dict)
    stalled: dict[int, str] = Field(default_factory=dict)  # running region -> what it waits for
    # running region -> the node it waits for, which refused it for not answering
    waiting: dict[int, str] = Field(default_factory=dict)
    # regions whose destination did not take them, and where they went instead
    rerouted: dict[int, str] = Field(default_factory=dict)
    set_aside: list[int] = Field(default_factory=list)  # retried after the others (rebalance)
    max_concurrent: int = 2
    paused: bool = False
    began: datetime | None = None  # when the plan was made (workflow time)
    runs: int = 1  # the workflow's runs so far: it continues as new to keep each one small
    elapsed_s: float = 0.0  # since the first move could start
    # bytes of the finished moves' stores, their rate over elapsed_s, and the time left at it
    bytes_total: int = 0
    bytes_moved: int = 0
    rate_bytes_per_s: float = 0.0
    eta_s: float | None = None
    # A rebalance plans again once a round of moves is done (a region moves once per round):
    # the round it is in, and the moves done in the rounds before.
    round: int = 1
    earlier: list[Move] = Field(default_factory=list)
    # region -> what its move's migration said it did (a repair keeps them for its result)
    outcomes: dict[int, str] = Field(default_factory=dict)
    # regions the plan leaves where they are, with why (a move would lower their diversity)
    kept: dict[int, str] = Field(default_factory=dict)
    # regions left less diverse than the cluster allows (a repair's, where only a less diverse
    # place fits; a move allowed to), with why
    under_diversified: dict[int, str] = Field(default_factory=dict)

    @property
    def left(self) -> int:
        return len(self.planned) - len(self.done) - len(self.failed) - len(self.running)

    def measured(self, elapsed_s: float) -> Self:
        """A copy with the byte counts, rate and ETA as of `elapsed_s`."""
        return self.rated(elapsed_s, *self.byte_counts())

    def byte_counts(self) -> tuple[int, int, int]:
        """The plan's store bytes: in all, of the moves done, of those failed."""
        sizes = {m.region: m.store_bytes for m in self.planned}
        moved = sum(sizes[r] for r in self.done)
        return sum(sizes.values()), moved, sum(sizes[r] for r in self.failed)

    def rated(self, elapsed_s: float, total: int, moved: int, gone: int) -> Self:
        """A copy with these byte counts (`gone`: of failed moves), the rate and the ETA."""
        rate = moved / elapsed_s if elapsed_s > 0 else 0.0
        eta = (total - moved - gone) / rate if rate > 0 else None
        return self.model_copy(
            update={
                "elapsed_s": elapsed_s,
                "bytes_total": total,
                "bytes_moved": moved,
                "rate_bytes_per_s": rate,
                "eta_s": eta,
            }
        )

    def next_round(self, planned: list[Move]) -> None:
        """Start the next round with `planned`: this round's moves done join the earlier."""
        done = set(self.done)
        self.earlier += [m for m in self.planned if m.region in done]
        self.planned, self.done, self.round = planned, [], self.round + 1

    def moved(self) -> list[Move]:
        """Every move done, in every round."""
        done = set(self.done)
        return [*self.earlier, *(m for m in self.planned if m.region in done)]


class DrainProgress(MovesProgress):
    node: int


class DrainInput(BaseModel):
    node: int
    max_concurrent: int = 2  # migrations at once, cluster-wide
    max_per_node: int = 2  # migrations at once into one destination node
    down_timeout_s: float = 60.0
    stall_after_s: float = 60.0  # a move whose lag is flat this long is "stalled"
    high_watermark: float = HIGH_WATERMARK  # no move takes a node's disk past this fraction
    # a move that leaves its region less diverse is made only if allowed (else the region is
    # kept, with why)
    allow_less_diverse: bool = False
    # each new replica copies from the holders nearest it (its zone), the least busy of them;
    # False: the least busy live holder wherever it stands
    nearest_source: bool = True
    # Set when the drain continues as new: its plan and how far it got. Left out to start one.
    carried: DrainProgress | None = None


class DrainResult(BaseModel):
    node: int
    moved: list[Move]
    failed: dict[int, str]
    message: str
    kept: dict[int, str] = Field(default_factory=dict)  # not moved: a move would lower diversity
    under_diversified: dict[int, str] = Field(default_factory=dict)


class RepairProgress(MovesProgress):
    node: int
    unrepairable: dict[int, str] = Field(default_factory=dict)  # region -> why not


class RepairInput(BaseModel):
    node: int  # the node that does not answer: its regions get a new replica elsewhere
    max_concurrent: int = 2  # migrations at once, cluster-wide
    max_per_node: int = 2  # migrations at once sending from or receiving into one node
    down_timeout_s: float = 60.0  # a new replica's node unreachable this long fails its move
    dead_wait_s: float = 2.0  # how long each move waits for the dead node before skipping it
    stall_after_s: float = 60.0
    high_watermark: float = HIGH_WATERMARK  # no new replica takes a node's disk past this
    carried: RepairProgress | None = None  # set when it continues as new


class RegionRepair(BaseModel):
    region: int
    to_node: int
    account: str  # what the survivors hold of the dead node's writes


class RepairResult(BaseModel):
    node: int
    repaired: list[RegionRepair]
    failed: dict[int, str]  # region -> why it was not repaired
    message: str
    # repaired where only a less diverse place fitted: region -> why
    under_diversified: dict[int, str] = Field(default_factory=dict)


class RebalanceInput(BaseModel):
    nodes: list[int] = Field(default_factory=list)  # the destinations; empty: every live node
    max_concurrent: int = 2  # migrations at once, cluster-wide
    max_per_node: int = 2  # migrations at once sending from or receiving into one node
    down_timeout_s: float = 60.0
    stall_after_s: float = 60.0  # a move whose lag is flat this long is "stalled"
    high_watermark: float = HIGH_WATERMARK  # no move takes a node's disk past this fraction
    # a move of bytes that leaves its region less diverse is made only if allowed
    allow_less_diverse: bool = False
    carried: MovesProgress | None = None  # set when it continues as new


class RebalanceResult(BaseModel):
    moved: list[Move]
    failed: dict[int, str]
    rounds: int
    message: str
    kept: dict[int, str] = Field(default_factory=dict)  # not moved: a move would lower diversity
    under_diversified: dict[int, str] = Field(default_factory=dict)  # that it could not raise


class Decision(BaseModel):
    at: datetime  # workflow time
    what: str


class Unreachable(BaseModel):
    """A node the worker does not reach but a live node does: shown, never repaired."""

    since: datetime  # the first probe that saw it so
    reached_by: list[int]  # the live nodes that reach it, at the latest probe


class AutopilotState(BaseModel):
    """What the autopilot knows between probes (and carries when it continues as new)."""

    dead_after_s: float = 300.0  # a node down this long is declared dead and repaired
    probe_every_s: float = 10.0
    down_since: dict[int, datetime] = Field(default_factory=dict)  # node -> first probe down
    repairing: list[int] = Field(default_factory=list)  # repairs started, not ended
    repaired: list[int] = Field(default_factory=list)  # repaired and still down
    paused: str = ""  # why repairs are paused (more than one node down), if they are
    # nodes the worker does not reach but a live node does (never repaired), and nodes that do
    # not answer and that no live node could be asked about (held: neither up nor down)
    unreachable: dict[int, Unreachable] = Field(default_factory=dict)
    unconfirmed: list[int] = Field(default_factory=list)
    decisions: list[Decision] = Field(default_factory=list)  # the latest, newest last
    probes: int = 0
    # a consistency check of every region this often (None: none), mending a clear minority
    # if check_repair; the one it started and runs, and when it started the last
    check_every_s: float | None = None
    check_repair: bool = False
    checking: str | None = None
    last_check: datetime | None = None
    # zones every node of which does not answer (a partition, not deaths), and those back
    # since, for which a rebalance is due once no node is silent
    zones_down: list[str] = Field(default_factory=list)
    zones_back: list[str] = Field(default_factory=list)
    under_diversified: int | None = None  # regions, at the latest look at the placement


class AutopilotInput(BaseModel):
    dead_after_s: float = 300.0
    probe_every_s: float = 10.0
    check_every_s: float | None = None  # off by default: `airctl check --every` schedules one
    check_repair: bool = False
    carried: AutopilotState | None = None  # set when it continues as new
