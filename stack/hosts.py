"""Test hosts: network namespaces on a bridge of our own, each with an address of its own.

A network is one Linux bridge `airbr<slot>` and, per host, a namespace `air<slot>-<host>`
joined to it by a veth pair (the namespace's end is `eth0`, the bridge's end is named like the
namespace). Hosts: `n1`, `n2`, ... for the nodes, `worker`, and `client` (writers that must
reach nodes the worker cannot). The machine's root namespace is the operator host (airctl, the
tests, the Temporal server); its address on the bridge is the gateway.

Safety first: every address comes from one /24 (AIR_HOSTS_NET, default 10.213.0.0/24) that no
route or address of the machine may touch (checked first), and before anything is made the
whole /24 is routed `unreachable` in the root namespace. While a bridge exists its connected
route (a /26, more specific) wins; without it, a packet for a test host fails at once on this
machine instead of leaving by the default route. Namespaces get no default route at all.

The /24 holds four networks side by side (slots, a /26 each): one per pytest-xdist process and
one for `airctl up --hosts`. A slot belongs to the process holding its lock file (flock, so a
SIGKILLed owner frees it); whoever takes a slot next first removes what an earlier owner left
there, by name. One machine-wide lock serialises making and removing networks and the route.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

from pydantic import BaseModel

from contracts.errors import UserError
from stack.relay import Relay

T = TypeVar("T")

NET_VAR = "AIR_HOSTS_NET"
DEFAULT_NET = "10.213.0.0/24"
SLOTS = 4  # a /26 each
SLOT_PREFIX = 26

# Where each host sits in its slot's /26 (offsets from the slot's first address).
GATEWAY_OFFSET = 1
FIXED_HOSTS = {"worker": 2, "client": 3}
FIRST_NODE_OFFSET = 10  # node i at 10 + i
MAX_NODES = 50  # 10 + 50 = 60, below the /26's broadcast (63)

WORKER = "worker"
CLIENT = "client"

LOCK_DIR = Path("/run/lock") if Path("/run/lock").is_dir() else Path(tempfile.gettempdir())
GLOBAL_LOCK = LOCK_DIR / "airreplication-hosts.lock"
IP_TIMEOUT_S = 30.0
CLONE_NEWNET = 0x40000000  # linux/sched.h


def node_host(node_id: int) -> str:
    """The name of node `node_id`'s host."""
    return f"n{node_id}"


def hosts_net() -> ipaddress.IPv4Network:
    """The /24 every test host's address comes from: AIR_HOSTS_NET, else DEFAULT_NET."""
    given = os.environ.get(NET_VAR) or DEFAULT_NET
    try:
        net = ipaddress.ip_network(given)
    except ValueError as e:
        raise UserError(f"{NET_VAR}={given!r} is not a network like {DEFAULT_NET}") from e
    if not isinstance(net, ipaddress.IPv4Network) or net.prefixlen != 24 or not net.is_private:
        raise UserError(f"{NET_VAR}={given!r}: test hosts need a private IPv4 /24")
    return net


def missing_requirements() -> str | None:
    """What this machine lacks to make test hosts (None: nothing)."""
    lacking = [
        what
        for what, ok in (
            ("root (it makes network namespaces)", os.geteuid() == 0),
            ("`ip` (Debian package iproute2)", shutil.which("ip") is not None),
            ("`nft` (Debian package nftables)", shutil.which("nft") is not None),
        )
        if not ok
    ]
    return f"test hosts need {' and '.join(lacking)}" if lacking else None


def run(argv: Sequence[str], stdin: str | None = None, *, check: bool = True) -> str:
    """Run `ip`, `nft` or the like; its first line of complaint is the error."""
    done = subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, timeout=IP_TIMEOUT_S
    )
    if check and done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit {done.returncode}"]
        raise UserError(f"`{' '.join(argv)}` failed: {lines[0]}")
    return done.stdout


