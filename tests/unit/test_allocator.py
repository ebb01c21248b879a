"""The node's allocator thresholds: a buffer the size of a snapshot chunk comes from the heap,
not from a fresh mapping per buffer (each run in a process of its own, so that this one's
allocator is left as it was)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from node.allocator import KEEP_DEFAULTS

LIBC, LIBC_VERSION = platform.libc_ver()
pytestmark = pytest.mark.skipif(
    LIBC != "glibc" or tuple(map(int, LIBC_VERSION.split(".")[:2])) < (2, 33),
    reason="the thresholds are glibc's (mallopt), and mallinfo2 reads them from glibc 2.33 on",
)

MAPPINGS_A_CHUNK_ADDS = """
import ctypes, sys

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

if sys.argv[1] != "default":
    from node.allocator import keep_large_buffers
    kept = keep_large_buffers() and keep_large_buffers()  # twice: harmless
    assert kept == (sys.argv[1] == "kept")
mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = Mallinfo2
before = mallinfo2().hblks
chunk = bytearray(1024 * 1024)
print(mallinfo2().hblks - before)
"""


def mappings_a_chunk_adds(mode: str, env: dict[str, str] | None = None) -> int:
    found = subprocess.run(
        [sys.executable, "-c", MAPPINGS_A_CHUNK_ADDS, mode],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(found.stdout)


def test_a_chunk_sized_buffer_comes_from_the_heap_once_the_thresholds_are_set() -> None:
    assert mappings_a_chunk_adds("default") == 1  # glibc's default: a mapping of its own
    assert mappings_a_chunk_adds("kept") == 0


def test_the_environment_may_keep_glibcs_own_thresholds() -> None:
    variable, value = KEEP_DEFAULTS
    assert mappings_a_chunk_adds("glibc", {variable: value}) == 1
