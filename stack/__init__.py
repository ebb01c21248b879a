"""The local stack's processes: nodes, the Temporal dev server, workers (tests, bench, airctl)."""
