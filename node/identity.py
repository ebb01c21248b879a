"""Who calls a node, by the certificate it presented: with TLS on, a node sends only as itself.

Mutual TLS admits every certificate the CA signed, and airctl and the worker share one. A
stream that feeds a replica (a transfer or a snapshot) names its sending node, so that name
must be the one the certificate carries: node N's certificate has the common name `node<N>`.
Certificates with any other name (`client`, ...) may make every other call.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc

from node.errors import NodeError
from runtime.identity import node_name

log = logging.getLogger(__name__)


def common_names(context: grpc.aio.ServicerContext[Any, Any]) -> list[str]:
    """The common names of the certificate the caller presented (none on plaintext)."""
    names = context.auth_context().get("x509_common_name", [])
    return [name.decode(errors="replace") for name in names]


def require_node(context: grpc.aio.ServicerContext[Any, Any], sender: int, what: str) -> None:
    """Refuse `what` (a stream that claims to come from node `sender`) from anyone else."""
    names = common_names(context)
    if node_name(sender) in names:
        return
    presented = f"CN {', '.join(names)}" if names else "no common name"
    message = (
        f"a {what} as node {sender} needs node {sender}'s certificate "
        f"(CN {node_name(sender)}); the caller's has {presented}"
    )
    log.warning("refused: %s (from %s)", message, context.peer())
    raise NodeError(grpc.StatusCode.PERMISSION_DENIED, message)
