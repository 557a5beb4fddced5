"""A task list's own numbered events, kept by the front end that runs the list (its tasks run on workers)."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator

import anyio

from cc_executor.backends.protocol import RunEvent
from cc_executor.models import ProgressUpdate

_KEPT_LIST_EVENTS = 256


class ListLog:
    """A task list's numbered events (its tasks' progress, prefixed with their place, then ``finished``): the
    list runs in this front end, so its events are kept here, the latest ``_KEPT_LIST_EVENTS``."""

    def __init__(self, list_id: str) -> None:
        self.list_id = list_id
        self.events: deque[RunEvent] = deque(maxlen=_KEPT_LIST_EVENTS)
        self.seq = 0
        self.changed = anyio.Event()
        self.ended = False

    def _emit(self, event: RunEvent) -> None:
        self.events.append(event)
        self.changed.set()
        self.changed = anyio.Event()

    def progress(self, update: ProgressUpdate) -> None:
        self.seq += 1
        self._emit(RunEvent(run_id=self.list_id, seq=self.seq, kind="progress", progress=update))

    def finish(self) -> None:
        self.seq += 1
        self.ended = True
        self._emit(RunEvent(run_id=self.list_id, seq=self.seq, kind="finished"))

    async def follow(self, after: int) -> AsyncIterator[RunEvent]:
        while True:
            changed = self.changed
            for event in [e for e in self.events if e.seq > after]:
                after = event.seq
                yield event
            if self.ended:
                return
            await changed.wait()
