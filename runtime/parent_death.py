"""A child process that dies with its parent, even when the parent is SIGKILLed."""

from __future__ import annotations

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with(parent: int) -> None:
    """In the child: ask the kernel for SIGKILL when `parent` dies; exit at once if it already
    has (it died before the request took effect)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)
