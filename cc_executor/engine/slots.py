"""The global concurrency limit: excess runs wait in FIFO order and can report their queue position."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
from anyio.lowlevel import RunVar

QueuedCallback = Callable[[int], Awaitable[None]]


def default_limit() -> int:
    """CC_EXECUTOR_MAX_CONCURRENT, else the CPU count (each CLI takes ~200 MB and a core while it boots)."""
    value = os.environ.get("CC_EXECUTOR_MAX_CONCURRENT")
    if value and value.isdigit() and int(value) > 0:
        return int(value)
    return max(2, os.cpu_count() or 2)


class RunSlots:
    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit or default_limit()
        self._limiter = anyio.CapacityLimiter(self.limit)
        self._waiting: list[object] = []

    @property
    def running(self) -> int:
        return int(self._limiter.borrowed_tokens)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @asynccontextmanager
    async def acquire(self, on_queued: QueuedCallback | None = None) -> AsyncIterator[None]:
        token = object()
        if self._limiter.available_tokens < 1 and on_queued is not None:
            self._waiting.append(token)
            try:
                await on_queued(len(self._waiting))
                await self._limiter.acquire_on_behalf_of(token)
            finally:
                self._waiting.remove(token)
        else:
            await self._limiter.acquire_on_behalf_of(token)
        try:
            yield
        finally:
            self._limiter.release_on_behalf_of(token)


_DEFAULT: RunVar[RunSlots] = RunVar("cc_executor_default_slots")


def default_slots() -> RunSlots:
    """One shared limit per event loop, for every caller that does not bring its own."""
    try:
        return _DEFAULT.get()
    except LookupError:
        slots = RunSlots()
        _DEFAULT.set(slots)
        return slots
