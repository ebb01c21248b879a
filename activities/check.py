"""The consistency check of one region, as an activity: its replicas read range by range at a
bounded rate, hashes compared, and the keys of a range that differs diffed.

Read-only on every node, so a retry after a crash at any line is safe; it goes on from the
last range it heartbeated, not from the first.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError

from activities.keep_alive import heartbeat
from activities.node_calls import NodeCalls
from contracts.activity_models import Peer
from contracts.check import (
    PROGRESS_QUERY,
    CheckProgress,
    CheckRegionInput,
    RegionCheck,
    ReplicaDiff,
    Verdict,
)
from protos import air_node_pb2 as pb
from runtime.clients import RPC_TIMEOUT_S
from runtime.reading import describe_region

EXAMPLES = 3  # keys named per replica in a finding
RATE_READ_S = 1.0  # how often a region's check reads the rate its workflow asks now
RATE_QUERY_TIMEOUT = timedelta(seconds=5)
Key = tuple[str, int]
Row = tuple[float, int, int]  # value, origin, seq: a key's point on one replica


class CheckActivities:
    def __init__(self, nodes: NodeCalls) -> None:
        self.nodes = nodes

    @activity.defn
    async def check_region(self, req: CheckRegionInput) -> RegionCheck:
        """Compare the region's replicas at the vector all of them have applied.

        Read-only: retry-safe, and resumed from the last range heartbeated.
        """
        region = await describe_region(req.region, self.nodes.directory.all(), self.nodes.clients)
        replicas = sorted(
            (Peer(node_id=r.node_id, address=r.address) for r in region.replicas if r.installed),
            key=lambda p: p.node_id,
        )
        result = RegionCheck(
            region=req.region, verdict=Verdict.EQUAL, replicas=[p.node_id for p in replicas]
        )
        if region.unreachable:
            result.verdict = Verdict.UNCHECKED
            result.why = f"nodes {region.unreachable} do not answer"
            return result
        if len(replicas) < 2:
            result.verdict = Verdict.UNCHECKED
            result.why = f"{len(replicas)} replica(s) hold its data: nothing to compare"
            return result
        resumed = _Resume.from_heartbeat(result)
        if resumed is None:
            resumed = _Resume(settled=await self._settled(req.region, replicas), result=result)
        await _Comparison(self.nodes, req, replicas, resumed).run()
        return resumed.result

    async def _settled(self, region: int, replicas: list[Peer]) -> dict[int, int]:
        """The componentwise minimum of the replicas' applied vectors: applied everywhere."""
        request = pb.RegionRequest(region=region)
        vectors = await asyncio.gather(
            *(
                self.nodes.call(p, lambda stub: stub.GetProgress(request, timeout=RPC_TIMEOUT_S))
                for p in replicas
            )
        )
        origins = {o for v in vectors for o in v.applied}
        return {o: min(v.applied.get(o, 0) for v in vectors) for o in origins}

    def all(self) -> list[Callable[..., Awaitable[object]]]:
        return [self.check_region]


class _Resume(BaseModel):
    """What a check of a region heartbeats: a retry goes on from `after` with the same vector."""

    settled: dict[int, int]
    result: RegionCheck
    after: tuple[str, int] | None = None  # the last key compared
    done: bool = False  # every range compared: a retry only concludes
    off: dict[int, int] = Field(default_factory=dict)  # replica -> keys off the majority

    @classmethod
    def from_heartbeat(cls, fresh: RegionCheck) -> _Resume | None:
        """The last heartbeat of an earlier attempt on the same replicas, if any."""
        details = activity.info().heartbeat_details
        if not details or not details[-1]:
            return None
        resumed = cls.model_validate(details[-1])
        if resumed.result.replicas != fresh.replicas:
            return None  # the region moved meanwhile: start over
        return resumed


