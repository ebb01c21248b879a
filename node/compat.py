"""The node's wire toward nodes of other builds: what this build keeps for the floor's nodes,
what it dropped that only nodes below the floor spoke, and the refusal of such a node.

The floor (client/versions.py) is the oldest build whose nodes may run beside this one's,
during a rolling upgrade. Its nodes take channel batches as columns, and send and take
snapshots in chunks, each with its sha256 digest, resumed from what the receiver holds. Each
shape below names the build that may drop it; a proto field a dropped shape used stays in
protos/air_node.proto, marked unused, so that no new field takes its number.

Kept for the floor's nodes:
- A receiver says `columnar` on every TransferReply (node/service.py `_transfer_reply`): a
  sender of the floor build sends a Point message a point to a receiver that does not say so.
  A build may stop saying it once the floor is this build or later: this build's senders send
  columns to every receiver.
- A receiver that awaits a snapshot says the chunk size it holds chunks at
  (`snapshot_chunk_bytes`): a sender of the floor build sends the whole file, in order, to a
  receiver that says 0, and this build's senders cut at it. Kept by every build.
- sha256 chunk digests (node/digests.py). A receiver of the floor build says no
  `snapshot_digests` and takes sha256 alone, and holds sha256 digests of what it received; a
  sender of the floor build sends sha256 digests without naming them (`digest_kind` 0). So
  this build's senders send sha256 to a receiver that names no digest, or that holds chunks
  under sha256 (so they are skipped), and its receivers take it. A build may drop sha256 once
  the floor is this build or later: every node at the floor then takes and sends XXH3; the
  enum value stays, its receivers stop listing it, and a sender that meets a receiver naming
  none of its digests refuses it as below the floor.

Dropped by this build (no node at or above the floor speaks them):
- `TransferBatch.points`: a batch as a Point message a point, which senders sent to a receiver
  that did not say `columnar`, and receivers took beside columns.
- `SnapshotChunk.sha256`: the whole file's sha256 on the last chunk, with the chunks in order
  and no digest each (the last one carrying data too), which senders sent to a receiver that
  said no chunk size, and receivers checked from a sender that sent chunks without digests.

A node below the floor, met on the wire, is refused by name (`BelowFloor`): upgrade it to the
floor first.
"""

from __future__ import annotations

from node.chunk_wire import Chunk
from protos import air_node_pb2 as pb

BELOW = "a build below the floor (node/compat.py): upgrade it to the floor first"


class BelowFloor(ValueError):
    """A peer spoke, or asked for, a shape of the wire that only builds below the floor use.
    A ValueError: a receiver answers it as a malformed request (INVALID_ARGUMENT)."""


def check_receiver(reply: pb.TransferReply, receiver: int) -> None:
    """A receiver that does not say it takes columns is below the floor."""
    if not reply.columnar:
        raise BelowFloor(f"node {receiver} takes no batches as columns: it runs {BELOW}")


def check_chunk_bytes(chunk_bytes: int, receiver: int) -> None:
    """The chunk size a receiver that awaits a snapshot says it holds chunks at: none (0) is a
    receiver below the floor, which takes only a whole file."""
    if chunk_bytes <= 0:
        raise BelowFloor(f"node {receiver} takes no snapshot in chunks: it runs {BELOW}")


def check_chunk(chunk: Chunk) -> None:
    """A snapshot chunk from a sender at or above the floor: each with its digest, the last
    with the file's size and root and no data."""
    fields, data = chunk.fields, chunk.data
    if fields.sha256 or (data and not fields.digest) or (fields.last and data):
        raise BelowFloor(
            f"node {fields.sender} sent its snapshot whole, without chunk digests: it runs {BELOW}"
        )


def check_batch(batch: pb.TransferBatch) -> None:
    """A batch from a sender at or above the floor: its points as columns."""
    if batch.points:
        raise BelowFloor(f"a batch as Point messages: its sender runs {BELOW}")
