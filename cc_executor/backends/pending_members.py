"""Tasks of a list that their list has not started yet, as runs: every backend reports such a member the same way.

A pending member has no row (its row is written when its list starts it), but it has a run id from the moment the
list was submitted, so ``status`` reports it as a ``pending`` run of its list (task, cwd, list id, position), and
``list_runs`` and ``find_ids`` include it, filtered like the rows. Each backend finds its pending members where its
lists live (``LocalBackend``: in memory; ``DurableBackend``: ``task_list_members``; Temporal: the list workflow's
state) and builds them here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from cc_executor.backends.protocol import RunFilter
from cc_executor.errors import TranscriptNotFoundError
from cc_executor.models import RunRecord, RunStatus

__all__ = [
    "matching_pending",
    "merge_ids",
    "newest_first",
    "pending_record",
    "placed",
    "skipped_record",
    "unstarted_transcript",
]


def pending_record(
    run_id: str, *, list_id: str, index: int, total: int, task: str, cwd: str, created_at: str | None
) -> RunRecord:
    """A member its list has not started: ``pending``, with its list, its place and when the list was submitted."""
    return RunRecord(
        run_id=run_id,
        status=RunStatus.PENDING,
        task=task,
        cwd=cwd,
        list_id=list_id,
        list_index=index,
        created_at=created_at,
        attempts=0,
        last_progress=f"pending: task {index} of {total} of list {list_id}; it starts when the list gets to it",
    )


def skipped_record(
    run_id: str, *, list_id: str, index: int, task: str, cwd: str, created_at: str | None, reason: str
) -> RunRecord:
    """A member its list ended without starting, before its ``skipped`` row was written (a moment, or never when
    the list's owner died first): what the list says of it."""
    return RunRecord(
        run_id=run_id,
        status=RunStatus.SKIPPED,
        task=task,
        cwd=cwd,
        list_id=list_id,
        list_index=index,
        created_at=created_at,
        error=reason,
    )


def unstarted_transcript(record: RunRecord) -> TranscriptNotFoundError | None:
    """Why a list's task that has not started (or never will: skipped) has no transcript; None for other runs."""
    if record.status is RunStatus.PENDING:
        where = f"task {record.list_index} of list {record.list_id}"
        return TranscriptNotFoundError(f"run {record.run_id} has not started yet ({where}): no transcript yet")
    if record.status is RunStatus.SKIPPED and not record.transcript_path:
        return TranscriptNotFoundError(f"run {record.run_id} never started ({record.error or 'skipped'})")
    return None


def matching_pending(pending: Iterable[RunRecord], query: RunFilter) -> list[RunRecord]:
    """The pending members ``query`` selects (the same filters as the rows: status, resolved cwd, time, list)."""
    cwd = str(Path(query.cwd).resolve()) if query.cwd else None
    return [
        record
        for record in pending
        if (query.status is None or query.status is record.status)
        and (cwd is None or str(Path(record.cwd).resolve()) == cwd)
        and (query.list_id is None or query.list_id == record.list_id)
        and (query.since is None or (_moment(record.created_at) or query.since) >= query.since)
    ]


def newest_first(rows: Sequence[RunRecord], pending: Sequence[RunRecord], limit: int) -> list[RunRecord]:
    """Pending members, then rows (newest first, as the store returns them), at most ``limit``. A pending member
    starts after every recorded run, so it comes first: the newest list's first, later members of one list before
    earlier ones, as they will be once they have started. A member that got its row meanwhile is listed once, by
    its row."""
    have = {r.run_id for r in rows}
    later_first = sorted(
        (r for r in pending if r.run_id not in have),
        key=lambda r: (_moment(r.created_at) or _EPOCH, r.list_id or "", r.list_index or 0),
        reverse=True,
    )
    return [*later_first, *rows][:limit]


def placed(records: list[RunRecord], places: Mapping[str, int]) -> list[RunRecord]:
    """``records`` with ``list_index`` filled in for the list members ``places`` knows (run id -> place)."""
    for record in records:
        if record.list_index is None and record.run_id in places:
            record.list_index = places[record.run_id]
    return records


def merge_ids(found: Sequence[str], pending: Iterable[RunRecord], prefix: str, limit: int) -> list[str]:
    """``find_ids`` with the pending members whose id starts with ``prefix`` (after the rows' ids)."""
    extra = [r.run_id for r in pending if r.run_id.startswith(prefix) and r.run_id not in found]
    return [*found, *extra][:limit]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _moment(stamp: str | None) -> datetime | None:
    if not stamp:
        return None
    value = datetime.fromisoformat(stamp)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
