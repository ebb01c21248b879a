"""Temporal activities: thin, idempotent wrappers over the node gRPC service."""
