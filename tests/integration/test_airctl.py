"""airctl end to end, against a stack that `airctl up` started (subprocesses, free ports)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

import pytest
from temporalio.client import Client

from airctl.progress import live_progress, snapshot
from contracts.ids import AUTOPILOT_WORKFLOW_ID, region_workflow_id
from contracts.models import Phase, Progress
from stack.processes import free_ports, temporal_binary
from tests.support.waiting import eventually
from workflows.autopilot import AutopilotWorkflow
from workflows.drain import DrainNodeWorkflow

T = TypeVar("T")
HELD_MBPS = "0.000001"  # a source throttled so (1 byte/s) holds its transfer until lifted


class Airctl:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.cluster = root / "cluster.json"
        self.up_proc: subprocess.Popen[bytes] | None = None
        self.ups = 0
        ports = free_ports(2)
        self.ports = {"temporal": ports[0], "ui": ports[1]}
        self.base_port = free_ports(4, consecutive=True)[0]  # nodes take base, base+1, ...

    def __call__(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 180,
        cluster: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "airctl", "--cluster", str(cluster or self.cluster), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
            env={**os.environ, **(env or {})},
        )
        if check and done.returncode != 0:
            raise AssertionError(f"airctl {' '.join(args)} -> {done.returncode}\n{done.stderr}")
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self("--json", *args).stdout)

    def up(self, *extra: str, env: dict[str, str] | None = None) -> None:
        self.ups += 1
        path = self.root / f"up-{self.ups}.log"
        log = open(path, "wb")  # noqa: SIM115 (the process owns it)
        self.up_proc = subprocess.Popen(
            [
                sys.executable, "-m", "airctl", "--cluster", str(self.cluster), "up",
                "--data-dir", str(self.root / "data"),
                "--temporal-port", str(self.ports["temporal"]),
                "--ui-port", str(self.ports["ui"]),
                "--base-port", str(self.base_port),
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while "stack up" not in path.read_text():
            assert self.up_proc.poll() is None, path.read_text()
            assert time.monotonic() < deadline, "airctl up did not come up"
            time.sleep(0.05)

    def until(
        self,
        what: str,
        probe: Callable[[Client], Awaitable[T]],
        check: Callable[[T], bool],
        timeout: float = 60,
    ) -> T:
        """Await the stack's workflows' state from this process: a query per poll, where an
        airctl process per poll would cost a second of CPU each on a busy machine."""
        address = json.loads(self.cluster.read_text())["temporal_address"]

        async def wait() -> T:
            client = await Client.connect(address)
            return await eventually(lambda: probe(client), check, timeout=timeout, what=what)

        return asyncio.run(wait())

    def hold(self, *nodes: int) -> None:
        """Hold these nodes' transfers (1 byte/s) until `lift`."""
        self._throttle(nodes, HELD_MBPS)

    def lift(self, *nodes: int) -> None:
        self._throttle(nodes, "0")

    def _throttle(self, nodes: tuple[int, ...], mbps: str) -> None:
        for node in nodes:
            self("throttle", "--node", str(node), "--mbps", mbps)

    def until_transferring(self, region: int) -> None:
        """Wait for the region's change to be in its transfer (which a hold keeps it in)."""

        async def progress(client: Client) -> Progress | None:
            return await snapshot(client, client.get_workflow_handle(region_workflow_id(region)))

        self.until(
            f"region {region}'s transfer",
            progress,
            lambda p: p is not None and p.phase == Phase.TRANSFERRING,
        )

    def wait_status(self, region: int) -> dict[str, Any]:
        """The region's change once it has ended (`airctl status --wait`)."""
        done = self("--json", "status", "--region", str(region), "--wait", check=False)
        assert done.returncode in (0, 1), done.stderr
        status: dict[str, Any] = json.loads(done.stdout)
        assert (done.returncode == 0) == (status["status"] == "COMPLETED"), (done, status)
        return status

    def down(self) -> None:
        if self.up_proc is not None and self.up_proc.poll() is None:
            self.up_proc.send_signal(signal.SIGTERM)
            self.up_proc.wait(60)


