"""`airctl fault`: cut, isolate, partition, make lossy, freeze the test hosts of a stack that
`airctl up --hosts` runs, list what is in force, heal it (stack/faults.py does the work)."""

from __future__ import annotations

import argparse
import json

from airctl.args import Commands
from airctl.context import Ctl
from contracts.errors import UserError
from stack.faults import TEMPORAL, Active, Cut, Fault, Faults, Flaky, Isolate, Partition, host_named
from stack.hosts import Network, NetworkState


def faults_of(ctl: Ctl) -> Faults:
    """The faults of the stack's test hosts; refused, saying why, for any other stack."""
    state_file = ctl.config.hosts
    if state_file is None:
        raise UserError(
            f"the stack of {ctl.path} runs on loopback: faults need one on test hosts "
            "(`airctl up --hosts`)"
        )
    if not state_file.exists():
        raise UserError(f"{state_file} is gone: is `airctl up --hosts` still running?")
    network = Network.attach(NetworkState.load(state_file))
    if not network.live():
        raise UserError(
            f"the test hosts of {ctl.path} are gone (slot {network.slot} has no owner: "
            "`airctl up --hosts` has exited)"
        )
    return Faults(network)


def _fault(args: argparse.Namespace, network: Network) -> Fault:
    def host(text: str) -> str:
        return host_named(text, network)

    match args.action:
        case "isolate":
            return Isolate(host(args.node))
        case "cut":
            return Cut(host(args.a), host(args.b), one_way=args.one_way)
        case "flaky":
            return Flaky(host(args.a), host(args.b), args.loss)
        case "partition":
            return Partition(tuple(tuple(host(h) for h in side.split(",")) for side in args.sides))
    raise AssertionError(args.action)


def cmd_apply(ctl: Ctl) -> int:
    faults = faults_of(ctl)
    active = faults.apply(_fault(ctl.args, faults.network))
    ctl.emit(active.as_json(), f"fault {active}")
    return 0


def cmd_freeze(ctl: Ctl) -> int:
    faults = faults_of(ctl)
    name = _process_host(ctl, faults)
    if ctl.args.action == "freeze":
        ctl.emit(faults.freeze(name).as_json(), f"froze {name}: every process on it stopped")
    else:
        faults.thaw(name)
        ctl.emit({"thawed": name}, f"thawed {name}")
    return 0


def _process_host(ctl: Ctl, faults: Faults) -> str:
    name = host_named(ctl.args.node, faults.network)
    if name == TEMPORAL:
        raise UserError("temporal runs on the operator host: freeze the hosts, not the machine")
    return name


def cmd_heal(ctl: Ctl) -> int:
    which, everything = ctl.args.which, ctl.args.all
    if (which is None) == (not everything):
        raise UserError("heal takes a fault's id or kind (see `airctl fault list`), or --all")
    healed = faults_of(ctl).heal(which)
    ctl.emit(
        [a.as_json() for a in healed],
        "\n".join(f"healed {a}" for a in healed) or "nothing to heal",
    )
    return 0


def cmd_list(ctl: Ctl) -> int:
    active: list[Active] = faults_of(ctl).active()
    if ctl.json:
        print(json.dumps([a.as_json() for a in active], indent=2))
    else:
        print("\n".join(map(str, active)) or "no faults")
    return 0


# -- arguments --------------------------------------------------------------------------------


def register(sub: Commands) -> None:
    """`fault`: its kinds, `freeze`/`thaw`, `heal` and `list`."""
    parser = sub.add_parser(
        "fault",
        help="faults between the test hosts of `airctl up --hosts` (nft rules that drop)",
        temporal_flags=False,
    )
    fault = parser.add_subparsers(dest="action", required=True)
    hosts = "a node id (3), worker, client or temporal"

    isolate = fault.add_parser("isolate", help="the node reaches no node nor the worker")
    isolate.add_argument("node", help="a node id")
    cut = fault.add_parser("cut", help="the link between two hosts (`cut worker temporal` too)")
    flaky = fault.add_parser("flaky", help="a share of the packets between two hosts lost")
    for c in (cut, flaky):
        c.add_argument("a", help=hosts)
        c.add_argument("b", help=hosts)
    cut.add_argument("--one-way", action="store_true", help="only what A sends to B is lost")
    flaky.add_argument("--loss", type=int, required=True, metavar="PERCENT", help="1 to 100")
    partition = fault.add_parser(
        "partition", help="sides that do not reach each other; the worker is on the first"
    )
    partition.add_argument("sides", nargs="+", metavar="SIDE", help="node ids, e.g. 1,2")
    for c in (isolate, cut, flaky, partition):
        c.set_defaults(handler=cmd_apply)

    for action, what in (("freeze", "SIGSTOP"), ("thaw", "SIGCONT")):
        c = fault.add_parser(action, help=f"{what} every process on a host (its node)")
        c.add_argument("node", help="a node id, or worker")
        c.set_defaults(handler=cmd_freeze)

    heal = fault.add_parser("heal", help="end a fault (its id or kind), or all of them")
    heal.add_argument("which", nargs="?", help="an id or kind from `airctl fault list`")
    heal.add_argument("--all", action="store_true", help="every fault, and thaw every host")
    heal.set_defaults(handler=cmd_heal)
    listing = fault.add_parser("list", help="the faults in force")
    listing.set_defaults(handler=cmd_list)
