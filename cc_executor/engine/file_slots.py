"""A concurrency limit shared by every process on one state dir: N lock files, one ``flock`` per running CLI.

Durable runs each have their own supervisor process, so the in-process ``RunSlots`` cannot bound them. A supervisor
holds ``<state>/slots/<i>.lock`` (an exclusive ``flock``) while its CLI runs; the kernel drops the lock when the
process dies however it dies, so a SIGKILLed supervisor never leaks a slot. Waiting is polling (there is no
cross-process event to wait on): about FIFO, not strictly.
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

PositionFn = Callable[[], Awaitable[int]]


class FileSlots(RunSlots):
    """``RunSlots`` across processes. ``position`` says where this run stands in the queue (for its progress)."""

    def __init__(self, directory: Path, limit: int | None = None, *, position: PositionFn | None = None) -> None:
        super().__init__(limit)
        self.directory = directory
        self._position = position

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
            return fd
        return None

    @asynccontextmanager
    async def acquire(self, on_queued: QueuedCallback | None = None) -> AsyncIterator[None]:
        fd = self._try_take()
        if fd is None and on_queued is not None:
            await on_queued(await self._position() if self._position is not None else 1)
        while fd is None:
            await anyio.sleep(_POLL_S)
            fd = self._try_take()
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the last fd drops the flock