class _Comparison:
    """One region's replicas compared range by range, the first replica setting each range's
    end (its `range_points`-th key), the others read to the same key."""

    def __init__(
        self, nodes: NodeCalls, req: CheckRegionInput, replicas: list[Peer], state: _Resume
    ) -> None:
        self.nodes = nodes
        self.req = req
        self.replicas = replicas
        self.state = state
        self.settled = state.settled
        self.result = state.result
        self.diffs = {p.node_id: ReplicaDiff(node=p.node_id) for p in replicas}
        for d in self.result.diffs:
            self.diffs[d.node] = d
        self.off = Counter(state.off)
        self.cpu_s: defaultdict[int, float] = defaultdict(float)  # node -> CPU s, this attempt
        self._paced_at(req.rate_mb_s)

    async def run(self) -> None:
        while not self.state.done:
            self.state.done = not await self._range()
            self.state.off = dict(self.off)
            self.result.diffs = list(self.diffs.values())
            heartbeat(self.state.model_dump(mode="json"))
            await self._pace()
        self._conclude()

    async def _range(self) -> bool:
        """Compare the next range; whether any is left after it."""
        first, *others = self.replicas
        lead = await self._read(first, self._request(limit=self.req.range_points))
        until = (lead.last_series, lead.last_ts) if lead.more else None
        replies = [
            lead,
            *await asyncio.gather(*(self._read(p, self._request(until=until)) for p in others)),
        ]
        self.result.settled += lead.settled
        self.result.unsettled += max(r.unsettled for r in replies)
        self.result.bytes_read += max(r.bytes_read for r in replies)
        if len({r.hash for r in replies}) > 1:
            listed = self._request(until=until, list_points=True)
            self._diff(await asyncio.gather(*(self._read(p, listed) for p in self.replicas)))
        self.state.after = until
        return lead.more

    def _request(
        self, limit: int = 0, until: Key | None = None, list_points: bool = False
    ) -> pb.CheckRangeRequest:
        """The range after the last key compared, to `until` (None: to the end)."""
        request = pb.CheckRangeRequest(
            region=self.req.region, settled=self.settled, limit=limit, list_points=list_points
        )
        if self.state.after is None:
            request.from_start = True
        else:
            request.after_series, request.after_ts = self.state.after
        if until is None:
            request.to_end = True  # a limit, if any, ends the range
        else:
            request.until_series, request.until_ts = until
        return request

    async def _read(self, node: Peer, request: pb.CheckRangeRequest) -> pb.CheckRangeReply:
        reply = await self.nodes.call(
            node, lambda stub: stub.CheckRange(request, timeout=RPC_TIMEOUT_S)
        )
        self.cpu_s[node.node_id] += reply.cpu_s
        behind = {o: s for o, s in self.settled.items() if reply.applied.get(o, 0) < s}
        if behind:  # rebuilt since the vectors were read: compare again from the start
            heartbeat(None)  # the retry must not resume at this vector
            raise RuntimeError(
                f"node {node.node_id} has not applied {behind} of region {self.req.region} "
                "any more (its replica was rebuilt?): the check starts again"
            )
        return reply

    def _diff(self, replies: list[pb.CheckRangeReply]) -> None:
        """Each key's point on each replica, against the point most replicas hold."""
        held: list[dict[Key, Row]] = [
            {(p.series, p.timestamp): (p.value, p.origin, p.seq) for p in r.points} for r in replies
        ]
        for key in sorted(set().union(*held)):
            rows = [h.get(key) for h in held]
            if any(row is not None and not self._settled(row) for row in rows):
                continue  # a write in flight on some replica: compared by a later check
            top, votes = Counter(rows).most_common(1)[0]
            if votes * 2 <= len(rows):
                self.result.ambiguous_keys += 1
                continue
            for peer, row in zip(self.replicas, rows, strict=True):
                if row != top:
                    self._record(peer.node_id, key, row, top)

    def _settled(self, row: Row) -> bool:
        _, origin, seq = row
        return seq <= self.settled.get(origin, 0)

    def _record(self, node: int, key: Key, row: Row | None, majority: Row | None) -> None:
        diff = self.diffs[node]
        self.off[node] += 1
        if row is None:
            diff.missing += 1
            what = "missing"
        elif majority is None:
            diff.extra += 1
            what = "extra"
        else:
            diff.different += 1
            what = f"{row[0]!r} where the others hold {majority[0]!r}"
        if len(diff.examples) < EXAMPLES:
            diff.examples.append(f"{key[0]}@{key[1]}: {what}")

    def _paced_at(self, rate_mb_s: float) -> None:
        """Pace from now at `rate_mb_s`: what was read before is not counted against it."""
        now = time.monotonic()
        self.rate_mb_s, self.rate_read_at = rate_mb_s, now
        self.began, self.read_before = now, self.result.bytes_read
        self.cpu_before = dict(self.cpu_s)

    async def _pace(self) -> None:
        """Sleep as long as keeps every node within the rate and its share of a core."""
        while True:
            await self._follow_rate()
            read = self.result.bytes_read - self.read_before
            cpu = max((s - self.cpu_before.get(n, 0.0) for n, s in self.cpu_s.items()), default=0)
            due = pace(read, cpu, self.rate_mb_s, self.req.cpu_share)
            wait = due - (time.monotonic() - self.began)
            if wait <= 0:
                return
            await asyncio.sleep(min(wait, RATE_READ_S))
            heartbeat(self.state.model_dump(mode="json"))  # alive while it waits

    async def _follow_rate(self) -> None:
        """Take up the rate the workflow asks now (`set_rate`), read at most every RATE_READ_S:
        a check started at a crawl must not keep crawling through a large region."""
        if time.monotonic() - self.rate_read_at < RATE_READ_S:
            return
        self.rate_read_at = time.monotonic()
        workflow_id = activity.info().workflow_id
        if workflow_id is None:  # not a workflow's: no rate asked but its own
            return
        try:
            handle = activity.client().get_workflow_handle(workflow_id)
            asked = await handle.query(
                PROGRESS_QUERY, result_type=CheckProgress, rpc_timeout=RATE_QUERY_TIMEOUT
            )
        except (RPCError, WorkflowQueryFailedError, RuntimeError) as e:  # none answers: keep it
            activity.logger.debug("the check's rate not read: %s", e)
            return
        if asked.rate_mb_s != self.rate_mb_s:
            self._paced_at(asked.rate_mb_s)

    def _conclude(self) -> None:
        diverged = [d for d in self.diffs.values() if d.missing or d.extra or d.different]
        self.result.diffs = diverged
        if not diverged and not self.result.ambiguous_keys:
            return
        self.result.verdict = Verdict.DIVERGED
        if len(self.off) == 1 and not self.result.ambiguous_keys:
            self.result.minority = next(iter(self.off))


def pace(read: int, cpu_s: float, rate_mb_s: float, cpu_share: float) -> float:
    """Seconds that reading `read` bytes with `cpu_s` of a node's CPU must take at least: the
    bound reached first paces the check (rate 0: no byte bound; share 1 or more: no CPU bound).
    """
    by_bytes = read / (rate_mb_s * 1e6) if rate_mb_s > 0 else 0.0
    by_cpu = cpu_s / cpu_share if 0 < cpu_share < 1 else 0.0
    return max(by_bytes, by_cpu)
