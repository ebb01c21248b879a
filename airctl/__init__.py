"""airctl: the command-line front door (see cli.py)."""

import os

# airctl starts the stack's processes (fork, then exec): gRPC's fork handlers only log
# "skipping fork() handlers" then, as other threads use gRPC; none of its state must survive
# an exec'd child. Set before grpc is imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
