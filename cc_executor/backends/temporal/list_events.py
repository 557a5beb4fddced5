"""The numbered events of a ``list_id`` that is not a list workflow (runs submitted one by one with a shared
``list_id``), followed through its members' rows. A list workflow's events: ``TemporalBackend._follow_list``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import anyio

from cc_executor.backends.protocol import RunEvent
from cc_executor.models import ProgressUpdate, RunRecord

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
