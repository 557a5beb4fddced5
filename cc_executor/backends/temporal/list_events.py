"""A task list's own numbered events: kept by the front end that runs the list (its tasks run on workers), or, for a
list it does not run (after a restart), followed through the members' rows."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio

from cc_executor.backends.protocol import RunEvent
from cc_executor.models import ProgressUpdate, RunRecord

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


Rows = Callable[[], Awaitable[list[RunRecord]]]


async def follow_rows(list_id: str, after: int, rows: Rows, poll_s: float) -> AsyncIterator[RunEvent]:
    """A list this front end does not run (it restarted, or another front end runs it): its members' progress as
    their rows show it (``rows``: the list's rows, each brought up to date from Temporal), numbered from ``after``,
    then ``finished`` once every member's row has ended."""
    seq, seen = after, dict[str, str]()
    while True:
        members = sorted(await rows(), key=lambda record: record.created_at or "")
        for index, record in enumerate(members, start=1):
            message = record.last_progress
            if record.status.finished or not message or seen.get(record.run_id) == message:
                continue
            seen[record.run_id] = message
            seq += 1
            update = ProgressUpdate(
                run_id=record.run_id,
                kind="heartbeat",
                message=f"[{index}/{len(members)}] {message}",
                list_index=index,
                list_total=len(members),
            )
            yield RunEvent(run_id=list_id, seq=seq, kind="progress", progress=update)
        if all(record.status.finished for record in members):
            yield RunEvent(run_id=list_id, seq=seq + 1, kind="finished")
            return
        await anyio.sleep(poll_s)
