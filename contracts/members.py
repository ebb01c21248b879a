"""Who a region's members are, by what its holders list.

A node whose replica was removed while the workflow could not reach it keeps a replica that
still lists itself and the region's old members, and that may still take writes until it
learns so (node/retirement.py). It is not a member: planning from its list would bring a
removed node back into a new replica's peer list, where nothing would take it out again.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping


def stale_holders(lists: Mapping[int, Collection[int]], took_writes: Collection[int]) -> set[int]:
    """Of the holders that took writes (active or leaving: `took_writes`), those that no more
    than half of the other holders list (`lists`: each holder's peer list). A majority, not
    any other: two replicas removed behind cuts still list each other. None where no other
    holder answered: there is nothing to judge by. A joining replica, not yet active, is
    never stale: the others list it once their channels to it exist, before it activates."""
    stale = set()
    for node in took_writes:
        others = [peers for n, peers in lists.items() if n != node]
        if others and 2 * sum(node in peers for peers in others) <= len(others):
            stale.add(node)
    return stale
