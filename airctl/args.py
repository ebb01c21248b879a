"""What airctl's commands share in their arguments: the types, the one-line errors, the
global options every command takes before or after its name."""

from __future__ import annotations

import argparse
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

from client import connection
from contracts.errors import UserError
from contracts.models import HIGH_WATERMARK

# the parser's `add_subparsers()` object, on which each command module adds its commands
Commands = Any


def count(text: str) -> int:
    """An argparse type: a count that must be positive."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def positive(text: str) -> float:
    """An argparse type: a duration or rate that must be above zero."""
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {value}")
    return value


def percent(text: str) -> float:
    """An argparse type: a percentage above 0, at most 100."""
    value = float(text)
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(
            f"must be a percentage above 0 and at most 100, not {text}"
        )
    return value


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str, flag: str, also: str = "") -> timedelta:
    """`24h`, `30m`, `90s`, `1d`: how often something runs (given as `flag`)."""
    match = _DURATION.match(text.strip())
    try:
        if match is not None and float(match[1]) > 0:
            return timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    except OverflowError:
        pass
    raise UserError(
        f"{flag} takes a duration like 24h, 30m or 90s{' ' + also if also else ''}, not {text!r}"
    )


class Parser(argparse.ArgumentParser):
    """Bad arguments are one line, like every other airctl error (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"airctl: {message} (see {self.prog} --help)\n")


def global_options(p: argparse.ArgumentParser, *, after_command: bool, temporal: bool) -> None:
    """--cluster, --json and the Temporal connection flags: before the command, or after it
    (there they override nothing they are not given)."""
    unset: Any = argparse.SUPPRESS
    p.add_argument(
        "--cluster",
        type=Path,
        default=unset if after_command else None,
        help="cluster file (default .air/cluster.json)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        default=unset if after_command else False,
        help="machine-readable output",
    )
    if temporal:
        connection.add_arguments(p, suppress_defaults=after_command)


class CommandParser(Parser):
    """A command's parser: it takes the global options too (`up` and `demo` have their own
    --tls, for the stack, and reach Temporal by the stack's settings alone)."""

    def __init__(self, *, temporal_flags: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        global_options(self, after_command=True, temporal=temporal_flags)


def high_watermark(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--high-watermark",
        type=percent,
        default=HIGH_WATERMARK * 100,
        metavar="PERCENT",
        help=f"no move takes a node's disk past this (default {HIGH_WATERMARK:.0%})",
    )


def allow_less_diverse(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-less-diverse",
        action="store_true",
        help="make a move that leaves a region's replicas less far apart (zones, racks) than "
        "it found them, or than another node that fits would; refused without it",
    )
