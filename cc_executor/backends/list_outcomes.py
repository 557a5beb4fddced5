"""A task list's ``ListOutcome``, built the same way by every backend: from the engine's live ``TaskList``, or,
for a list this process did not run (another front end, or before a restart), from its members' rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal, cast

from cc_executor.backends.protocol import ListMemberState, ListOutcome
from cc_executor.engine.task_list_runner import TaskList
from cc_executor.models import RunRecord, RunRequest, RunStatus
from cc_executor.registry.store import TaskListRow

ListStatus = Literal["running", "success", "failed", "cancelled"]


def outcome_of(task_list: TaskList, *, finished: bool) -> ListOutcome:
    """Where a live list is: every member in list order, its totals, and how it ended once ``finished``."""
    counts = task_list.counts()
    return ListOutcome(
        list_id=task_list.list_id,
        mode=task_list.mode,
        status=task_list.status() if finished else "running",
        members=[
            ListMemberState(
                index=m.index,
                run_id=m.run_id,
                task=m.task,
                cwd=str(m.request.cwd),
                state=m.state,
                reason=m.reason,
                result=m.result,
            )
            for m in task_list.members
        ],
        succeeded=counts.succeeded,
        failed=counts.failed,
        skipped=counts.skipped,
        running=counts.running,
        pending=counts.pending,
        cost_usd=counts.cost_usd,
        elapsed_s=task_list.elapsed(),
    )


def outcome_from_rows(list_id: str, rows: Sequence[RunRecord]) -> ListOutcome:
    """What a list's rows say (oldest first); the order and mode it was given are not recorded, so members are
    in creation order and the mode reads ``sequential``."""
    ordered = sorted(rows, key=lambda record: record.created_at or "")
    members = [
        ListMemberState(
            index=i,
            run_id=row.run_id,
            task=row.task,
            cwd=row.cwd,
            state="finished" if row.status.finished else "running",
            result=row.to_result() if row.status.finished else None,
        )
        for i, row in enumerate(ordered, start=1)
    ]
    finished = [m.result for m in members if m.result is not None]
    status: ListStatus = "running" if len(finished) < len(members) else "failed" if _failures(members) else "success"
    return tallied(list_id, "sequential", status, members)


def outcome_of_recorded(row: TaskListRow, members: Sequence[tuple[str, RunRequest, RunRecord | None]]) -> ListOutcome:
    """A durable list from the registry, readable by any process: its recorded order and mode, and each member from
    its row (none yet: pending while the list runs, skipped once it has ended)."""
    states = [_member_state(i, row, *member) for i, member in enumerate(members, start=1)]
    status = row.status if row.finished and row.status in _ENDED else "failed" if row.finished else "running"
    end = _parse(row.finished_at) if row.finished_at else datetime.now(UTC)
    elapsed = max(0.0, (end - _parse(row.created_at)).total_seconds()) if row.created_at else 0.0
    mode: Literal["sequential", "parallel"] = "parallel" if row.mode == "parallel" else "sequential"
    return tallied(row.list_id, mode, cast(ListStatus, status), states, elapsed)


def tallied(
    list_id: str,
    mode: Literal["sequential", "parallel"],
    status: ListStatus,
    members: list[ListMemberState],
    elapsed_s: float = 0.0,
) -> ListOutcome:
    """A ``ListOutcome`` with its totals counted from its members' states and results."""
    results = [m.result for m in members if m.result is not None]
    failed = _failures(members)
    return ListOutcome(
        list_id=list_id,
        mode=mode,
        status=status,
        members=members,
        succeeded=len(results) - failed,
        failed=failed,
        skipped=sum(m.state == "skipped" for m in members),
        running=sum(m.state == "running" for m in members),
        pending=sum(m.state == "pending" for m in members),
        cost_usd=round(sum(r.cost_usd or 0.0 for r in results), 6),
        elapsed_s=round(elapsed_s, 3),
    )


def _failures(members: Sequence[ListMemberState]) -> int:
    return sum(not m.result.ok for m in members if m.result is not None)


_ENDED = ("success", "failed", "cancelled")


def _member_state(
    index: int, row: TaskListRow, run_id: str, request: RunRequest, record: RunRecord | None
) -> ListMemberState:
    base: dict[str, Any] = {"index": index, "run_id": run_id, "task": request.task, "cwd": str(request.cwd)}
    if record is None:
        if row.finished:
            return ListMemberState(**base, state="skipped", reason=row.error or "skipped: the task list stopped")
        return ListMemberState(**base, state="pending")
    if record.status is RunStatus.SKIPPED:
        return ListMemberState(**base, state="skipped", reason=record.error)
    if not record.status.finished:
        return ListMemberState(**base, state="running")
    reason = record.error if record.status is RunStatus.CANCELLED else None
    return ListMemberState(**base, state="finished", reason=reason, result=record.to_result())


def _parse(stamp: str) -> datetime:
    value = datetime.fromisoformat(stamp)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


__all__ = ["outcome_from_rows", "outcome_of", "outcome_of_recorded"]
