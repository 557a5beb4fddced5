"""The front ends' side of list workflows (``list_workflow``): what Temporal says about a list, the spec that starts
one, and the ``ListOutcome`` built from its state."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

import anyio
from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from cc_executor.backends.list_outcomes import ListStatus, tallied
from cc_executor.backends.pending_members import pending_record
from cc_executor.backends.protocol import ListMemberState, ListOutcome, ListRequest
from cc_executor.backends.temporal.list_workflow import LIST_WORKFLOW, STATE_QUERY
from cc_executor.models import ExecutionResult, RunRecord

MEMBERS_MEMO = "members"  # the list workflow's memo: its members, so a front end finds a pending member's list
QUERY_TIMEOUT = timedelta(seconds=5)  # a list's state query is answered by a worker; without one, the memo is read


@dataclass
class ListState:
    """A list workflow as Temporal has it now: its query's answer (or result, once closed) and its times."""

    list_id: str
    mode: Literal["sequential", "parallel"]
    ended: bool
    status: str
    members: list[dict[str, Any]]
    started: datetime | None = None
    closed: datetime | None = None
    from_memo: bool = False  # no worker answered its query: members' states come from this front end's rows

    def member(self, run_id: str) -> dict[str, Any] | None:
        return next((m for m in self.members if m["run_id"] == run_id), None)


def list_spec(request: ListRequest, run_spec: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """What starts a list workflow: its options and every member's run spec (as the run workflow takes it)."""
    return {
        "list_id": request.list_id,
        "mode": request.mode,
        "max_parallel": request.max_parallel,
        "stop_on_error": request.stop_on_error,
        "members": [run_spec(member) for member in request.requests],
    }


async def list_state(client: Client, list_id: str, *, wait_s: float = 0.0) -> ListState | None:
    """The list workflow ``list_id`` (waiting up to ``wait_s`` for it to end); None when there is no such list."""
    handle = client.get_workflow_handle(list_id)
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
    if description.workflow_type != LIST_WORKFLOW:
        return None
    raw: dict[str, Any] | None = None
    if wait_s > 0 and description.close_time is None:
        with anyio.move_on_after(wait_s), contextlib.suppress(WorkflowFailureError):
            raw = dict(await handle.result())
        description = await handle.describe()
    if raw is None:
        try:
            if description.close_time is None:
                raw = dict(await handle.query(STATE_QUERY, rpc_timeout=QUERY_TIMEOUT))
            else:
                try:
                    raw = dict(await handle.result())
                except WorkflowFailureError as exc:  # cancelled or terminated in Temporal: its last known state
                    raw = dict(await handle.query(STATE_QUERY, rpc_timeout=QUERY_TIMEOUT))
                    ended(raw, f"skipped: the task list ended in Temporal ({exc.cause or exc})")
        except RPCError:
            # No worker answered the query (none running, or all busy): what the list was given, every member
            # pending until its row here says otherwise (``from_memo``).
            raw = await _from_memo(description, ended_=description.close_time is not None)
    return ListState(
        list_id=list_id,
        mode="parallel" if raw.get("mode") == "parallel" else "sequential",
        ended=bool(raw.get("ended")),
        status=str(raw.get("status") or "running"),
        members=list(raw.get("members") or []),
        started=description.start_time,
        closed=description.close_time,
        from_memo=bool(raw.get("from_memo")),
    )


def ended(raw: dict[str, Any], reason: str) -> None:
    """A list workflow that ended without its own result: its members not started are skipped."""
    for member in raw.get("members") or []:
        if member.get("state") in ("pending", "running"):
            member.update(state="skipped" if member["state"] == "pending" else "finished", reason=reason)
            if member["state"] == "finished":
                member["result"] = None  # the front end's row says how the member's own workflow ended
    raw.update(ended=True, status="failed" if raw.get("status") in (None, "running") else raw["status"])


async def _from_memo(description: Any, *, ended_: bool) -> dict[str, Any]:
    memo = await description.memo()
    members = [
        {
            "index": i,
            "run_id": m["run_id"],
            "task": m.get("task", ""),
            "cwd": m.get("cwd", ""),
            "state": "pending",
            "reason": None,
            "result": None,
            "request": None,
        }
        for i, m in enumerate(memo.get(MEMBERS_MEMO) or [], start=1)
    ]
    return {
        "mode": memo.get("mode", "sequential"),
        "ended": ended_,
        "status": "failed" if ended_ else "running",
        "members": members,
        "from_memo": True,
    }


def list_memo(request: ListRequest) -> dict[str, Any]:
    """The list workflow's memo: its mode and members (run id, task, cwd), readable without a worker."""
    members = [{"run_id": r.run_id, "task": r.task, "cwd": str(r.cwd)} for r in request.requests]
    return {"mode": request.mode, MEMBERS_MEMO: members}


async def list_holding(client: Client, run_id: str) -> str | None:
    """The running list workflow that has ``run_id`` among its members (its memo), if any."""
    query = f"WorkflowType = '{LIST_WORKFLOW}' AND ExecutionStatus = 'Running'"
    async for execution in client.list_workflows(query):
        memo = await execution.memo()
        if any(m.get("run_id") == run_id for m in memo.get(MEMBERS_MEMO) or []):
            return execution.id
    return None


async def running_lists(client: Client) -> list[str]:
    """The ids of the list workflows Temporal runs now (from its visibility store)."""
    query = f"WorkflowType = '{LIST_WORKFLOW}' AND ExecutionStatus = 'Running'"
    return [execution.id async for execution in client.list_workflows(query)]


def pending_members(state: ListState) -> list[RunRecord]:
    """The list's members it has not started, as ``pending`` runs (``backends.pending_members``)."""
    created = state.started.astimezone(UTC).isoformat(timespec="microseconds") if state.started else None
    return [
        pending_record(
            str(m["run_id"]),
            list_id=state.list_id,
            index=int(m["index"]),
            total=len(state.members),
            task=str(m["task"]),
            cwd=str(m["cwd"]),
            created_at=created,
        )
        for m in state.members
        if m["state"] == "pending" and not state.ended
    ]


def outcome_from_state(state: ListState, rows: dict[str, RunRecord]) -> ListOutcome:
    """The list's ``ListOutcome``: its members in list order, each finished one from this front end's row (brought up
    to date from Temporal; the workflow's copy of the result when there is no row)."""
    members = [_member(m, rows.get(m["run_id"])) for m in state.members]
    end = state.closed or datetime.now(UTC)
    status = state.status if state.ended and state.status in ("success", "failed", "cancelled") else "running"
    elapsed = max(0.0, (end - state.started).total_seconds()) if state.started else 0.0
    return tallied(state.list_id, state.mode, cast(ListStatus, status), members, elapsed)


def _member(member: dict[str, Any], row: RunRecord | None) -> ListMemberState:
    state = member["state"]
    result: ExecutionResult | None = None
    if state == "finished":
        if row is not None and row.status.finished:
            result = row.to_result()
        else:
            result = ExecutionResult.model_validate(member["result"] or {"run_id": member["run_id"], "status": "lost"})
    return ListMemberState(
        index=int(member["index"]),
        run_id=str(member["run_id"]),
        task=str(member["task"]),
        cwd=str(member["cwd"]),
        state=state,
        reason=member.get("reason"),
        result=result,
    )
