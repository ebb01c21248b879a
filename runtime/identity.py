"""Node identities in certificates: node N's certificate has the common name `node<N>`."""

from __future__ import annotations


def node_name(node_id: int) -> str:
    """The common name of node `node_id`'s certificate."""
    return f"node{node_id}"
