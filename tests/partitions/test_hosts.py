"""Test hosts themselves: the route that keeps their packets on the machine, cuts that drop
(not refuse), one-way and lossy links, and a machine left clean. Real namespaces, real nft."""

from __future__ import annotations

import asyncio
import errno
import sys
import textwrap

import pytest

from stack.faults import Cut, Faults, Flaky
from stack.hosts import Network, locked, run
from stack.processes import process_state
from tests.support.hosts import (
    attempt,
    leftovers,
    listener,
    our_bridges,
    udp_delivered,
    unreachable_route,
    xdist_slot,
)
from tests.support.waiting import eventually

UNREACHABLE = (errno.EHOSTUNREACH, errno.ENETUNREACH)
CLOSED_PORT = 9  # nothing listens there: an answered connect is refused at once (a reset)


def test_without_the_bridge_a_host_address_is_unreachable_at_once(network: Network) -> None:
    n1 = network.node(1)
    server = listener(n1)
    port = server.getsockname()[1]
    assert attempt(None, n1.address, port) is None

    run(["ip", "link", "set", network.bridge, "down"])
    down = attempt(None, n1.address, port, timeout=10)
    # refused by the /24's unreachable route: an errno, not a timeout of 10 s
    assert isinstance(down, OSError) and down.errno in UNREACHABLE, down

    run(["ip", "link", "set", network.bridge, "up"])
    assert attempt(None, n1.address, port) is None

    run(["ip", "link", "del", network.bridge])
    gone = attempt(None, n1.address, port, timeout=10)
    assert isinstance(gone, OSError) and gone.errno in UNREACHABLE, gone
    server.close()


def test_a_host_has_no_route_off_its_network(network: Network) -> None:
    # TEST-NET-2: no such host anywhere; what matters is that no route leads toward it
    outside = attempt(network.node(1), "198.51.100.1", 80, timeout=10)
    assert isinstance(outside, OSError) and outside.errno in UNREACHABLE, outside


def test_a_cut_drops_packets_rather_than_refusing_them_and_heal_restores(
    network: Network,
) -> None:
    n1, n2 = network.node(1), network.node(2)
    server = listener(n1)
    port = server.getsockname()[1]
    faults = Faults(network)
    assert isinstance(attempt(n2, n1.address, CLOSED_PORT), ConnectionRefusedError)

    faults.apply(Cut("n1", "n2"))
    # silence both ways, even where nothing listens: no reset comes back
    assert isinstance(attempt(n2, n1.address, CLOSED_PORT), TimeoutError)
    assert isinstance(attempt(n2, n1.address, port), TimeoutError)
    assert attempt(network.client, n1.address, port) is None  # the rest of the network is fine

    faults.heal()
    assert isinstance(attempt(n2, n1.address, CLOSED_PORT), ConnectionRefusedError)
    assert attempt(n2, n1.address, port) is None
    assert faults.active() == []
    server.close()


def test_a_one_way_cut_loses_one_direction_only_and_so_every_tcp_handshake(
    network: Network,
) -> None:
    n1, n2 = network.node(1), network.node(2)
    server1, server2 = listener(n1), listener(n2)
    Faults(network).apply(Cut("n2", "n1", one_way=True))  # what n2 sends n1 is lost

    # datagrams: n1's reach n2, n2's never reach n1
    assert udp_delivered(n1, n2, 20) == 20
    assert udp_delivered(n2, n1, 20) == 0
    # TCP needs both ways: n2's SYN is lost, and so is n2's SYN-ACK to n1's SYN
    assert isinstance(attempt(n2, n1.address, server1.getsockname()[1]), TimeoutError)
    assert isinstance(attempt(n1, n2.address, server2.getsockname()[1]), TimeoutError)
    server1.close()
    server2.close()


def test_a_flaky_link_loses_about_the_share_asked(network: Network) -> None:
    n1, n2 = network.node(1), network.node(2)
    assert udp_delivered(n2, n1, 200) == 200  # nothing else loses datagrams here
    Faults(network).apply(Flaky("n1", "n2", 30))
    # 1000 datagrams, 30% lost: 700 expected, standard deviation 14.5; the bounds are ten
    # deviations away, so only a broken rule (or none) falls outside them
    delivered = udp_delivered(n2, n1, 1000)
    assert 555 <= delivered <= 845, delivered


def test_removing_a_network_leaves_nothing_of_it() -> None:
    network = Network.claim(3, prefer=xdist_slot(), wait_s=60)
    try:
        network.make()
        assert leftovers(network.slot)
        Faults(network).apply(Cut("n1", "n2"))
    finally:
        network.remove()
    assert leftovers(network.slot) == []
    with locked():  # no other network comes or goes while the route is looked at
        assert unreachable_route(str(network.net)) == bool(our_bridges())


# A network's owner, SIGKILLed once a process runs on one of its hosts.
OWNER = textwrap.dedent(
    """
    import subprocess, sys, time
    from stack.hosts import Network
    network = Network.claim(3, int(sys.argv[1]), wait_s=60).make()
    stray = subprocess.Popen(network.node(1).wrap(["sleep", "600"]), stdout=subprocess.DEVNULL)
    print(stray.pid, flush=True)
    time.sleep(600)
    """
)


@pytest.mark.slow
async def test_a_network_left_by_a_killed_owner_is_cleared_by_the_next_in_its_slot() -> None:
    probe = Network.claim(3, prefer=xdist_slot(), wait_s=60)
    slot = probe.slot
    probe.remove()  # the slot is free again: the owner takes it
    owner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", OWNER, str(slot), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert owner.stdout is not None
        stray = int(await owner.stdout.readline())
    finally:
        owner.kill()  # SIGKILL: it removes nothing
        await owner.wait()
    assert leftovers(slot), "the killed owner's network should still be there"
    assert process_state(stray) is not None

    network = Network.claim(3, slot, wait_s=60).make()
    try:
        await eventually(
            lambda: _gone(stray), what=f"the stray process {stray} on the old network killed"
        )
        assert network.node(1).address  # made anew, in the same slot
    finally:
        network.remove()
    assert leftovers(slot) == []


async def _gone(pid: int) -> bool:
    state = process_state(pid)
    return state is None or state[0] == "Z"
