"""The C allocator's thresholds, set for a node that moves data in 1 MiB buffers.

A snapshot or a columnar batch is carried in buffers of about a megabyte (a chunk read, its
gRPC message, its bytes once parsed). glibc serves an allocation that large with a mapping of
its own and unmaps it when freed (its thresholds move with the sizes freed, from 128 KiB), so
the kernel faults in, zeroes and unmaps the same megabytes again and again (`perf` on both
ends of a snapshot). Served from the heap, with up to `KEEP_FREE_BYTES` kept free per arena,
the same pages are reused: on this project's 2-core machine a snapshot of 240 MB or 1 GB took
1.3-1.5x less time, its sender a third less CPU and its receiver a fifth less
(`bench/buffers.py`; BENCHMARKS.md, 2026-12-05).

Elsewhere than glibc (musl, macOS) this does nothing: their allocators have their own rules.
`AIRNODE_MALLOC=glibc` in a node's environment keeps glibc's own thresholds (`bench/buffers.py`
measures against them).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

KEEP_DEFAULTS = ("AIRNODE_MALLOC", "glibc")

# mallopt(3) parameters
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# above the largest buffer a node allocates in the normal course (a 1 MiB chunk and its framing)
HEAP_UP_TO_BYTES = 4 * 1024 * 1024
# free memory an arena keeps rather than give back: a few transfers' buffers in flight
KEEP_FREE_BYTES = 32 * 1024 * 1024


def keep_large_buffers() -> bool:
    """Serve buffers up to HEAP_UP_TO_BYTES from the heap and keep KEEP_FREE_BYTES free per
    arena. True if set (glibc), False where there is no mallopt or the environment keeps
    glibc's own (KEEP_DEFAULTS). Setting it again is harmless."""
    variable, value = KEEP_DEFAULTS
    if os.environ.get(variable) == value:
        return False
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = mallopt(_M_MMAP_THRESHOLD, HEAP_UP_TO_BYTES) and mallopt(
        _M_TRIM_THRESHOLD, KEEP_FREE_BYTES
    )
    if not done:
        log.warning("the allocator refused its thresholds: large buffers stay mmapped")
    return bool(done)
