"""airctl: the front door. Bring up a local stack, write load, migrate regions, verify."""
