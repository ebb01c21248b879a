"""Faults between test hosts: small values saying which packets to drop, and the one class that
applies, lists and heals them (airctl's `fault` commands and the tests both use it).

Jepsen's nemesis is the model. A fault is a set of drops, each "packets from A to B are lost"
(all of them, or a share at random): isolate a node, cut a link (or one way of it), make a link
lossy, partition the hosts into sides. Each drop is an nft rule in table `inet air_faults` of
a namespace it involves, never of the machine's own: in the receiver's input hook (the sender
sends, nothing arrives) or, for a receiver on the operator host (Temporal, behind its relay),
in the sender's output hook. Every rule DROPs, never rejects: the far side hears silence, as
from a pulled cable, not a refusal. Each rule's comment names its fault and its drop, so nft
itself is the record of what is active: `active` reads it back, `heal` deletes by it.

A freeze is no rule: SIGSTOP of every process on a host (the node and anything it runs), thaw
is SIGCONT, and a stopped process in /proc is what `active` lists.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from contracts.errors import UserError
from stack.hosts import LOCK_DIR, WORKER, Host, Network, locked, namespace_pids, run
from stack.processes import process_state

TABLE = "air_faults"
TEMPORAL = "temporal"  # the Temporal server, on the operator host, behind the network's relay
COMMENT_MAX = 127  # nft keeps 128 bytes of a rule's comment
_COMMENT = re.compile(r"^air-fault (\d+) (\w+) (\S+)>(\S+) (\d+)% \| (.*)$")


@dataclass(frozen=True, order=True)
class Drop:
    """Packets from `source` to `target` are dropped: `loss` percent of them, at random."""

    source: str
    target: str
    loss: int = 100

    def __str__(self) -> str:
        return f"{self.source} -> {self.target}" + (f" ({self.loss}%)" if self.loss < 100 else "")


def both_ways(a: str, b: str, loss: int = 100) -> list[Drop]:
    return [Drop(a, b, loss), Drop(b, a, loss)]


class Fault(ABC):
    """What to drop, in terms of host names (`n3`, `worker`, `client`, `temporal`)."""

    kind: ClassVar[str]

    @abstractmethod
    def named(self) -> set[str]:
        """The hosts this fault names (each must exist)."""

    @abstractmethod
    def drops(self, network: Network) -> list[Drop]:
        """The packets it drops on `network`."""

    @abstractmethod
    def describe(self) -> str: ...


def _check_pair(a: str, b: str) -> None:
    if a == b:
        raise UserError(f"{a} cannot be cut from itself")


@dataclass(frozen=True)
class Isolate(Fault):
    """`host` reaches no node nor the worker, and none of them reaches it; the client host and
    the operator host still reach it (they are how one watches an isolated node)."""

    host: str
    kind: ClassVar[str] = "isolate"

    def named(self) -> set[str]:
        return {self.host}

    def drops(self, network: Network) -> list[Drop]:
        others = [h for h in [*network.node_hosts, WORKER] if h != self.host]
        return [d for other in others for d in both_ways(self.host, other)]

    def describe(self) -> str:
        return f"isolate {self.host}"


@dataclass(frozen=True)
class Cut(Fault):
    """The link between `a` and `b`; `one_way`: only what `a` sends to `b` is lost (a TCP
    handshake needs both ways, so no connection opens in either direction; datagrams from `b`
    still reach `a`)."""

    a: str
    b: str
    one_way: bool = False
    kind: ClassVar[str] = "cut"

    def __post_init__(self) -> None:
        _check_pair(self.a, self.b)

    def named(self) -> set[str]:
        return {self.a, self.b}

    def drops(self, network: Network) -> list[Drop]:
        return [Drop(self.a, self.b)] if self.one_way else both_ways(self.a, self.b)

    def describe(self) -> str:
        return f"cut {self.a} {'->' if self.one_way else '<->'} {self.b}"


@dataclass(frozen=True)
class Flaky(Fault):
    """`loss` percent of the packets between `a` and `b`, each way, lost at random."""

    a: str
    b: str
    loss: int
    kind: ClassVar[str] = "flaky"

    def __post_init__(self) -> None:
        _check_pair(self.a, self.b)
        if not 1 <= self.loss <= 100:
            raise UserError(f"a loss is a percentage from 1 to 100, not {self.loss}")

    def named(self) -> set[str]:
        return {self.a, self.b}

    def drops(self, network: Network) -> list[Drop]:
        return both_ways(self.a, self.b, self.loss)

    def describe(self) -> str:
        return f"flaky {self.a} <-> {self.b} {self.loss}%"


@dataclass(frozen=True)
class Partition(Fault):
    """The hosts in sides that do not reach one another. The worker is on the first side
    unless a side names it; a node no side names reaches every side (a bridge)."""

    sides: tuple[tuple[str, ...], ...]
    kind: ClassVar[str] = "partition"

    def __post_init__(self) -> None:
        if len(self.sides) < 2 or not all(self.sides):
            raise UserError("a partition needs at least two sides, none of them empty")
        named = [h for side in self.sides for h in side]
        if len(set(named)) != len(named):
            raise UserError("a host can be on one side of a partition only")
        if TEMPORAL in named:
            raise UserError("temporal is on the operator host: cut it from the worker instead")

    def named(self) -> set[str]:
        return {h for side in self.sides for h in side}

    def _sides(self) -> list[tuple[str, ...]]:
        if WORKER in self.named():
            return list(self.sides)
        return [(*self.sides[0], WORKER), *self.sides[1:]]

    def drops(self, network: Network) -> list[Drop]:
        sides = self._sides()
        return [
            d
            for i, side in enumerate(sides)
            for other in sides[i + 1 :]
            for a in side
            for b in other
            for d in both_ways(a, b)
        ]

    def describe(self) -> str:
        return "partition " + " | ".join(",".join(side) for side in self._sides())


@dataclass
class Active:
    """A fault in force: its id (`heal` takes it), kind, what it was, and what it drops."""

    id: str
    kind: str
    description: str
    drops: list[Drop] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind,
            "description": self.description,
            "drops": [
                {"from": d.source, "to": d.target, "loss_percent": d.loss} for d in self.drops
            ],
        }

    def __str__(self) -> str:
        drops = f": drops {', '.join(map(str, self.drops))}" if self.drops else ""
        return f"{self.id}  {self.description}{drops}"


@dataclass(frozen=True)
class _Rule:
    host: Host  # whose table holds it
    chain: str
    handle: int
    fault_id: int
    kind: str
    drop: Drop
    description: str


class Faults:
    """Apply, list and heal faults on a network (one made here, or one another process owns)."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self._lock = LOCK_DIR / f"airreplication-hosts-slot{network.slot}-faults.lock"

    # -- applying

    def apply(self, fault: Fault) -> Active:
        """Put `fault` in force (checked first: a bad one changes nothing)."""
        self._check(fault)
        drops = fault.drops(self.network)
        with locked(self._lock):
            fault_id = 1 + max((r.fault_id for r in self._rules()), default=0)
            scripts: dict[Host, list[str]] = {}
            for drop in drops:
                host, rule = self._rule(drop, fault_id, fault)
                scripts.setdefault(host, []).append(rule)
            try:
                for host, rules in scripts.items():
                    _nft(host, [*_TABLE_SETUP, *rules])
            except UserError:
                self._delete([r for r in self._rules() if r.fault_id == fault_id])
                raise
        return Active(str(fault_id), fault.kind, fault.describe(), sorted(drops))

    def _check(self, fault: Fault) -> None:
        if not self.network.live():
            raise UserError(
                f"the test hosts of slot {self.network.slot} are gone (their owner has exited)"
            )
        for name in sorted(fault.named()):
            if name == TEMPORAL:
                if self.network.temporal_relay is None:
                    raise UserError("this network has no relay to Temporal to cut")
                if isinstance(fault, Isolate):
                    raise UserError("temporal is on the operator host: isolate the worker instead")
            else:
                self.network.host(name)

    def _rule(self, drop: Drop, fault_id: int, fault: Fault) -> tuple[Host, str]:
        """Where `drop` is enforced, and the nft rule that does it."""
        loss = f"numgen random mod 100 < {drop.loss} " if drop.loss < 100 else ""
        head = f"air-fault {fault_id} {fault.kind} {drop.source}>{drop.target} {drop.loss}% | "
        comment = (head + fault.describe())[:COMMENT_MAX]
        tail = f'{loss}drop comment "{comment}"'
        if drop.target != TEMPORAL:
            receiver = self.network.host(drop.target)
            match = self._match("saddr", "sport", drop.source)
            return receiver, f"add rule inet {TABLE} input {match} {tail}"
        sender = self.network.host(drop.source)
        match = self._match("daddr", "dport", TEMPORAL)
        return sender, f"add rule inet {TABLE} output {match} {tail}"

    def _match(self, address_field: str, port_field: str, name: str) -> str:
        if name != TEMPORAL:
            return f"ip {address_field} {self.network.host(name).address}"
        assert self.network.temporal_relay is not None
        address, port = self.network.temporal_relay.rsplit(":", 1)
        return f"ip {address_field} {address} tcp {port_field} {port}"

    # -- listing

    def active(self) -> list[Active]:
        """What is in force, read back from nft (and /proc, for freezes), oldest first."""
        return self._active(self._rules())

    def _active(self, rules: list[_Rule]) -> list[Active]:
        found: dict[int, Active] = {}
        for rule in rules:
            entry = found.setdefault(
                rule.fault_id, Active(str(rule.fault_id), rule.kind, rule.description)
            )
            if rule.drop not in entry.drops:
                entry.drops = sorted([*entry.drops, rule.drop])
        frozen = [
            Active(f"freeze-{h.name}", "freeze", f"freeze {h.name}")
            for h in self.network.hosts.values()
            if any(_stopped(pid) for pid in namespace_pids(h.namespace))
        ]
        return [found[i] for i in sorted(found)] + frozen

    def _rules(self) -> list[_Rule]:
        rules = []
        for host in self.network.hosts.values():
            listed = run(host.wrap(["nft", "-j", "list", "table", "inet", TABLE]), check=False)
            for item in json.loads(listed or "{}").get("nftables", []):
                rule = item.get("rule")
                match = _COMMENT.match(rule.get("comment", "")) if rule else None
                if rule is None or match is None:
                    continue
                fault_id, kind, source, target, loss, description = match.groups()
                drop = Drop(source, target, int(loss))
                rules.append(
                    _Rule(
                        host, rule["chain"], rule["handle"], int(fault_id), kind,
                        drop, description,
                    )
                )  # fmt: skip
        return rules

    # -- healing

    def heal(self, which: str | None = None) -> list[Active]:
        """Heal one fault (its id), every fault of a kind (`cut`, `freeze`, ...), or all
        (`which` None: every rule and every frozen host); return what was healed."""
        with locked(self._lock):
            rules = self._rules()
            active = self._active(rules)
            chosen = [a for a in active if which is None or which in (a.id, a.kind)]
            if which is not None and not chosen:
                listed = ", ".join(a.id for a in active) or "none"
                raise UserError(f"no active fault {which!r} (active: {listed})")
            ids = {int(a.id) for a in chosen if a.id.isdigit()}
            self._delete([r for r in rules if r.fault_id in ids])
            for a in chosen:
                if a.kind == "freeze":
                    self.thaw(a.id.removeprefix("freeze-"))
        return chosen

    def _delete(self, rules: Iterable[_Rule]) -> None:
        by_host: dict[Host, list[str]] = {}
        for r in rules:
            by_host.setdefault(r.host, []).append(
                f"delete rule inet {TABLE} {r.chain} handle {r.handle}"
            )
        for host, lines in by_host.items():
            _nft(host, lines)

    # -- freezing

    def freeze(self, name: str) -> Active:
        """SIGSTOP every process on the host: it hangs, its connections stay open, silent."""
        self._signal(name, signal.SIGSTOP)
        return Active(f"freeze-{name}", "freeze", f"freeze {name}")

    def thaw(self, name: str) -> None:
        self._signal(name, signal.SIGCONT)

    def _signal(self, name: str, sig: signal.Signals) -> None:
        host = self.network.host(name)
        pids = namespace_pids(host.namespace)
        if not pids:
            raise UserError(f"nothing runs on {name}")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


# The table and its two base chains: declared with each change (adding them again is a no-op).
_TABLE_SETUP = [
    f"add table inet {TABLE}",
    f"add chain inet {TABLE} input {{ type filter hook input priority filter; policy accept; }}",
    f"add chain inet {TABLE} output {{ type filter hook output priority filter; policy accept; }}",
]


def _nft(host: Host, lines: list[str]) -> None:
    """Run an nft script in `host`'s namespace: all of its lines, or none."""
    run(host.wrap(["nft", "-f", "-"]), "\n".join(lines) + "\n")


def _stopped(pid: int) -> bool:
    state = process_state(pid)
    return state is not None and state[0] == "T"


def host_named(text: str, network: Network) -> str:
    """A host as a user names it: `3` or `n3` for node 3, `worker`, `client`, `temporal`."""
    name = f"n{text}" if text.isdigit() else text
    if name != TEMPORAL and name not in network.hosts:
        nodes = ",".join(h.removeprefix("n") for h in network.node_hosts)
        raise UserError(f"unknown host {text!r} (nodes {nodes}, worker, client, temporal)")
    return name
