"""A concurrency limit shared by every process on one state dir: N lock files, one ``flock`` per running CLI.

Durable runs each have their own supervisor process, so the in-process ``RunSlots`` cannot bound them. A supervisor
holds ``<state>/slots/<i>.lock`` (an exclusive ``flock``) while its CLI runs; the kernel drops the lock when the
process dies however it dies, so a SIGKILLed supervisor never leaks a slot. Waiting is polling (there is no
cross-process event to wait on). Order is FIFO: a run takes a free slot only when ``ahead`` says no earlier run is
still waiting for one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from cc_executor.engine.slots import QueuedCallback, RunSlots
from cc_executor.paths import ensure_private_dir

_POLL_S = 0.2

AheadFn = Callable[[], Awaitable[int]]


async def _nobody_ahead() -> int:
    return 0


class FileSlots(RunSlots):
    """``RunSlots`` across processes. ``ahead``: how many earlier runs still wait for a slot (they go first)."""

    def __init__(
        self, directory: Path, limit: int | None = None, *, holder: str = "", ahead: AheadFn = _nobody_ahead
    ) -> None:
        super().__init__(limit)
        self.directory = directory
        self.holder = holder  # written into the slot file while held, so others can tell holders from waiters
        self._ahead = ahead

    def holders(self) -> set[str]:
        """Who holds a slot now (as written by each holder; a dead holder's lock is gone, its name may linger)."""
        found: set[str] = set()
        for index in range(self.limit):
            path = self.directory / f"{index}.lock"
            try:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                os.close(fd)  # we got it: nobody holds this slot
                continue
            except BlockingIOError:
                found.add(os.pread(fd, 200, 0).decode(errors="replace").strip())
            os.close(fd)
        return found

    def _try_take(self) -> int | None:
        """An fd holding one free slot's lock, or None when all ``limit`` are held."""
        ensure_private_dir(self.directory)
        for index in range(self.limit):
            fd = os.open(self.directory / f"{index}.lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, self.holder.encode(), 0)
            return fd
        return None

    async def _take_in_turn(self) -> tuple[int | None, int]:
        """(a slot's fd or None, how many wait ahead of us)."""
        ahead = await self._ahead()
        return (self._try_take() if ahead == 0 else None), ahead

    @asynccontextmanager
    async def acquire(self, on_queued: QueuedCallback | None = None) -> AsyncIterator[None]:
        fd, ahead = await self._take_in_turn()
        reported = 0
        while fd is None:
            if on_queued is not None and ahead + 1 != reported:  # the position as it changes, not every poll
                reported = ahead + 1
                await on_queued(reported)
            await anyio.sleep(_POLL_S)
            fd, ahead = await self._take_in_turn()
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the last fd drops the flock
