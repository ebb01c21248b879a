"""The one error a node's operations raise for a request it refuses."""

from __future__ import annotations

import grpc


class NodeError(Exception):
    """A request this node refuses; `code` is the gRPC status it maps to."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
