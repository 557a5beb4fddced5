"""The task-list workflow: one per list (id = the list id), so the list itself lives in Temporal, not in the front end
that submitted it.

It drives each member as a child workflow of the run workflow (id = the member's run id), so everything per run
(events, heartbeats, questions, transcripts, cancel, the front ends' rows) works as for a single run. What the list
adds is what ``engine.task_list_runner.TaskList`` adds in a process: the order (sequential: each member starts after
the one before ended, told what the earlier ones produced), ``max_parallel`` (parallel lists), ``stop_on_error``
(running members cancelled, the rest skipped), and stopping the list or one member. A query returns every member's
state (pending ones included), so any front end, also one restarted after a crash, reads the list from here.

Workflow code must be deterministic: it imports only the standard library and temporalio and works on plain dicts.
What a sequential member gets from the earlier ones is built by a local activity, as ``TaskList`` builds it: the
summary of their outcomes (``context_preamble``) and, in a list of worktrees, its base (the branch head of the
member before it, unless it gave its own ``base_ref``).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ChildWorkflowError, WorkflowAlreadyStartedError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

from cc_executor.backends.temporal.workflow import CANCEL_SIGNAL, RUN_WORKFLOW

LIST_WORKFLOW = "cc_executor.list"
CONTEXT_ACTIVITY = "cc_executor.member_context"
CANCEL_LIST_SIGNAL = "cancel_list"
SKIP_MEMBER_SIGNAL = "skip_member"  # a pending member's own cancel: it is skipped, the list goes on
STATE_QUERY = "state"

_ENDED_OK = "success"


@workflow.defn(name=LIST_WORKFLOW)
class ListWorkflow:
    """``spec``: {"list_id", "mode", "max_parallel", "stop_on_error", "members": [run spec per member, as the run
    workflow takes it]}. Returns the list's state (``state()``) once every member has ended or been skipped."""

    def __init__(self) -> None:
        self._spec: dict[str, Any] = {}
        self._members: list[dict[str, Any]] = []
        self._children: dict[str, ChildWorkflowHandle[Any, Any]] = {}
        self._stop_reason: str | None = None  # what skipped members are told; the first stop wins
        self._cancel_reason = "cancelled: the task list stopped"
        self._cancelled = False
        self._ended = False

    @workflow.run
    async def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        self._spec = spec
        self._members = [
            {
                "index": i,
                "run_id": member["request"]["run_id"],
                "task": member["request"]["task"],
                "cwd": member["request"]["cwd"],
                "state": "pending",
                "reason": None,
                "result": None,
                "request": member["request"],
            }
            for i, member in enumerate(spec["members"], start=1)
        ]
        if spec["mode"] == "sequential":
            for index in range(len(self._members)):
                await self._run_member(index)
        else:
            limit = asyncio.Semaphore(max(1, int(spec["max_parallel"])))
            await asyncio.gather(*(self._run_limited(index, limit) for index in range(len(self._members))))
        for member in self._members:
            if member["state"] == "pending":
                self._skip(member, self._stop_reason or "skipped: the task list stopped")
        self._ended = True
        return self.state()

    async def _run_limited(self, index: int, limit: asyncio.Semaphore) -> None:
        async with limit:
            await self._run_member(index)

    async def _run_member(self, index: int) -> None:
        member = self._members[index]
        if member["state"] != "pending":
            return  # skipped on its own while it waited
        if self._stop_reason is not None:
            self._skip(member, self._stop_reason)
            return
        run_spec = dict(self._spec["members"][index])
        if self._spec["mode"] == "sequential":
            earlier = [self._entry(m) for m in self._members[:index] if m["result"] is not None]
            if earlier:
                run_spec["request"] = await workflow.execute_local_activity(
                    CONTEXT_ACTIVITY,
                    {"request": run_spec["request"], "earlier": earlier, "before": self._members[index - 1]["result"]},
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=RetryPolicy(maximum_attempts=3),
                )
                if member["state"] != "pending" or self._stop_reason is not None:
                    if member["state"] == "pending":
                        self._skip(member, self._stop_reason or "skipped: the task list stopped")
                    return
        member["request"] = run_spec["request"]
        member["state"] = "running"
        try:
            handle = await workflow.start_child_workflow(
                RUN_WORKFLOW,
                run_spec,
                id=member["run_id"],
                task_queue=workflow.info().task_queue,
                # The list's own end (cancel_list, stop_on_error) reaches its running members as a cancel signal;
                # a list terminated outside cc-executor leaves them to end on their own.
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
        except WorkflowAlreadyStartedError:
            member["state"], member["result"] = "finished", self._failure(member, "its run id is already a workflow")
            await self._after(member)
            return
        self._children[member["run_id"]] = handle
        if self._stop_reason is not None:  # stopped while the child started
            await handle.signal(CANCEL_SIGNAL, member["reason"] or self._cancel_reason)
        try:
            envelope = dict(await handle)
            member["result"] = envelope.get("result") or {}
        except ChildWorkflowError as err:  # the run workflow failed or was terminated outside cc-executor
            member["result"] = self._failure(member, str(err.cause or err))
        finally:
            self._children.pop(member["run_id"], None)
        member["state"] = "finished"
        await self._after(member)

    async def _after(self, member: dict[str, Any]) -> None:
        """A member has ended: a cancelled one keeps why; one without success stops the list if stop_on_error."""
        status = member["result"].get("status")
        if status == "cancelled" and member["reason"] is None:
            member["reason"] = member["result"].get("error")
        if status != _ENDED_OK and self._spec["stop_on_error"]:
            cause = f"task {member['index']} ended {status} and stop_on_error is set"
            await self._stop(f"skipped: {cause}", f"cancelled: {cause}", cancelled=False)

    async def _stop(self, skip_reason: str, cancel_reason: str, *, cancelled: bool) -> None:
        if self._stop_reason is not None:
            return
        self._stop_reason, self._cancel_reason, self._cancelled = skip_reason, cancel_reason, cancelled
        for member in self._members:
            if member["state"] == "pending":
                self._skip(member, skip_reason)
            elif member["state"] == "running":
                member["reason"] = member["reason"] or cancel_reason
                handle = self._children.get(member["run_id"])
                if handle is not None:
                    await handle.signal(CANCEL_SIGNAL, member["reason"])

    @staticmethod
    def _failure(member: dict[str, Any], error: str) -> dict[str, Any]:
        return {
            "run_id": member["run_id"],
            "status": "failed",
            "task": member["task"],
            "cwd": member["cwd"],
            "error_class": "RunError",
            "error": error,
        }

    @staticmethod
    def _skip(member: dict[str, Any], reason: str) -> None:
        member["state"], member["reason"] = "skipped", reason

    @staticmethod
    def _entry(member: dict[str, Any]) -> dict[str, Any]:
        return {
            "index": member["index"],
            "task": member["task"],
            "run_id": member["run_id"],
            "result": member["result"],
        }

    @workflow.signal(name=CANCEL_LIST_SIGNAL)
    async def cancel_list(self, reason: str) -> None:
        """Stop the list: running members cancelled, the rest skipped, all with ``reason`` (the first stop wins)."""
        await self._stop(reason, reason, cancelled=True)

    @workflow.signal(name=SKIP_MEMBER_SIGNAL)
    def skip_member(self, request: dict[str, Any]) -> None:
        """``{"run_id", "reason"}``: a member not started yet is skipped (a running one is cancelled through its own
        workflow); the list goes on."""
        member = next((m for m in self._members if m["run_id"] == request.get("run_id")), None)
        if member is not None and member["state"] == "pending":
            self._skip(member, str(request.get("reason") or "skipped"))

    @workflow.query(name=STATE_QUERY)
    def state(self) -> dict[str, Any]:
        """The list as it is: mode, whether it ended and how, and every member (with the request it runs as)."""
        return {
            "list_id": self._spec.get("list_id"),
            "mode": self._spec.get("mode", "sequential"),
            "ended": self._ended,
            "status": self._status() if self._ended else "running",
            "stop_reason": self._stop_reason,
            "members": [dict(m) for m in self._members],
        }

    def _status(self) -> str:
        """As ``TaskList.status``: success when every member succeeded; cancelled when the list was cancelled or its
        only problems are cancelled or skipped members; failed otherwise."""
        results = [m["result"] for m in self._members]
        if all(r is not None and r.get("status") == _ENDED_OK for r in results):
            return "success"
        if self._cancelled:
            return "cancelled"
        bad = [r.get("status") for r in results if r is not None and r.get("status") != _ENDED_OK]
        return "failed" if any(status != "cancelled" for status in bad) else "cancelled"
