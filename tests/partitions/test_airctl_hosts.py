"""`airctl up --hosts` and `airctl fault`, end to end (subprocesses, as a user runs them)."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.cluster_file import ClusterFile, NodeEntry
from stack.hosts import Host, Network, NetworkState, missing_requirements
from tests.integration.test_airctl import Airctl
from tests.support.hosts import attempt, leftovers, xdist_slot
from tests.support.requirements import require


@pytest.fixture
def airctl(tmp_path: Path) -> Iterator[Airctl]:
    ctl = Airctl(tmp_path)
    try:
        yield ctl
    finally:
        ctl.down()


def one_line_refusal(done: subprocess.CompletedProcess[str], message: str) -> None:
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_faults_are_refused_saying_why_where_there_are_no_test_hosts(airctl: Airctl) -> None:
    ClusterFile(nodes=[NodeEntry(id=1, address="127.0.0.1:1")]).save(airctl.cluster)
    one_line_refusal(airctl("fault", "list", check=False), "runs on loopback")

    # a stack on hosts whose `airctl up --hosts` is gone (its slot has no owner)
    free = Network.claim(1, prefer=xdist_slot(), wait_s=60)
    free.remove()
    state = airctl.root / "hosts.json"
    free.state().save(state)
    ClusterFile(nodes=[], hosts=state).save(airctl.cluster)
    one_line_refusal(airctl("fault", "isolate", "1", check=False), "are gone")

    missing = airctl("up", "--hosts", check=False, env={"PATH": "/nonexistent"})
    one_line_refusal(missing, "up --hosts: test hosts need ")
    assert "`ip` (Debian package iproute2) and `nft` (Debian package nftables)" in missing.stderr


@pytest.mark.slow
def test_up_hosts_tls_serves_airctl_takes_faults_and_leaves_nothing_after_ctrl_c(
    airctl: Airctl,
) -> None:
    require(missing_requirements())
    airctl.up("--hosts", "--nodes", "3", "--tls")  # certificates name the hosts' addresses
    state = NetworkState.load(airctl.root / "data" / "hosts.json")
    printed = (airctl.root / f"up-{airctl.ups}.log").read_text()
    for name, host in state.hosts.items():
        assert f"{name} {host.address} (namespace {host.namespace})" in printed, printed
    nodes = {n["id"]: n["address"] for n in json.loads(airctl.cluster.read_text())["nodes"]}
    assert nodes[2].startswith(state.hosts["n2"].address + ":")
    assert set(state.pids) == {"n1", "n2", "n3"}

    airctl("region", "create", "1", "--peers", "1,2,3")
    airctl("write", "1", "--count", "20", "--acks", "all")
    assert set(airctl.json("regions")["1"]) == {"1", "2", "3"}

    cut = airctl.json("fault", "cut", "1", "2")
    assert airctl.json("fault", "list") == [cut]
    n1 = Host("n1", state.hosts["n1"].namespace, state.hosts["n1"].address)
    n2_address, n2_port = nodes[2].rsplit(":", 1)
    assert isinstance(attempt(n1, n2_address, int(n2_port)), TimeoutError)
    assert attempt(None, n2_address, int(n2_port)) is None  # airctl's host reaches it

    for args, message in {
        "unknown node": (("cut", "1", "9"), "unknown host '9'"),
        "itself": (("cut", "2", "2"), "n2 cannot be cut from itself"),
        "loss": (("flaky", "1", "2", "--loss", "101"), "from 1 to 100, not 101"),
        "one side": (("partition", "1,2"), "at least two sides"),
        "no such fault": (("heal", "7"), "no active fault '7'"),
    }.values():
        one_line_refusal(airctl("fault", *args, check=False), message)
    assert airctl.json("fault", "list") == [cut]  # the refusals changed nothing

    healed = airctl.json("fault", "heal", "--all")
    assert [h["id"] for h in healed] == [cut["id"]]
    assert airctl.json("fault", "list") == []
    assert attempt(n1, n2_address, int(n2_port)) is None
    airctl("write", "1", "--count", "20", "--acks", "all")

    assert airctl.up_proc is not None
    airctl.up_proc.send_signal(signal.SIGINT)
    assert airctl.up_proc.wait(60) == 0
    assert leftovers(state.slot) == []
    assert not (airctl.root / "data" / "hosts.json").exists()
