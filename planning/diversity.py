"""How far apart a region's replicas stand: its diversity, tier by tier of the nodes' localities.

CockroachDB's diversity score is the model (pkg/roachpb `Locality.DiversityScore`, the
allocator's `rangeDiversityScore`): two nodes that differ in their first tier stand 1 apart;
that share the first of n tiers and differ in the second, (n-1)/n; that share every tier, 0.
Replicas in different zones so count more than replicas in different racks of one zone. A
node that names no locality stands apart from every other (1). A region's diversity is the
mean over the pairs of its replicas (1 for a single replica); comparing two placements of a
region compares these means.

Pure, no Temporal: every planner ranks destinations by the diversity they leave first
(planning/placement.py), and `airctl placement` and the worker's metric read conformance
from here. Scores are cached by locality, not by node: a cluster has few distinct places.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from contracts.locality import tier_name

Place = tuple[str, ...]  # a node's tiers, most significant first; () names none

# Diversities are means of small fractions; rounded, equal placements compare equal.
DIGITS = 9


@lru_cache(maxsize=65_536)
def apart(a: Place, b: Place) -> float:
    """How far apart two nodes stand, 0 (the same place) to 1 (nothing shared)."""
    if not a or not b:
        return 1.0
    shared = min(len(a), len(b))
    for i in range(shared):
        if a[i] != b[i]:
            return (shared - i) / shared
    # one names more tiers than the other: the missing one counts as different
    return 0.0 if len(a) == len(b) else 1 / (shared + 1)


@lru_cache(maxsize=65_536)
def diversity_of(places: tuple[Place, ...]) -> float:
    """The mean of `apart` over every pair of `places` (sorted, as a key); 1 for fewer than
    two."""
    pairs = [apart(a, b) for i, a in enumerate(places) for b in places[i + 1 :]]
    return round(sum(pairs) / len(pairs), DIGITS) if pairs else 1.0


def describe(place: Place) -> str:
    """`zone=a,rack=r2` as `zone a, rack r2`; `no locality` for none."""
    return ", ".join(tier_name(t) for t in place) or "no locality"


@dataclass(frozen=True)
class Raise:
    """A move that raises a region's diversity: a replica of `member` to a node at `to`."""

    member: int
    to: Place
    diversity: float


class Places:
    """Each known node's place, and the diversities of the regions placed on them."""

    def __init__(self, localities: Mapping[int, Sequence[str]]) -> None:
        self.place: dict[int, Place] = {n: tuple(tiers) for n, tiers in localities.items()}
        self.zone: dict[int, str] = {n: place[0] for n, place in self.place.items() if place}
        self.known = bool(self.zone)

    def of(self, node: int) -> Place:
        return self.place.get(node, ())

    def diversity(self, nodes: Iterable[int]) -> float:
        """The diversity of replicas on `nodes`."""
        if not self.known:
            return 1.0
        return diversity_of(tuple(sorted(self.of(n) for n in nodes)))

    def with_each(self, rest: Sequence[int], candidates: Iterable[int]) -> dict[int, float]:
        """The diversity of replicas on `rest` and one of `candidates`, per candidate."""
        if not self.known:
            return dict.fromkeys(candidates, 1.0)
        base = sorted(self.of(n) for n in rest)
        by_place: dict[Place, float] = {}
        result = {}
        where = self.place
        for c in candidates:
            place = where.get(c, ())
            if place not in by_place:
                by_place[place] = diversity_of(tuple(sorted([*base, place])))
            result[c] = by_place[place]
        return result

    def same_zone(self, a: int, b: int) -> bool:
        """Whether two nodes stand in one zone (their first tier)."""
        zone = self.zone.get(a)
        return zone is not None and zone == self.zone.get(b)

    def nearest(self, candidates: Sequence[int], to: int) -> list[int]:
        """Those of `candidates` in `to`'s zone; all of them when none is (a new replica's
        snapshot from its own zone when a holder is there: CockroachDB's delegated
        snapshots)."""
        near = [c for c in candidates if self.same_zone(c, to)]
        return near or list(candidates)

    def raises(self, members: Sequence[int], free: Iterable[Place]) -> list[Raise]:
        """Every move of one of `members` to one of the `free` places that raises the
        region's diversity, most diverse first (then by the places, then the member with the
        lowest id: one order everywhere)."""
        if not self.known or len(members) < 2:
            return []
        places = tuple(sorted(self.of(n) for n in members))
        if diversity_of(places) >= 1.0:
            return []  # as diverse as any placement: the common case, answered at once
        return [
            Raise(member, to, d)
            for (place, to, d) in _raises(places, tuple(sorted(set(free))))
            for member in sorted(m for m in members if self.of(m) == place)
        ]


@lru_cache(maxsize=65_536)
def _raises(places: tuple[Place, ...], free: tuple[Place, ...]) -> list[tuple[Place, Place, float]]:
    """(the place of a replica, the free place it would move to, the diversity after) for
    every move that raises `places`' diversity, most diverse first."""
    now = diversity_of(places)
    found = []
    for leaving in sorted(set(places)):
        rest = list(places)
        rest.remove(leaving)
        for to in free:
            after = diversity_of(tuple(sorted([*rest, to])))
            if after > now:
                found.append((leaving, to, after))
    return sorted(found, key=lambda f: (-f[2], f[0], f[1]))
