"""The C allocator's thresholds, set for a node that moves data in 1 MiB buffers.

A snapshot or a columnar batch is carried in buffers of about a megabyte (a chunk read, its
gRPC message, its bytes once parsed). glibc serves an allocation that large with a fresh
`mmap` and returns it with `munmap` when freed (its dynamic threshold rises only up to the
size it last freed, and each thread's arena trims its free top at 128 KiB), so every buffer
costs the kernel a zeroed page per 4 KiB, faulted in and unmapped again: on this project's
2-core machine that was a third of a 1 GB snapshot's CPU on each side. Serving them from the
heap and keeping up to `KEEP_FREE_BYTES` free per arena reuses the same pages instead
(BENCHMARKS.md, 2026-12-05: `malloc thresholds`).

Elsewhere than glibc (musl, macOS) this does nothing: their allocators have their own rules.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

# mallopt(3) parameters
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# above the largest buffer a node allocates in the normal course (a 1 MiB chunk and its framing)
HEAP_UP_TO_BYTES = 4 * 1024 * 1024
# free memory an arena keeps rather than give back: a few transfers' buffers in flight
KEEP_FREE_BYTES = 32 * 1024 * 1024


def keep_large_buffers() -> bool:
    """Serve buffers up to HEAP_UP_TO_BYTES from the heap and keep KEEP_FREE_BYTES free per
    arena. True if set (glibc), False where there is no mallopt. Setting it again is harmless."""
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