@contextlib.contextmanager
def locked(path: Path = GLOBAL_LOCK) -> Iterator[None]:
    """Hold an exclusive lock on `path` (blocking) for the duration."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield  # closing the file releases it


# -- what the machine already routes ----------------------------------------------------------


def foreign_claims(
    net: ipaddress.IPv4Network, routes: list[dict[str, Any]], addresses: list[dict[str, Any]]
) -> list[str]:
    """Routes and addresses (`ip -j -4 route show table all`, `ip -j -4 addr`) that touch `net`
    and are not ours: each one a reason not to use it. The default route of the main table is
    fine (the unreachable route overrides it); one in another table is not, as policy routing
    may consult that table first."""
    found = []
    for route in routes:
        dst, dev, table = route.get("dst", ""), route.get("dev", ""), route.get("table", "main")
        if dst == "default":
            if table not in ("main", "local", "default"):
                found.append(f"a default route in table {table} (policy routing may use it)")
            continue
        ours = dev.startswith("airbr") or (route.get("type") == "unreachable" and dst == str(net))
        if not ours and ipaddress.ip_network(dst, strict=False).overlaps(net):
            found.append(f"the route {dst}{' dev ' + dev if dev else ''} (table {table})")
    for link in addresses:
        for info in link.get("addr_info", []):
            local = info.get("local")
            if local is None or link.get("ifname", "").startswith("airbr"):
                continue
            if ipaddress.ip_address(local) in net:
                found.append(f"the address {local} on {link.get('ifname')}")
    return found


def check_net_is_ours(net: ipaddress.IPv4Network) -> None:
    """Refuse a /24 that anything but our networks routes or holds an address in."""
    routes = json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]) or "[]")
    addresses = json.loads(run(["ip", "-j", "-4", "addr", "show"]) or "[]")
    claims = foreign_claims(net, routes, addresses)
    if claims:
        raise UserError(
            f"test hosts need {net} for themselves, but this machine has {'; '.join(claims)} "
            f"(choose another private /24 with {NET_VAR})"
        )


def _link_names() -> list[str]:
    return [link["ifname"] for link in json.loads(run(["ip", "-j", "link", "show"]) or "[]")]


def _namespaces() -> list[str]:
    return [line.split()[0] for line in run(["ip", "netns", "list"]).splitlines() if line.strip()]


def namespace_pids(namespace: str) -> list[int]:
    """The processes running in a namespace (`ip netns pids`)."""
    return [int(p) for p in run(["ip", "netns", "pids", namespace], check=False).split()]


def _bridge(slot: int) -> str:
    return f"airbr{slot}"


def _namespace(slot: int, host: str) -> str:
    return f"air{slot}-{host}"


def clear_slot(slot: int) -> None:
    """Remove everything of ours in `slot`, by name: processes left running on its hosts,
    veths, namespaces, the bridge. Call it holding the global lock and the slot."""
    prefix = _namespace(slot, "")
    namespaces = [n for n in _namespaces() if n.startswith(prefix)]
    for namespace in namespaces:
        for pid in namespace_pids(namespace):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    # the veths first: a namespace's deletion frees its end of one only later, asynchronously
    for link in _link_names():
        if link.startswith(prefix) or link == _bridge(slot):
            run(["ip", "link", "del", link], check=False)
    for namespace in namespaces:
        run(["ip", "netns", "del", namespace], check=False)


def _drop_route_if_unused(net: ipaddress.IPv4Network) -> None:
    """The /24's unreachable route goes once no bridge of ours is left on the machine."""
    if not any(link.startswith("airbr") for link in _link_names()):
        run(["ip", "route", "del", "unreachable", str(net)], check=False)


# -- hosts and networks -----------------------------------------------------------------------


