"""Space given back in the background: the folders of deleted replicas, removed one at a time
on a thread of their own, gently (`runtime.files.remove_gently`), so that a deletion blocks
neither the event loop nor the synced writes of the replicas that stay."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from pathlib import Path

from runtime.files import remove_gently

log = logging.getLogger(__name__)


class Reclaimer:
    def __init__(self) -> None:
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: set[asyncio.Future[None]] = set()

    def remove(self, folder: Path) -> None:
        """Remove `folder` in the background, after those handed over before it. Its name is
        already out of the node's view; a crash meanwhile leaves it for the next start."""
        if self._executor is None:  # one thread: the disk gives back one folder at a time
            self._executor = concurrent.futures.ThreadPoolExecutor(1, "reclaim")
        done = asyncio.get_running_loop().run_in_executor(self._executor, remove_gently, folder)
        self._pending.add(done)
        done.add_done_callback(lambda f: self._finished(folder, f))

    def _finished(self, folder: Path, done: asyncio.Future[None]) -> None:
        self._pending.discard(done)
        if not done.cancelled() and (error := done.exception()) is not None:
            log.warning("%s not removed (%s): the next start removes it", folder.name, error)

    @property
    def pending(self) -> int:
        """Folders handed over and not yet removed."""
        return len(self._pending)

    async def drain(self) -> None:
        """Return once every folder handed over is removed (or failed to be)."""
        await asyncio.gather(*self._pending, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
