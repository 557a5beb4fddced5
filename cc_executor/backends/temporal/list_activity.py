"""The list workflow's one local activity: a sequential member's request with the summary of the earlier members
(``context_preamble``, as ``TaskList`` builds it in a process). An activity because the workflow imports only the
standard library and temporalio; local because it reads nothing but its input (no task-queue round trip)."""

from __future__ import annotations

from typing import Any

from temporalio import activity

from cc_executor.backends.temporal.list_workflow import CONTEXT_ACTIVITY
from cc_executor.engine.task_list_runner import ListEntry, context_preamble
from cc_executor.models import ExecutionResult


@activity.defn(name=CONTEXT_ACTIVITY)
async def member_context(query: dict[str, Any]) -> dict[str, Any]:
    """``{"request": member request as JSON, "earlier": [{"index", "task", "run_id", "result"}]}`` → the request
    with ``context`` set."""
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
    return request
