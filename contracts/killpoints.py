"""IoTDB's kill points by name: where an armed process dies at once (the firing is
`runtime.killswitch`). Names only, so workflows can say where a step's points are."""

from __future__ import annotations

import enum

ENV_POINTS = "AIR_KILL_POINTS"
ENV_STATE = "AIR_KILL_POINT_STATE"
EXIT_CODE = 137  # what a SIGKILLed process reports, so supervisors treat both alike


class KillPoint(enum.StrEnum):
    # destination node (add peer)
    DESTINATION_CREATE_LOCAL_PEER = "DESTINATION_CREATE_LOCAL_PEER"
    DESTINATION_ADD_PEER_DONE = "DESTINATION_ADD_PEER_DONE"
    # each existing peer node (add peer)
    ORIGINAL_ADD_PEER_DONE = "ORIGINAL_ADD_PEER_DONE"
    # worker, for the add-peer coordinator's steps
    COORDINATOR_ADD_PEER_TRANSITION = "COORDINATOR_ADD_PEER_TRANSITION"
    COORDINATOR_ADD_PEER_DONE = "COORDINATOR_ADD_PEER_DONE"
    # worker, for the remove-peer coordinator's steps
    REMOVE_PEER_COORDINATOR_INIT = "REMOVE_PEER_COORDINATOR_INIT"
    AFTER_NOTIFY_PEERS_TO_REMOVE_REPLICATE_CHANNEL = (
        "AFTER_NOTIFY_PEERS_TO_REMOVE_REPLICATE_CHANNEL"
    )
    AFTER_INACTIVE_PEER = "AFTER_INACTIVE_PEER"
    REMOVE_PEER_COORDINATOR_FINISH = "REMOVE_PEER_COORDINATOR_FINISH"
    # leaving node
    BEFORE_INACTIVATE = "BEFORE_INACTIVATE"
    AFTER_INACTIVATE = "AFTER_INACTIVATE"
    BEFORE_DELETE = "BEFORE_DELETE"
    AFTER_DELETE = "AFTER_DELETE"


NODE_POINTS = frozenset(
    {
        KillPoint.DESTINATION_CREATE_LOCAL_PEER,
        KillPoint.DESTINATION_ADD_PEER_DONE,
        KillPoint.ORIGINAL_ADD_PEER_DONE,
        KillPoint.BEFORE_INACTIVATE,
        KillPoint.AFTER_INACTIVATE,
        KillPoint.BEFORE_DELETE,
        KillPoint.AFTER_DELETE,
    }
)
WORKER_POINTS = frozenset(KillPoint) - NODE_POINTS
