"""The node's Prometheus metrics (prometheus_client): writes, replication, latencies, replicas,
and the process's own (CPU, memory, file descriptors), served on --metrics-port."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import Counter, Gauge, Histogram, Info, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from contracts.locality import format_locality, zone_of
from node.disk import DiskUsage

# Write latencies on this machine run from ~1 ms (one point) to ~100 ms (a large batch).
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class NodeMetrics:
    def __init__(self) -> None:
        self.writes = Counter("air_writes", "User write batches acknowledged", ["region"])
        self.written_points = Counter("air_written_points", "User points acknowledged", ["region"])
        self.applied_points = Counter(
            "air_applied_points", "Points applied from replication channels", ["region"]
        )
        self.transfer_bytes = Counter(
            "air_transfer_bytes", "Bytes sent on replication channels", ["region"]
        )
        self.snapshot_bytes = Counter(
            "air_snapshot_bytes_sent",
            "Snapshot bytes sent, by the zone of this node and of the receiver (their first "
            "locality tier's value; none: a node that names no locality)",
            ["from_zone", "to_zone"],
        )
        self.snapshot_limit = Gauge(
            "air_snapshot_rate_limit_bytes_per_second",
            "The limit snapshot chunks go at now (0: none); auto moves it",
        )
        self.snapshot_limit_auto = Gauge(
            "air_snapshot_rate_limit_auto", "1 while auto sets the snapshots' limit"
        )
        self.sync_lag = Gauge(
            "air_sync_lag", "Seqs of this node's origin not yet acked", ["region", "receiver"]
        )
        self.stream_breaks = Counter(
            "air_stream_breaks",
            "Streams between nodes that broke once open (a lost link, a peer gone), by kind "
            "(channel, snapshot, forward) and end (sender, receiver)",
            ["kind", "end"],
        )
        self.write_latency = Histogram(
            "air_write_latency_seconds",
            "A user write, from its arrival to its durable commit",
            buckets=LATENCY_BUCKETS,
        )
        self.rpc_duration = Histogram(
            "air_rpc_duration_seconds",
            "A served request (unary RPCs), by method",
            ["method"],
            buckets=LATENCY_BUCKETS,
        )


METRICS = NodeMetrics()


def zone_label(zone: str) -> str:
    """A zone tier (`zone=eu-1a`) as a label value: `eu-1a`; `none` for no locality."""
    return zone.partition("=")[2] or "none"


class ReplicaStates(Collector):
    """How many replicas this node holds in each state, counted when scraped."""

    def __init__(self, states: Callable[[], Iterator[str]]) -> None:
        self.states = states

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "air_replicas",
            "Replicas held here: active, joining (inactive, catching up) or leaving",
            labels=["state"],
        )
        counts = dict.fromkeys(("active", "joining", "leaving"), 0)
        for state in self.states():
            counts[state] += 1
        for state, count in counts.items():
            family.add_metric([state], count)
        yield family


def serve_metrics(
    host: str,
    port: int,
    states: Callable[[], Iterator[str]],
    disk: Callable[[], DiskUsage],
    locality: list[str],
) -> None:
    """Serve every metric, the process collectors' too, on http://host:port/metrics."""
    REGISTRY.register(ReplicaStates(states))
    where = Info("air_node", "Where this node stands: its --locality, and its zone")
    where.info({"locality": format_locality(locality), "zone": zone_label(zone_of(locality))})
    capacity = Gauge("air_disk_capacity_bytes", "This node's data disk (or --disk-capacity)")
    capacity.set_function(lambda: disk().capacity)
    used = Gauge("air_disk_used_bytes", "Bytes used on this node's data disk")
    used.set_function(lambda: disk().used)
    start_http_server(port, addr=host)