def schedules(address: str) -> str:
    """`temporal schedule list` of the stock CLI."""
    listed = subprocess.run(
        [temporal_binary(), "schedule", "list", "--address", address],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return listed.stdout


@pytest.fixture
def airctl(tmp_path: Path) -> Iterator[Airctl]:
    ctl = Airctl(tmp_path)
    try:
        yield ctl
    finally:
        ctl.down()


# a shell set up for a production cluster: none of it may reach the local stack
PROD = {"TEMPORAL_API_KEY": "secret", "TEMPORAL_NAMESPACE": "elsewhere", "TEMPORAL_PROFILE": "prod"}


def test_create_load_migrate_verify_status(airctl: Airctl) -> None:
    airctl.up(env=PROD)  # its worker too
    config = json.loads(airctl.cluster.read_text())
    assert len(config["nodes"]) == 4 and config["ui_url"].startswith("http://127.0.0.1:")
    # every node and the worker serve metrics, each a target of the discovery file
    groups = json.loads(airctl.cluster.with_name("prometheus-targets.json").read_text())
    instances = {g["labels"]["instance"]: g["targets"][0] for g in groups}
    assert sorted(instances) == ["node1", "node2", "node3", "node4", "worker"], instances
    for name, target in instances.items():
        with urllib.request.urlopen(f"http://{target}/metrics", timeout=10) as page:
            text = page.read().decode()
        assert ("air_" if name.startswith("node") else "temporal_") in text, (name, text[:300])

    airctl("region", "create", "5", "--peers", "1,2,3")
    regions = airctl.json("regions")
    assert sorted(regions["5"]) == ["1", "2", "3"]
    log = airctl.root / "acked.log"
    loaded = airctl.json("load", "5", "--seconds", "1", "--acked-log", str(log))
    assert loaded["acked"] > 0
    wrote = airctl.json("write", "5", "--count", "100", "--via", "2", "--acked-log", str(log))
    assert wrote["acked"] == 100

    migrated = airctl.json("migrate", "5", "--from", "1", "--to", "4", "--wait")
    assert migrated["ok"] and migrated["result"]["remove"]["clean"], migrated
    verified = airctl.json("verify", "5", "--acked-log", str(log))
    assert verified["ok"] and sorted(verified["replicas"]) == ["2", "3", "4"], verified
    assert verified["acked"] == loaded["acked"] + 100
    status = airctl.json("status", "--region", "5")
    assert status["status"] == "COMPLETED" and status["progress"]["phase"] == "DONE"
    digest = airctl.json("digest", "5")
    assert len({d["hash"] for d in digest.values()}) == 1

    # the consistency check: equal (exit 0); a point changed on node 3's disk: found (exit 1)
    checked = airctl.json("check", "5", "--wait")
    assert checked["equal"] == 1 and checked["diverged"] == [], checked
    store = airctl.root / "data" / "node3" / "region_5" / "store.db"
    with closing(sqlite3.connect(store, timeout=30, isolation_level=None)) as conn:
        first = "SELECT series, ts FROM points ORDER BY series, ts LIMIT 1"
        conn.execute(f"UPDATE points SET value = -1 WHERE (series, ts) = ({first})")
    diverged = airctl("check", "5", "--wait", check=False)
    assert diverged.returncode == 1, diverged.stderr
    assert "region 5: DIVERGED, node 3 differs from the others" in diverged.stdout
    # on a schedule, as the stock CLI lists it; given again, changed; off, removed
    assert "created" in airctl("check", "--all", "--every", "24h").stdout
    assert "changed" in airctl("check", "--all", "--every", "12h").stdout
    assert "air-check" in schedules(config["temporal_address"])
    assert "removed" in airctl("check", "--every", "off").stdout
    assert "air-check" not in schedules(config["temporal_address"])

    # the local stack's file marks it local: a prod environment does not reach its dev server
    assert config["local"] and config["namespace"] == "default"
    listed_locally = airctl("--json", "migrations", env=PROD)
    assert "air-region-5" in {m["workflow_id"] for m in json.loads(listed_locally.stdout)}

    # as against a real cluster: nodes in the cluster file, Temporal from a temporal.toml profile
    nodes_only = airctl.root / "nodes-only.json"
    nodes_only.write_text(json.dumps({"nodes": config["nodes"]}))
    toml = airctl.root / "temporal.toml"
    toml.write_text(f'[profile.here]\naddress = "{config["temporal_address"]}"\n')
    env = {"TEMPORAL_CONFIG_FILE": str(toml), "TEMPORAL_PROFILE": "here"}
    listed = airctl("--json", "migrations", cluster=nodes_only, env=env)
    assert "air-region-5" in {m["workflow_id"] for m in json.loads(listed.stdout)}, listed.stdout
    elsewhere = airctl(
        "migrations", cluster=nodes_only, env={**env, "TEMPORAL_PROFILE": "nope"}, check=False
    )
    assert elsewhere.returncode == 2 and "Profile 'nope' not found" in elsewhere.stderr


ERRORS = {
    "unknown node": (["migrate", "5", "--from", "1", "--to", "9"], "unknown node 9"),
    "unknown region": (["digest", "77"], "unknown region 77"),
    "bad peers": (["region", "create", "6", "--peers", "1,x"], "--peers are ids like"),
    "cancel idle region": (["cancel", "5"], "no membership change of region 5 is running"),
    "bad count": (["write", "5", "--count", "-5"], "--count: must be at least 1, not -5"),
    # refused by the workflow's validation, before airctl returns; nothing changes
    "from equals to": (["migrate", "5", "--from", "1", "--to", "1"], "from and to are the same"),
    "from not a holder": (["migrate", "5", "--from", "3", "--to", "4"], "node 3 is not a peer"),
    "to a holder": (["migrate", "5", "--from", "1", "--to", "2"], "node 2 is already a peer"),
    "no such region": (["migrate", "77", "--from", "1", "--to", "3"], "77 does not exist"),
    "add a peer": (["add-peer", "5", "--node", "2"], "node 2 is already a peer"),
    "remove a non-peer": (["remove-peer", "5", "--node", "3"], "node 3 is not a peer"),
    "unknown namespace": (["--namespace", "nope", "migrations"], "Temporal answered NOT_FOUND"),
}


def test_errors_are_one_clear_line(airctl: Airctl) -> None:
    missing = airctl("regions", check=False)
    assert missing.returncode == 2
    assert "no stack running" in missing.stderr and "Traceback" not in missing.stderr

    airctl.up()
    airctl("region", "create", "5", "--peers", "1,2")
    before = airctl.json("regions")
    for case, (args, message) in ERRORS.items():
        done = airctl(*args, check=False)
        assert done.returncode == 2, (case, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, (case, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, (case, done.stderr)
    assert airctl.json("regions") == before

    airctl.hold(1, 2)  # either may be the source: the migration runs until the stack ends
    airctl("migrate", "5", "--from", "1", "--to", "3")
    busy = airctl("remove-peer", "5", "--node", "2", check=False)
    assert busy.returncode == 2 and "already has a membership change running" in busy.stderr

    config = airctl.cluster.read_text()
    airctl.down()  # everything is gone; a stale cluster file still points at it
    airctl.cluster.write_text(config)
    unreachable = airctl("status", "--region", "5", check=False)
    assert unreachable.returncode == 2 and "cannot reach Temporal" in unreachable.stderr


def test_up_again_resumes_an_unfinished_migration(airctl: Airctl) -> None:
    airctl.up()
    airctl("region", "create", "5", "--peers", "1,2")
    log = airctl.root / "acked.log"
    airctl("write", "5", "--count", "2000", "--acked-log", str(log))
    airctl.hold(1, 2)  # either may be the source: the transfer cannot end before the stack does
    airctl("migrate", "5", "--from", "1", "--to", "3")
    airctl.until_transferring(5)

    airctl.down()
    airctl.up()  # the throttles were the nodes' run-time settings: gone with them
    status = airctl.wait_status(5)
    assert status["status"] == "COMPLETED" and status["progress"]["phase"] == "DONE", status
    verified = airctl.json("verify", "5", "--acked-log", str(log))
    assert verified["ok"] and sorted(verified["replicas"]) == ["2", "3"], verified


@pytest.mark.parametrize("security", [[], ["--tls"]], ids=["plaintext", "mtls"])
def test_demo_from_nothing_verifies_and_exits(airctl: Airctl, security: list[str]) -> None:
    done = airctl(
        "demo", "--no-keep", "--rate", "500", *security,
        "--data-dir", str(airctl.root / "demo"),
        "--temporal-port", str(airctl.ports["temporal"]),
        "--ui-port", str(airctl.ports["ui"]),
        "--base-port", str(airctl.base_port),
    )  # fmt: skip
    assert "verify: OK" in done.stdout, done.stdout + done.stderr
    if security:  # every node served mTLS only, and no handshake was refused on the way
        logs = [(airctl.root / "demo" / f"node{i}.log").read_text() for i in range(1, 5)]
        assert all("mutual TLS only" in log for log in logs), logs
        assert not any("refused a TLS connection" in log for log in logs), logs
    assert f"http://127.0.0.1:{airctl.ports['ui']}/namespaces/default/workflows/" in done.stdout
    assert "DONE" in done.stderr  # the progress line reached the end
    assert not airctl.cluster.exists()  # --no-keep stopped the stack


def test_many_regions_migrations_throttle_and_cancel_all(airctl: Airctl) -> None:
    airctl.up("--transfer-rate-limit", "0.5")
    airctl("region", "create", "10", "--peers", "1,3")  # its moves copy from node 3
    for region in ("11", "12", "13"):
        airctl("region", "create", region, "--peers", "1,2")
    airctl("write", "11", "--count", "100")
    both = airctl.json("migrate", "12,13", "--from", "1", "--to", "3", "--wait")
    assert all(both[r]["ok"] for r in ("12", "13")), both

    throttled = airctl.json("throttle", "--node", "2", "--mbps", HELD_MBPS)
    assert (throttled["previous"], round(throttled["bytes_per_s"])) == (500_000, 1), throttled
    airctl("migrate", "11", "--from", "1", "--to", "3")  # from node 2: held until cancelled
    airctl.until_transferring(11)
    running = airctl.json("migrations", "--running")
    assert [m["workflow_id"] for m in running] == ["air-region-11"], running
    assert not running[0]["stalled"] and running[0]["progress"] not in ("", "done"), running
    everything = {m["workflow_id"]: m for m in airctl.json("migrations")}
    assert everything["air-region-12"]["status"] == "COMPLETED"
    assert everything["air-region-12"]["nodes"] == ["1", "3"]
    assert everything["air-region-12"]["progress"] == "done"
    lines = {line.split()[0]: line for line in airctl("migrations").stdout.splitlines()}
    assert re.search(r" region 12 +started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", lines["air-region-12"])

    cancelled = airctl.json("cancel", "--all")
    assert cancelled["air-region-11"].startswith("cancelled: rolled back"), cancelled
    regions = airctl.json("regions")
    assert sorted(regions["11"]) == ["1", "2"] and sorted(regions["12"]) == ["2", "3"]

    # a drain of node 1, one move at a time: region 10 moves, then 11's move is held (node 2)
    airctl("drain", "--node", "1", "--max-concurrent", "1")
    airctl.until_transferring(11)
    drain = DrainNodeWorkflow.__name__
    airctl.until(
        "the drain to have moved region 10 and be moving 11",
        lambda client: live_progress(client, "air-drain-node-1", drain),
        lambda shown: shown[0].startswith("1/2 moved, running [11]"),
    )
    cancelled = airctl.json("cancel", "--all")  # its move of 11 is the drain's to cancel
    assert cancelled == {
        "air-drain-node-1": "cancelled: 1 moved (they stay moved), 1 rolled back, 0 failed"
    }, cancelled
    regions = airctl.json("regions")
    assert sorted(regions["10"]) == ["3", "4"] and sorted(regions["11"]) == ["1", "2"], regions


def test_plan_then_drain_a_node(airctl: Airctl) -> None:
    airctl.up()
    for region in ("21", "22"):
        airctl("region", "create", region, "--peers", "1,2,3")
    airctl("region", "create", "23", "--peers", "1,2,4")
    airctl("write", "21", "--count", "50")
    plan = airctl.json("plan", "drain", "--node", "1")
    assert plan["kept"] == {} and plan["under_diversified"] == {}, plan  # no locality known
    plan = plan["moves"]
    moves = {(m["region"], m["to_node"], m["points"]) for m in plan}
    assert moves == {(21, 4, 50), (22, 4, 0), (23, 3, 0)}, plan
    assert all(m["store_bytes"] > 0 for m in plan), plan  # an empty store has its pages too
    assert sorted(airctl.json("regions")["21"]) == ["1", "2", "3"]  # the plan changed nothing

    idle = airctl("drain", "pause", "--node", "1", check=False)
    assert idle.returncode == 2 and "no drain of node 1 is running" in idle.stderr, idle.stderr
    for node in ("2", "3"):  # the sources send 1 byte/s: the first move lasts until lifted
        airctl("throttle", "--node", node, "--mbps", "0.000001")
    airctl("drain", "--node", "1", "--max-concurrent", "1")
    paused = airctl.json("drain", "pause", "--node", "1")  # its updates, through airctl
    assert paused["paused"] and paused["max_concurrent"] == 1, paused
    rebound = airctl.json("drain", "bound", "--node", "1", "--max-concurrent", "2")
    assert rebound["paused"] and rebound["max_concurrent"] == 2, rebound
    assert len(rebound["running"]) == 1 and rebound["done"] == [], rebound  # held, paused
    for node in ("2", "3"):
        airctl("throttle", "--node", node, "--mbps", "0")
    drained = airctl.json("drain", "resume", "--node", "1", "--wait")
    assert drained["ok"] and len(drained["result"]["moved"]) == 3, drained
    regions = airctl.json("regions")
    assert all("1" not in replicas for replicas in regions.values()), regions
    bad = airctl("plan", "drain", "--node", "9", check=False)
    assert bad.returncode == 2 and "unknown node 9" in bad.stderr


def test_plan_then_rebalance_onto_an_empty_node(airctl: Airctl) -> None:
    airctl.up("--nodes", "4")
    regions = [str(r) for r in range(31, 35)]
    for region in regions:
        airctl("region", "create", region, "--peers", "1,2,3")
    plan = airctl.json("plan", "rebalance")
    moves = [m for moves in plan["rounds"] for m in moves]
    assert len(moves) == 3 and {m["to_node"] for m in moves} == {4}, plan  # 12 replicas: 3 each
    assert {n["node"]: n["replicas_after"] for n in plan["nodes"]} == {1: 3, 2: 3, 3: 3, 4: 3}
    assert "4" not in {n for r in airctl.json("regions").values() for n in r}  # nothing moved
    bad = airctl("plan", "rebalance", "--nodes", "9", check=False)
    assert bad.returncode == 2 and "destination node(s) [9] are not live" in bad.stderr
    idle = airctl("rebalance", "pause", check=False)
    assert idle.returncode == 2 and "no rebalance is running" in idle.stderr, idle.stderr

    done = airctl.json("rebalance", "--max-concurrent", "2", "--wait")
    assert done["ok"] and len(done["result"]["moved"]) == 3, done
    held = {n: 0 for n in ("1", "2", "3", "4")}
    for replicas in airctl.json("regions").values():
        for n in replicas:
            held[n] += 1
    assert held == {"1": 3, "2": 3, "3": 3, "4": 3}, held
    assert airctl("plan", "rebalance").stdout.strip() == "the cluster is balanced: nothing to move"

    assert airctl.json("autopilot", "status") == {"on": False}  # `up` leaves it off
    airctl("autopilot", "on", "--dead-after", "60")
    airctl("autopilot", "on", "--dead-after", "30")  # the running one takes the new value
    airctl.until(
        "the autopilot's first probe",
        lambda client: client.get_workflow_handle(AUTOPILOT_WORKFLOW_ID).query(
            AutopilotWorkflow.status
        ),
        lambda state: state.probes >= 1,
    )
    status = airctl.json("autopilot", "status")
    assert status["dead_after_s"] == 30 and status["down_since"] == {}, status
    airctl("autopilot", "off")
    assert airctl.json("autopilot", "status") == {"on": False}

    # a node that does not answer shows as down, with the regions its peers list it in
    config = json.loads(airctl.cluster.read_text())
    gone = {"id": 9, "address": f"127.0.0.1:{airctl.base_port + 99}"}
    with_gone = airctl.root / "with-node-9.json"
    with_gone.write_text(json.dumps({**config, "nodes": [*config["nodes"], gone]}))
    half = airctl("region", "create", "35", "--peers", "1,2,9", cluster=with_gone, check=False)
    assert half.returncode == 2, half.stderr  # made on 1 and 2; node 9 does not answer
    shown = json.loads(airctl("--json", "regions", cluster=with_gone).stdout)
    assert shown["35"]["9"] == {"state": "down", "locality": []}, shown["35"]
    assert shown["35"]["1"]["state"] == "active"
    by_node = json.loads(airctl("--json", "regions", "--by-node", cluster=with_gone).stdout)
    assert by_node["9"] == {"down": True, "locality": [], "replicas": 0, "bytes": 0}, by_node
    assert by_node["4"]["replicas"] == 3 and by_node["4"]["bytes"] > 0, by_node


def test_up_with_tls_secures_airctl_the_worker_and_the_nodes(airctl: Airctl) -> None:
    airctl.up("--tls")
    config = json.loads(airctl.cluster.read_text())
    assert Path(config["tls"]["ca"]) == airctl.root / "data" / "tls" / "ca.pem"
    airctl("region", "create", "5", "--peers", "1,2")
    assert airctl.json("write", "5", "--count", "100")["acked"] == 100
    airctl("add-peer", "5", "--node", "3", "--wait")  # the worker's calls and a node's snapshot
    digest = airctl.json("digest", "5")
    assert sorted(digest) == ["1", "2", "3"], digest
    assert {(d["count"], d["hash"]) for d in digest.values()} == {(100, digest["1"]["hash"])}

    plaintext = airctl.root / "plaintext.json"
    plaintext.write_text(json.dumps({**config, "tls": None}))
    refused = airctl("regions", cluster=plaintext, check=False)
    assert refused.returncode == 2 and "UNAVAILABLE" in refused.stderr, refused.stderr


def test_chaos_demo_kills_the_worker_and_the_destination_and_verifies(airctl: Airctl) -> None:
    done = airctl(
        "--json", "demo", "--no-keep", "--rate", "500",
        "--chaos", "--seed", "7", "--kill-destination",
        "--data-dir", str(airctl.root / "demo"),
        "--temporal-port", str(airctl.ports["temporal"]),
        "--ui-port", str(airctl.ports["ui"]),
        "--base-port", str(airctl.base_port),
    )  # fmt: skip
    summary = json.loads(done.stdout)
    assert summary["verify"]["ok"], summary["verify"]
    killed = [k["process"] for k in summary["chaos"]["killed"]]
    assert summary["chaos"]["seed"] == 7 and killed[0] == "worker", summary["chaos"]
    for name in killed:  # each came back: the stack's supervisor restarted it
        assert f"{name} killed by SIGKILL" in done.stderr, done.stderr
        assert f"{name} restarted at" in done.stderr, done.stderr


def children(pid: int) -> dict[int, str]:
    """The processes `pid` started, with their command lines."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            found[int(child)] = cmdline.decode()
    return found


def gone(pids: list[int]) -> bool:
    return not any(Path(f"/proc/{p}").exists() for p in pids)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_up_restarts_a_killed_worker_and_node_mid_migration(airctl: Airctl) -> None:
    airctl.up()
    assert airctl.up_proc is not None
    airctl("region", "create", "5", "--peers", "1,2")
    log = airctl.root / "acked.log"
    airctl("write", "5", "--count", "2000", "--acked-log", str(log))
    airctl.hold(1, 2)  # either may be the source: the transfer runs until lifted
    airctl("migrate", "5", "--from", "1", "--to", "3")
    airctl.until_transferring(5)
    stack = children(airctl.up_proc.pid)
    worker = next(p for p, cmd in stack.items() if " -m worker " in cmd)
    node3 = next(p for p, cmd in stack.items() if " -m node --id 3 " in cmd)
    os.kill(worker, signal.SIGKILL)
    os.kill(node3, signal.SIGKILL)

    airctl.lift(1, 2)
    assert airctl.wait_status(5)["status"] == "COMPLETED"
    verified = airctl.json("verify", "5", "--acked-log", str(log))
    assert verified["ok"] and sorted(verified["replicas"]) == ["2", "3"], verified
    assert airctl.up_proc.poll() is None  # airctl up went on throughout
    output = (airctl.root / f"up-{airctl.ups}.log").read_text()
    for name in ("worker", "node 3"):
        assert f"{name} killed by SIGKILL" in output and f"{name} restarted at" in output, output


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGHUP], ids=["sigkill", "sighup"])
def test_no_process_of_the_stack_outlives_airctl_up(airctl: Airctl, how: signal.Signals) -> None:
    airctl.up("--nodes", "2")
    assert airctl.up_proc is not None
    stack = list(children(airctl.up_proc.pid))
    assert len(stack) == 4, stack  # the server, two nodes, the worker
    airctl.up_proc.send_signal(how)
    airctl.up_proc.wait(30)
    wait_for(lambda: gone(stack), f"the stack's processes to end after {how.name}")
    airctl.up("--nodes", "2")  # the ports are free again
