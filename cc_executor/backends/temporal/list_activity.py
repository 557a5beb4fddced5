"""The list workflow's one local activity: a sequential member's request as ``TaskList`` builds it in a process, with
the summary of the earlier members (``context_preamble``) and, in a list of worktrees, the branch head of the member
before it as its base. An activity because the workflow imports only the
standard library and temporalio; local because it reads nothing but its input (no task-queue round trip)."""

from __future__ import annotations

from typing import Any

from temporalio import activity

from cc_executor.backends.temporal.list_workflow import CONTEXT_ACTIVITY
from cc_executor.engine.task_list_runner import ListEntry, context_preamble
from cc_executor.models import ExecutionResult


@activity.defn(name=CONTEXT_ACTIVITY)
async def member_context(query: dict[str, Any]) -> dict[str, Any]:
    """``{"request": member request as JSON, "earlier": [{"index", "task", "run_id", "result"}], "before": the result
    of the member just before it, or None}`` → the request with ``context`` (and maybe ``base_ref``) set."""
    entries = []
    for earlier in query["earlier"]:
        result = ExecutionResult.model_validate(earlier["result"])
        entries.append(
            ListEntry(
                index=int(earlier["index"]),
                task=str(earlier["task"]),
                run_id=str(earlier["run_id"]),
                status=result.status,
                result=result,
            )
        )
    request = dict(query["request"])
    request["context"] = context_preamble(entries)
    before = query.get("before") or {}
    # As TaskList._with_base: it works on top of the earlier work (the commit must be in the repository the worker
    # sees: shared storage, or the same path on one host; docs/scale-out.md).
    chained = request.get("isolation") == "worktree" and request.get("base_ref") is None
    if chained and before.get("isolation") == "worktree" and before.get("head_sha"):
        request["base_ref"] = before["head_sha"]
    return request
