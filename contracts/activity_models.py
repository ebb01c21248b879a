"""Inputs and results of the activities (pydantic, through the SDK's pydantic converter)."""

from __future__ import annotations

import enum

from pydantic import BaseModel, Field

from contracts.killpoints import KillPoint


class Peer(BaseModel, frozen=True):
    """A replica holder: node id and gRPC address, as IoTDB's Peer."""

    node_id: int
    address: str


class StepInput(BaseModel):
    """What every step carries: the region, and the worker kill points around its side effect."""

    region: int
    kill_before: KillPoint | None = None
    kill_after: KillPoint | None = None
    # A quick try, inside the workflow task: rather than wait for a node, give up (`NotQuick`)
    # and leave the step to the regular, heartbeating activity.
    quick: bool = False


class NodeStep(StepInput):
    """A step on one node."""

    node: Peer


class CreateLocalPeerInput(NodeStep):
    peers: list[Peer]


class SetActiveInput(NodeStep):
    active: bool
    for_deletion: bool = False
    # A leaving node that stays unreachable this long is skipped, as IoTDB does.
    skip_if_down_after_s: float | None = None


class ChannelsInput(StepInput):
    """Tell `peers` to create (or drop) their channels to `target`."""

    target: Peer
    peers: list[Peer]
    coordinator: Peer | None = None  # creates a snapshot channel, after the others
    write_off: bool = False  # dropping: the target was removed while down (DropChannelRequest)


class CaptureTargetInput(StepInput):
    nodes: list[Peer]
    origins: list[int] | None = None  # None: every origin
    # A node without a replica of the region contributes nothing (instead of failing): for a
    # leaving node, which deletes its replica by itself once the others hold all its writes.
    missing_ok: bool = False


class WaitTransferInput(StepInput):
    receivers: list[Peer]
    target: dict[int, int]
    slice_s: float = 5.0  # return after this long so the workflow can show progress


class CatchUpInput(StepInput):
    """Bring `survivors` to the longest prefix of `origin`'s writes that any of them holds."""

    origin: int  # a peer that is down
    survivors: list[Peer]
    down_timeout_s: float = 60.0  # a survivor that does not answer this long fails the step


class Disk(BaseModel):
    """A node's data disk, as it reports it: bytes in all and bytes used."""

    capacity: int
    used: int


class ReplicaState(BaseModel):
    node_id: int
    address: str
    peers: list[Peer]
    active: bool
    installed: bool
    leaving: bool


class RegionDescription(BaseModel):
    region: int
    replicas: list[ReplicaState] = Field(default_factory=list)
    known_nodes: list[Peer] = Field(default_factory=list)
    unreachable: list[int] = Field(default_factory=list)
    # what judging a destination's place needs: each known node's locality tiers (its own
    # report, or the directory's for one that does not answer), the disks of those that
    # answered, and the region's largest replica (what a new one will hold)
    localities: dict[int, list[str]] = Field(default_factory=dict)
    disks: dict[int, Disk] = Field(default_factory=dict)
    store_bytes: int = 0
    # holders whose replica the others no longer list (contracts/members.py): removed while
    # cut off, retiring by themselves; not among `replicas`
    stale: list[int] = Field(default_factory=list)

    def holders(self) -> list[int]:
        return sorted(r.node_id for r in self.replicas)

    def replica(self, node_id: int) -> ReplicaState | None:
        return next((r for r in self.replicas if r.node_id == node_id), None)

    def node(self, node_id: int) -> Peer | None:
        return next((n for n in self.known_nodes if n.node_id == node_id), None)


class StepResult(BaseModel):
    changed: bool = False
    skipped: bool = False  # the node was down and the step was skipped, as IoTDB does
    message: str = ""


class TransferProgress(BaseModel):
    complete: bool
    lag: int  # seqs still to apply, summed over receivers and origins
    rate: float = 0.0  # seqs per second over the slice
    elapsed_s: float = 0.0
    unreachable: list[int] = Field(default_factory=list)  # receivers that did not answer
    awaiting_snapshot: list[int] = Field(default_factory=list)  # receivers without their store
    behind: dict[int, int] = Field(default_factory=dict)  # origin -> seqs not yet applied
    snapshot_received: int = 0  # bytes the receivers awaiting a snapshot hold of it
    # ... and the limit its sender sends it at (bytes/s, 0: none), which `auto` sets or not
    snapshot_limit: float = 0.0
    snapshot_limit_auto: bool = False


class ReleaseInput(NodeStep):
    skip_if_down_after_s: float | None = None


class ClusterDescription(BaseModel):
    """Which nodes hold which regions, as the reachable nodes say."""

    nodes: list[Peer]
    holders: dict[int, list[int]] = Field(default_factory=dict)  # region -> node ids
    unreachable: list[int] = Field(default_factory=list)
    store_bytes: dict[int, int] = Field(default_factory=dict)  # region -> its largest replica
    # region -> its peers, as the reachable holders list them: a node that does not answer
    # shows here, not among the holders
    peers: dict[int, list[int]] = Field(default_factory=dict)
    disks: dict[int, Disk] = Field(default_factory=dict)  # reachable node -> its data disk
    # node -> its locality tiers, most significant first (none: it stands apart): its own
    # report, or the directory's for a node that does not answer
    localities: dict[int, list[str]] = Field(default_factory=dict)
    # region -> holders the others no longer list (contracts/members.py): removed while cut
    # off, retiring by themselves; neither among `holders` nor listing `peers`
    stale: dict[int, list[int]] = Field(default_factory=dict)


class Reach(enum.StrEnum):
    """How a node looks from the asker (the worker, airctl) and from the live nodes it asked
    about it (runtime/views.py decides which)."""

    UP = "up"  # it answered the asker
    UNREACHABLE = "unreachable"  # not the asker, but a live node reaches it: not down
    DOWN = "down"  # not the asker, and no live node asked reaches it
    UNCONFIRMED = "unconfirmed"  # not the asker, and no live node could be asked about it


class NodeView(BaseModel, frozen=True):
    """One node, as the two-step probe saw it."""

    reach: Reach
    reached_by: list[int] = Field(default_factory=list)  # live nodes that reach it
    asked: list[int] = Field(default_factory=list)  # live nodes that answered about it
    zone: str = ""  # its first locality tier as the directory names it (zone=b); "": none
