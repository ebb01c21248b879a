"""What a node can run out of, and how it says so.

Its open-file limit is raised at start as far as the hard limit allows (an idle region holds no
descriptor, an active one three: see Store.rest). A request that finds descriptors or threads
exhausted is refused as RESOURCE_EXHAUSTED naming what ran out, never as UNKNOWN with Python's
error text.
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import sqlite3

log = logging.getLogger(__name__)

# SQLite reports a descriptor it could not get as this, with no errno.
_SQLITE_CANNOT_OPEN = "unable to open database file"
# Within this many of the limit, a file SQLite cannot open is taken for the limit reached.
_NEAR_LIMIT = 16


def raise_descriptor_limit() -> None:
    """Lift the soft open-file limit to the hard one, and say so."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as e:
            log.warning("open-file limit stays %d (raising it to %d failed: %s)", soft, wanted, e)
            return
        log.info("open-file limit raised from %d to %d (the hard limit)", soft, wanted)
    else:
        log.info("open-file limit %d (the hard limit)", soft)


def exhausted(error: BaseException) -> str | None:
    """What ran out, if `error` says something did: for a RESOURCE_EXHAUSTED refusal."""
    if isinstance(error, OSError) and error.errno in (errno.EMFILE, errno.ENFILE):
        return f"file descriptors ({_descriptors()})"
    if isinstance(error, sqlite3.OperationalError) and _SQLITE_CANNOT_OPEN in str(error):
        open_now = _open_descriptors()
        if open_now is None or open_now >= _limit() - _NEAR_LIMIT:
            return f"file descriptors ({_descriptors()})"
    if isinstance(error, RuntimeError) and "can't start new thread" in str(error):
        return "threads"
    return None


def _limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _open_descriptors() -> int | None:
    """How many are open; None when even listing them needs one more than there is."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def _descriptors() -> str:
    open_now = _open_descriptors()
    return f"{'all' if open_now is None else open_now} open of a limit of {_limit()}"
