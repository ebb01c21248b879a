"""Where a node stands: its locality, ordered tiers, most significant first.

`zone=eu-1a,rack=r7` is the tiers `zone=eu-1a` and `rack=r7`; any number of them, the same
keys on every node by convention (CockroachDB's `--locality`, TiKV's location labels). A node
with none stands apart from every other. Plain lists of `key=value` strings travel in the
models, so any Temporal client reads them.
"""

from __future__ import annotations

from collections.abc import Sequence

EXAMPLE = "zone=eu-1a,rack=r7"


class BadLocality(ValueError):
    """A locality that cannot be read; the message is one line saying why."""


def parse_locality(text: str) -> list[str]:
    """`zone=eu-1a,rack=r7` as its tiers; empty text, none. `BadLocality` on a tier that is
    not `key=value`, an empty tier, key or value, or a key given twice."""
    if not text.strip():
        return []
    tiers, keys = [], set()
    for raw in text.split(","):
        tier = raw.strip()
        if not tier:
            raise BadLocality(f"an empty tier in {text!r} (e.g. {EXAMPLE})")
        key, eq, value = (part.strip() for part in tier.partition("="))
        if not eq:
            raise BadLocality(f"{tier!r} is not key=value (e.g. {EXAMPLE})")
        if not key or not value:
            raise BadLocality(f"{tier!r} has an empty {'key' if not key else 'value'}")
        if key in keys:
            raise BadLocality(f"the key {key!r} is given twice in {text!r}")
        keys.add(key)
        tiers.append(f"{key}={value}")
    return tiers


def format_locality(tiers: Sequence[str]) -> str:
    """The tiers as `--locality` takes them; `-` for none."""
    return ",".join(tiers) or "-"


def zone_of(tiers: Sequence[str]) -> str:
    """The most significant tier (`zone=b`), or "" for a node that names none."""
    return tiers[0] if tiers else ""


def tier_name(tier: str) -> str:
    """`zone=b` as a reader says it: `zone b`."""
    key, _, value = tier.partition("=")
    return f"{key} {value}"
