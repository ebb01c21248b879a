"""Snapshot chunk digests: the ones a node computes and takes, and the one a sender picks.

A chunk's digest vouches for it twice: the receiver refuses a chunk that does not match it,
and a resumed snapshot skips a chunk the receiver holds under the same digest, unseen. So two
chunks that differ must not share a digest by accident: XXH3's 128-bit digest (the `xxhash`
package) does that as well as sha256 for damage and for a changed page, and hashes a megabyte
in a hundredth of sha256's CPU: sha256 was a third of what a snapshot cost, on both ends, and
BLAKE3 still an eighth (BENCHMARKS.md, 2026-12-07). It is not built against design: someone who
could shape whole megabytes of a store's pages might, with work, make two chunks that match, so
that a resumed snapshot keeps a stale one; rsync makes the same choice for the blocks it skips
(xxh128), and the consistency check compares replicas under sha256. sha256 stays for the
floor's nodes (node/compat.py).

The receiver says which digests it takes, best first, and which one the chunks it holds are
under; the sender picks the held one if it can (so that a resumed snapshot skips them), else
the receiver's best that it computes too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import TypeAlias

import xxhash

from node.compat import BelowFloor
from protos import air_node_pb2 as pb

Kind: TypeAlias = pb.ChunkDigest
SHA256 = pb.CHUNK_DIGEST_SHA256
XXH3_128 = pb.CHUNK_DIGEST_XXH3_128

Buffer = bytes | bytearray | memoryview

_HASHES: dict[Kind, Callable[[Buffer], bytes]] = {
    XXH3_128: xxhash.xxh3_128_digest,
    SHA256: lambda data: hashlib.sha256(data).digest(),
}
# What this build takes and computes, best first.
TAKEN: tuple[Kind, ...] = tuple(_HASHES)
NAMES = {kind: pb.ChunkDigest.Name(kind).removeprefix("CHUNK_DIGEST_").lower() for kind in TAKEN}


class UnknownDigest(ValueError):
    """A digest this build does not compute. A ValueError: a receiver answers it as a
    malformed request."""


def require(kind: Kind) -> None:
    """`UnknownDigest` unless this build computes digests of `kind`."""
    _hash(kind)


def digest(kind: Kind, data: Buffer) -> bytes:
    """`data`'s digest of `kind`."""
    return _hash(kind)(data)


def root(kind: Kind, digests: list[bytes]) -> bytes:
    """The digest of a file's chunk digests, in order: what its last chunk carries."""
    return _hash(kind)(b"".join(digests))


def pick(offered: Sequence[Kind], held: Kind, holds: bool, receiver: int) -> Kind:
    """The digest to send a receiver's chunks under: the one its held chunks are under if it
    holds any and takes it, else the first it takes (`offered`; none: sha256 alone, a receiver
    of the floor build) that this build computes."""
    offered = list(offered) or [SHA256]
    if holds and held in offered and held in _HASHES:
        return held
    common = [kind for kind in offered if kind in _HASHES]
    if not common:
        raise BelowFloor(
            f"node {receiver} takes snapshot chunks under none of the digests this build "
            f"computes ({', '.join(NAMES.values())}): upgrade it to the floor first"
        )
    return common[0]


def _hash(kind: Kind) -> Callable[[Buffer], bytes]:
    try:
        return _HASHES[kind]
    except KeyError:
        raise UnknownDigest(
            f"snapshot chunk digest {kind} is unknown to this build "
            f"(it takes {', '.join(NAMES.values())})"
        ) from None
