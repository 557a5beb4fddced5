"""Delivering a run's progress updates and events to the caller's callbacks.

A callback may be sync or async; one that fails is logged and otherwise ignored, so it never breaks the run (or
the task list) it watches.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from cc_executor.engine.events import Event
from cc_executor.models import ProgressUpdate
from cc_executor.registry.store import RunStore

log = logging.getLogger(__name__)

_T = TypeVar("_T")
ProgressCallback = Callable[[ProgressUpdate], Awaitable[None] | None]
EventCallback = Callable[[Event], Awaitable[None] | None]


class Emitter:
    """Delivers one run's progress and events to the caller's callbacks, and keeps the row's progress line
    (at most one write a second); a failing callback never kills the run."""

    def __init__(
        self, on_progress: ProgressCallback | None, on_event: EventCallback | None, store: RunStore, run_id: str
    ):
        self.on_progress = on_progress
        self.on_event = on_event
        self.store = store
        self.run_id = run_id
        self.last_emit = time.monotonic()
        self._last_stored = 0.0

    async def progress(self, update: ProgressUpdate) -> None:
        self.last_emit = time.monotonic()
        # At most one progress write a second; start and finish are recorded by their own writes.
        if update.kind in ("event", "heartbeat", "queued") and self.last_emit - self._last_stored >= 1.0:
            self._last_stored = self.last_emit
            try:
                await self.store.set_progress(self.run_id, update.message)
            except Exception:  # the progress line is a convenience; a busy or broken database must not end the run
                log.warning("run %s: could not store its progress line", self.run_id, exc_info=True)
        await notify(self.on_progress, update)

    async def event(self, event: Event) -> None:
        await notify(self.on_event, event)


async def notify(callback: Callable[[_T], Awaitable[None] | None] | None, value: _T) -> None:
    """Call a sync or async callback; a failing one is logged, never raised (it must not break what it watches)."""
    if callback is None:
        return
    try:
        maybe = callback(value)
        if inspect.isawaitable(maybe):
            await maybe
    except Exception:  # a broken callback must not break the run it watches
        log.exception("progress/event callback failed")
