"""Test hosts and faults as values: addresses, names, the safety check, what each fault drops.
Nothing here touches the machine's network."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from cryptography import x509

from contracts.errors import UserError
from stack.certs import Authority
from stack.faults import Cut, Drop, Flaky, Isolate, Partition, host_named
from stack.hosts import MAX_NODES, SLOTS, Network, foreign_claims, hosts_net

NET = ipaddress.IPv4Network("10.213.0.0/24")


def test_each_slot_is_a_quarter_of_the_net_with_short_names() -> None:
    addresses: set[str] = set()
    for slot in range(SLOTS):
        network = Network(slot, MAX_NODES, NET)
        assert network.gateway == str(network.subnet[1])
        for host in network.hosts.values():
            assert ipaddress.ip_address(host.address) in network.subnet
            assert host.address not in (network.gateway, str(network.subnet.broadcast_address))
            assert len(host.namespace) <= 15  # also the veth's name: IFNAMSIZ - 1
        addresses |= {h.address for h in network.hosts.values()} | {network.gateway}
    assert len(addresses) == SLOTS * (MAX_NODES + 3)  # no two hosts share an address
    assert Network(2, 3, NET).node(3).namespace == "air2-n3"


@pytest.mark.parametrize(
    ("slot", "nodes", "message"),
    [(4, 3, "a slot is 0 to 3"), (0, 0, "1 to 50 nodes"), (0, 51, "1 to 50 nodes")],
)
def test_a_bad_slot_or_size_is_refused(slot: int, nodes: int, message: str) -> None:
    with pytest.raises(UserError, match=message):
        Network(slot, nodes, NET)


@pytest.mark.parametrize("given", ["8.8.8.0/24", "10.213.0.0/16", "fd00::/120", "nonsense"])
def test_the_net_must_be_a_private_ipv4_slash_24(
    given: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIR_HOSTS_NET", given)
    with pytest.raises(UserError, match="AIR_HOSTS_NET"):
        hosts_net()


OURS: list[dict[str, Any]] = [
    {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
    {"type": "unreachable", "dst": "10.213.0.0/24"},
    {"dst": "10.213.0.0/26", "dev": "airbr0"},
    {"type": "local", "dst": "10.213.0.1", "dev": "airbr0", "table": "local"},
    {"dst": "192.0.2.0/24", "dev": "eth0"},
]


def test_the_safety_check_accepts_our_own_routes_and_the_main_default() -> None:
    addresses = [{"ifname": "airbr0", "addr_info": [{"local": "10.213.0.1"}]}]
    assert foreign_claims(NET, OURS, addresses) == []


@pytest.mark.parametrize(
    ("route", "address", "named"),
    [
        ({"dst": "10.0.0.0/8", "dev": "eth1"}, None, "the route 10.0.0.0/8 dev eth1"),
        ({"dst": "10.213.0.128/25", "gateway": "192.0.2.9"}, None, "10.213.0.128/25"),
        ({"dst": "default", "dev": "wg0", "table": "52"}, None, "default route in table 52"),
        (None, {"ifname": "eth1", "addr_info": [{"local": "10.213.0.77"}]}, "10.213.0.77"),
    ],
)
def test_the_safety_check_names_anything_else_that_touches_the_net(
    route: dict[str, Any] | None, address: dict[str, Any] | None, named: str
) -> None:
    claims = foreign_claims(NET, [*OURS, *([route] if route else [])], [address] if address else [])
    assert len(claims) == 1 and named in claims[0], claims


NETWORK = Network(0, 4, NET)


def test_isolate_cuts_a_node_from_the_nodes_and_the_worker_not_the_client() -> None:
    drops = set(Isolate("n3").drops(NETWORK))
    others = {"n1", "n2", "n4", "worker"}
    assert drops == {Drop("n3", o) for o in others} | {Drop(o, "n3") for o in others}


def test_a_cut_is_both_ways_unless_one_way() -> None:
    assert set(Cut("n1", "n2").drops(NETWORK)) == {Drop("n1", "n2"), Drop("n2", "n1")}
    assert Cut("n1", "n2", one_way=True).drops(NETWORK) == [Drop("n1", "n2")]
    assert Flaky("n1", "n2", 30).drops(NETWORK) == [Drop("n1", "n2", 30), Drop("n2", "n1", 30)]


def test_a_partition_keeps_the_worker_on_the_first_side_and_a_node_it_omits_bridges() -> None:
    drops = set(Partition((("n1", "n2"), ("n3",))).drops(NETWORK))
    assert drops == {
        d for a in ("n1", "n2", "worker") for d in (Drop(a, "n3"), Drop("n3", a))
    }  # n4, on no side, reaches both
    named = set(Partition((("n1",), ("n2", "worker"))).drops(NETWORK))
    assert Drop("n1", "worker") in named and Drop("n2", "worker") not in named


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Cut("n2", "n2"), "n2 cannot be cut from itself"),
        (lambda: Flaky("n1", "n2", 0), "from 1 to 100, not 0"),
        (lambda: Flaky("n1", "n2", 101), "from 1 to 100, not 101"),
        (lambda: Partition((("n1",),)), "at least two sides"),
        (lambda: Partition((("n1",), ("n1", "n2"))), "one side of a partition only"),
        (lambda: host_named("9", NETWORK), "unknown host '9' \\(nodes 1,2,3,4"),
    ],
)
def test_bad_faults_are_refused_in_one_line(make: Any, message: str) -> None:
    with pytest.raises(UserError, match=message):
        make()


def test_users_name_nodes_by_id() -> None:
    assert [host_named(t, NETWORK) for t in ("3", "n3", "worker", "temporal")] == [
        "n3", "n3", "worker", "temporal",
    ]  # fmt: skip


def test_a_certificate_names_the_addresses_it_is_given_beside_loopback() -> None:
    pair = Authority.create().issue("node3", ips=["10.213.0.13"])
    names = x509.load_pem_x509_certificate(pair.cert).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    ips = {str(ip) for ip in names.value.get_values_for_type(x509.IPAddress)}
    assert ips == {"127.0.0.1", "::1", "10.213.0.13"}
