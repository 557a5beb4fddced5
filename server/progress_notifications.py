"""Forward a run's progress to the caller's progress token while a tool call waits on it.

The MCP spec wants ``progress`` to increase with every notification; hosts such as Claude Code reset their idle
watchdog on each one and show its message. The core emits at least every 5 s while a run executes; the heartbeat
here covers the gaps it cannot see (a run queued behind the concurrency limit, a task list between two tasks).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from cc_executor.backends import Backend
    from cc_executor.models import ExecutionResult, ProgressUpdate

log = logging.getLogger(__name__)

HEARTBEAT_S = 4.0
_TICK_S = 0.5
_STEP = 0.001

ReportFn = Callable[[float, float | None, str | None], Awaitable[None]]


class ProgressSink:
    """One tool call's progress stream: strictly increasing values, never silent for more than ``heartbeat_s``."""

    def __init__(self, report: ReportFn, *, total: float | None = None, heartbeat_s: float = HEARTBEAT_S) -> None:
        self._report = report
        self.total = total
        self.heartbeat_s = heartbeat_s
        self.started = time.monotonic()
        self.last_sent = self.started
        self.last_value = 0.0
        self.message = "starting"

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    async def send(self, message: str, value: float | None = None) -> None:
        """Report ``message``; ``value`` defaults to the seconds since the call began (forced to increase)."""
        candidate = round(self.elapsed(), 3) if value is None else value
        self.last_value = max(candidate, self.last_value + _STEP)
        self.message = message
        self.last_sent = time.monotonic()
        try:
            await self._report(self.last_value, self.total, message)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception:  # a client that went away must not fail the run it was watching
            log.debug("could not send a progress notification", exc_info=True)

    async def heartbeat(self, value: Callable[[], float | None] = lambda: None) -> None:
        """Re-send the latest message whenever nothing was sent for ``heartbeat_s`` (run as a background task)."""
        while True:
            await anyio.sleep(_TICK_S)
            if time.monotonic() - self.last_sent >= self.heartbeat_s:
                base = self.message.split(" (still waiting", 1)[0]
                await self.send(f"{base} (still waiting, {self.elapsed():.0f}s)", value())


@asynccontextmanager
async def heartbeating(sink: ProgressSink, value: Callable[[], float | None] = lambda: None) -> AsyncIterator[None]:
    """Keep ``sink`` from going silent (see ProgressSink.heartbeat) while the body waits."""
    async with anyio.create_task_group() as group:
        group.start_soon(sink.heartbeat, value)
        yield
        group.cancel_scope.cancel()


UpdateFn = Callable[["ProgressUpdate"], Awaitable[None]]


async def forward_run(backend: Backend, run_id: str, on_update: UpdateFn) -> None:
    """Pass each progress update of a run (or a task list) to ``on_update`` until it ends."""
    async for event in backend.events(run_id):
        if event.progress is not None:
            await on_update(event.progress)


async def wait_forwarding(
    backend: Backend, run_id: str, on_update: UpdateFn, timeout_s: float
) -> ExecutionResult | None:
    """The run's result, or None if it still runs after ``timeout_s``; its progress goes to ``on_update``."""
    async with anyio.create_task_group() as group:
        group.start_soon(forward_run, backend, run_id, on_update)
        result = await backend.wait(run_id, timeout_s)
        group.cancel_scope.cancel()
    return result


async def wait_reporting(backend: Backend, run_id: str, sink: ProgressSink, timeout_s: float) -> ExecutionResult | None:
    """``wait_forwarding`` with the progress messages (and heartbeats) going to ``sink``."""

    async def send(update: ProgressUpdate) -> None:
        await sink.send(update.message)

    async with heartbeating(sink):
        return await wait_forwarding(backend, run_id, send, timeout_s)
