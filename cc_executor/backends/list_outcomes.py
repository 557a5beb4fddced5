"""A task list's ``ListOutcome``, built the same way by every backend: from the engine's live ``TaskList``, or,
for a list this process did not run (another front end, or before a restart), from its members' rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from cc_executor.backends.protocol import ListMemberState, ListOutcome
from cc_executor.engine.task_list_runner import TaskList
from cc_executor.models import RunRecord


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
    results = [m.result for m in members if m.result is not None]
    running = len(members) - len(results)
    failed = sum(not r.ok for r in results)
    status: Literal["running", "success", "failed"] = "running" if running else "failed" if failed else "success"
    return ListOutcome(
        list_id=list_id,
        mode="sequential",
        status=status,
        members=members,
        succeeded=len(results) - failed,
        failed=failed,
        running=running,
        cost_usd=round(sum(r.cost_usd or 0.0 for r in results), 6),
    )


__all__ = ["outcome_from_rows", "outcome_of"]
