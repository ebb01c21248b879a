"""What a node answers about one replica: plain values, read from it at the time of asking."""

from __future__ import annotations

from dataclasses import dataclass

from node.disk import DiskUsage
from node.replica import ChannelStatus, PeerInfo, Replica, channel_name
from node.snapshot import Sent


@dataclass(frozen=True)
class RegionSummary:
    region: int
    peers: list[PeerInfo]
    active: bool
    installed: bool
    leaving: bool
    store_bytes: int
    check_reads: int

    @classmethod
    def of(cls, replica: Replica) -> RegionSummary:
        meta = replica.meta
        return cls(
            region=replica.region,
            peers=list(meta.peers),
            active=meta.active,
            installed=replica.installed,
            leaving=meta.leaving,
            store_bytes=replica.store_bytes(),
            check_reads=replica.check_reads,
        )


@dataclass(frozen=True)
class RegionPage:
    regions: list[RegionSummary]
    next_after: int  # 0: the last page
    disk: DiskUsage


@dataclass(frozen=True)
class ChannelReport:
    name: str
    receiver: PeerInfo
    snapshot: bool
    status: ChannelStatus
    acked: int
    lag: int
    snapshot_sent: Sent


@dataclass(frozen=True)
class ProgressReport:
    region: int
    applied: dict[int, int]
    max_assigned: int
    channels: list[ChannelReport]
    active: bool
    installed: bool
    leaving: bool
    peers: list[PeerInfo]
    departed: list[int]
    written_off: list[int]
    confirmed: bool
    snapshot_received: int

    @classmethod
    def of(cls, replica: Replica) -> ProgressReport:
        top = replica.max_assigned()
        meta = replica.meta
        return cls(
            region=replica.region,
            applied=dict(replica.applied()),
            max_assigned=top,
            channels=[
                ChannelReport(
                    name=channel_name(replica.region, replica.node_id, rid),
                    receiver=state.receiver,
                    snapshot=state.snapshot,
                    status=state.status,
                    acked=state.acked,
                    lag=max(top - state.acked, 0),
                    snapshot_sent=replica.snapshots_sent.get(rid, Sent()),
                )
                for rid, state in sorted(meta.channels.items())
            ],
            active=meta.active,
            installed=replica.installed,
            leaving=meta.leaving,
            peers=list(meta.peers),
            departed=list(meta.departed),
            written_off=list(meta.written_off),
            confirmed=replica.confirmed,
            snapshot_received=replica.snapshot_received(),
        )


@dataclass(frozen=True)
class TransferCheck:
    complete: bool
    lag: dict[int, int]
    installed: bool
    snapshot_received: int
    snapshot_limit: tuple[float, bool]  # its sender's: bytes/s (0: none), set by `auto`

    @classmethod
    def of(cls, replica: Replica, target: dict[int, int]) -> TransferCheck:
        """Complete when the replica has applied at least `target` (and has its snapshot)."""
        applied = replica.applied()
        lag = {o: t - applied.get(o, 0) for o, t in target.items() if t > applied.get(o, 0)}
        # without its snapshot the replica applied nothing (lag is the whole target), and it
        # is incomplete even for an empty target: the snapshot is what it waits for
        installed = replica.installed
        return cls(
            complete=installed and not lag,
            lag=lag,
            installed=installed,
            snapshot_received=replica.snapshot_received(),
            snapshot_limit=replica.snapshot_limit(),
        )


@dataclass(frozen=True)
class ReleaseStatus:
    released: bool
    exists: bool
    detail: str

    @classmethod
    def of(cls, region: int, replica: Replica | None) -> ReleaseStatus:
        if replica is None:
            return cls(True, False, f"region {region} has no replica here")
        if not replica.meta.leaving:
            return cls(False, True, f"region {region} is not leaving")
        draining = [
            f"node {rid} (acked {s.acked} of {replica.max_assigned()})"
            for rid, s in replica.meta.channels.items()
            if s.status == "RUNNING"
        ]
        if draining:
            return cls(False, True, "channels still draining to " + ", ".join(draining))
        if replica.inbound:
            return cls(False, True, f"{replica.inbound} inbound transfer(s) still open")
        return cls(True, True, f"region {region} released all resources")


@dataclass(frozen=True)
class DigestReport:
    count: int
    hash: str
    active: bool
    installed: bool


@dataclass(frozen=True)
class ThrottleChange:
    bytes_per_s: float | None
    previous: float | None