@dataclass(frozen=True)
class Host:
    """A test host: a network namespace with one address on the network's bridge."""

    name: str
    namespace: str
    address: str

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """`argv` run on this host (`ip netns exec` execs it: its pid is the program's own)."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def call(self, fn: Callable[[], T]) -> T:
        """`fn()` run in a thread that entered this host's namespace: a socket it creates
        stays on this host, wherever it is used afterwards."""
        result: list[T] = []
        failure: list[BaseException] = []

        def inside() -> None:
            try:
                with open(f"/run/netns/{self.namespace}") as ns:
                    libc = ctypes.CDLL(None, use_errno=True)
                    if libc.setns(ns.fileno(), CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), f"setns into {self.namespace}")
                result.append(fn())
            except BaseException as e:  # handed to the caller's thread
                failure.append(e)

        thread = threading.Thread(target=inside, name=f"on {self.name}")
        thread.start()
        thread.join()
        if failure:
            raise failure[0]
        return result[0]


class HostEntry(BaseModel):
    namespace: str
    address: str


class NetworkState(BaseModel):
    """What `airctl up --hosts` records of its network, for `airctl fault`."""

    slot: int
    net: str
    gateway: str
    bridge: str
    hosts: dict[str, HostEntry]
    temporal_relay: str | None = None  # the address the worker reaches Temporal by
    pids: dict[str, int] = {}  # node host -> its node's pid

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json(indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> NetworkState:
        return cls.model_validate_json(path.read_text())


def _slot_lock_path(slot: int) -> Path:
    return LOCK_DIR / f"airreplication-hosts-slot{slot}.lock"


def _try_lock(slot: int) -> int | None:
    """The slot's lock, held by the returned descriptor; None if another process holds it."""
    fd = os.open(_slot_lock_path(slot), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def slot_in_use(slot: int) -> bool:
    """Whether a live process owns `slot` (a SIGKILLed owner's lock is gone with it)."""
    fd = _try_lock(slot)
    if fd is None:
        return True
    os.close(fd)
    return False


class Network:
    """The test hosts of one slot. `claim` takes a slot, `make` builds it, `remove` takes it
    all down (and frees the slot); `attach` describes a network another process owns."""

    def __init__(self, slot: int, nodes: int, net: ipaddress.IPv4Network | None = None) -> None:
        if not 0 <= slot < SLOTS:
            raise UserError(f"a slot is 0 to {SLOTS - 1}, not {slot}")
        if not 1 <= nodes <= MAX_NODES:
            raise UserError(f"test hosts hold 1 to {MAX_NODES} nodes, not {nodes}")
        self.slot = slot
        self.net = net or hosts_net()
        self.subnet = list(self.net.subnets(new_prefix=SLOT_PREFIX))[slot]
        self.bridge = _bridge(slot)
        self.gateway = str(self.subnet[GATEWAY_OFFSET])
        offsets = {
            **{node_host(i): FIRST_NODE_OFFSET + i for i in range(1, nodes + 1)},
            **FIXED_HOSTS,
        }
        self.hosts = {
            name: Host(name, _namespace(slot, name), str(self.subnet[offset]))
            for name, offset in offsets.items()
        }
        self.temporal_relay: str | None = None
        self._lock_fd: int | None = None  # held while this process owns the slot
        self._made = False
        self._on_remove: list[Callable[[], None]] = []

    # -- taking a slot

    @classmethod
    def claim(
        cls,
        nodes: int,
        slot: int | None = None,
        *,
        prefer: int | None = None,
        wait_s: float = 0.0,
    ) -> Network:
        """Own a slot: `slot` exactly, else `prefer` if free, else the highest free one
        (tests prefer their own, `airctl up --hosts` keeps out of their way at the top).
        Waits up to `wait_s` for one to be free."""
        if slot is not None:
            order = [slot]
        else:
            rest = [s for s in reversed(range(SLOTS)) if s != prefer]
            order = [prefer, *rest] if prefer is not None and 0 <= prefer < SLOTS else rest
        network = cls(order[0], nodes)  # bad input refused before any lock is taken
        deadline = time.monotonic() + max(wait_s, 1.0)  # a probe may hold a lock an instant
        while True:
            for candidate in order:
                fd = _try_lock(candidate)
                if fd is not None:
                    network = cls(candidate, nodes, network.net)
                    network._lock_fd = fd
                    return network
            if time.monotonic() > deadline:
                taken = f"slot {slot} is" if slot is not None else f"all {SLOTS} slots are"
                raise UserError(
                    f"{taken} in use by other test networks (tests or `airctl up --hosts`)"
                )
            time.sleep(0.1)

    @classmethod
    def attach(cls, state: NetworkState) -> Network:
        """The network another process made and owns (it alone removes it)."""
        nodes = sum(1 for name in state.hosts if name not in FIXED_HOSTS)
        network = cls(state.slot, nodes, ipaddress.IPv4Network(state.net))
        network.temporal_relay = state.temporal_relay
        return network

    def live(self) -> bool:
        """Whether a process owns this network now (this one, or the one that made it)."""
        return self._lock_fd is not None or slot_in_use(self.slot)

    # -- making and removing

    def make(self) -> Self:
        """Check the /24, route it unreachable, clear the slot, then the bridge and hosts."""
        if self._lock_fd is None:
            raise UserError(f"the network in slot {self.slot} is not this process's to make")
        with locked():
            check_net_is_ours(self.net)
            run(["ip", "route", "replace", "unreachable", str(self.net)])
            clear_slot(self.slot)
            self._made = True  # from here on, remove() has something to undo
            self._make_bridge()
            for host in self.hosts.values():
                self._make_host(host)
        return self

    def _make_bridge(self) -> None:
        bridge, length = self.bridge, self.subnet.prefixlen
        run(["ip", "link", "add", bridge, "type", "bridge"])
        run(["ip", "link", "set", bridge, "addrgenmode", "none"])  # no IPv6 link-local
        run(["ip", "addr", "add", f"{self.gateway}/{length}", "brd", "+", "dev", bridge])
        run(["ip", "link", "set", bridge, "up"])

    def _make_host(self, host: Host) -> None:
        ns, length = host.namespace, self.subnet.prefixlen
        run(["ip", "netns", "add", ns])
        run(["ip", "link", "add", ns, "type", "veth", "peer", "name", "eth0", "netns", ns])
        run(["ip", "link", "set", ns, "addrgenmode", "none"])
        run(["ip", "link", "set", ns, "master", self.bridge, "up"])
        inside = ["ip", "-n", ns]
        run([*inside, "link", "set", "eth0", "addrgenmode", "none"])
        run([*inside, "addr", "add", f"{host.address}/{length}", "brd", "+", "dev", "eth0"])
        run([*inside, "link", "set", "eth0", "up"])
        run([*inside, "link", "set", "lo", "up"])

    def relay_temporal(self, upstream: str) -> str:
        """The address on the gateway by which hosts reach the Temporal server at `upstream`
        (loopback, on the operator host): a relay, started once, stopped by `remove`."""
        if self.temporal_relay is None:
            relay = Relay(self.gateway, upstream).start()
            self.on_remove(relay.stop)
            self.temporal_relay = relay.address
        return self.temporal_relay

    def on_remove(self, undo: Callable[[], None]) -> None:
        """Call `undo` when the network is removed, before its hosts go (a relay's stop)."""
        self._on_remove.append(undo)

    def remove(self) -> None:
        """Take down everything this network made (whatever still runs on its hosts is
        SIGKILLed), drop the /24's route if no network of ours is left, free the slot."""
        for undo in reversed(self._on_remove):
            undo()
        self._on_remove.clear()
        if self._made:
            with locked():
                clear_slot(self.slot)
                _drop_route_if_unused(self.net)
            self._made = False
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Self:
        return self.make()

    def __exit__(self, *_: object) -> None:
        self.remove()

    # -- what is on it

    def host(self, name: str) -> Host:
        try:
            return self.hosts[name]
        except KeyError:
            raise UserError(f"no host {name} (the network has {', '.join(self.hosts)})") from None

    def node(self, node_id: int) -> Host:
        return self.host(node_host(node_id))

    @property
    def node_hosts(self) -> list[str]:
        return [name for name in self.hosts if name not in FIXED_HOSTS]

    @property
    def worker(self) -> Host:
        return self.hosts[WORKER]

    @property
    def client(self) -> Host:
        return self.hosts[CLIENT]

    def state(self, pids: dict[str, int] | None = None) -> NetworkState:
        return NetworkState(
            slot=self.slot,
            net=str(self.net),
            gateway=self.gateway,
            bridge=self.bridge,
            hosts={
                h.name: HostEntry(namespace=h.namespace, address=h.address)
                for h in self.hosts.values()
            },
            temporal_relay=self.temporal_relay,
            pids=pids or {},
        )

    def describe(self) -> list[str]:
        """One line per host: its name, address and namespace."""
        return [f"operator {self.gateway} (the machine itself, on {self.bridge})"] + [
            f"{h.name} {h.address} (namespace {h.namespace})" for h in self.hosts.values()
        ]
