"""The workflows: one per run (id = run id) running one ``execute_run`` activity, and a short one that reads a
transcript page on the worker that holds it.

Workflow code must be deterministic and is run in Temporal's sandbox: it imports only the standard library and
temporalio, works on plain dicts (the run request is validated on the worker, not here: validation looks at the
file system) and takes no decision from the clock or the environment.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError

RUN_WORKFLOW = "cc_executor.run"
TRANSCRIPT_WORKFLOW = "cc_executor.transcript_page"
EXECUTE_ACTIVITY = "cc_executor.execute_run"
TRANSCRIPT_ACTIVITY = "cc_executor.transcript_page"
TRANSCRIPT_BYTES_ACTIVITY = "cc_executor.transcript_bytes"
CANCEL_SIGNAL = "cancel"
APPROVE_SIGNAL = "approve"  # an answer to a question the run asked (ask mode), from a front end
DECISIONS_QUERY = "decisions"  # the answers for one attempt, polled by that attempt's activity while it asks


@workflow.defn(name=RUN_WORKFLOW)
class RunWorkflow:
    """``spec``: {"request": RunRequest as JSON, "max_attempts", "heartbeat_timeout_s", "start_to_close_s"}.
    Returns the activity's envelope {"result": ExecutionResult as JSON, "transcript": ..., "last_seq": n}."""

    def __init__(self) -> None:
        self._cancel_reason: str | None = None
        self._activity: workflow.ActivityHandle[Any] | None = None
        self._decisions: dict[tuple[int, str], dict[str, Any]] = {}

    @workflow.run
    async def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        self._activity = workflow.start_activity(
            EXECUTE_ACTIVITY,
            spec,
            task_queue=spec.get("activity_queue"),  # a resumed run goes to the worker holding its session
            start_to_close_timeout=timedelta(seconds=spec["start_to_close_s"]),
            heartbeat_timeout=timedelta(seconds=spec["heartbeat_timeout_s"]),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=1),
                backoff_coefficient=2.0,
                maximum_interval=timedelta(seconds=60),
                maximum_attempts=spec["max_attempts"],
            ),
            # Wait for the worker to confirm the tree is dead before the run counts as ended.
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        if self._cancel_reason is not None:
            self._activity.cancel()
        try:
            # Unchanged: a front end takes the result from the history at the activity's completion, without
            # waiting for this workflow task (observation._outcome).
            return dict(await self._activity)
        except ActivityError as err:
            return _failed(spec, err, self._cancel_reason)
        except asyncio.CancelledError:
            # The workflow itself was cancelled (Web UI, `temporal workflow cancel`): the activity was cancelled
            # with it; the run ends recorded as cancelled rather than as a failed workflow.
            return _envelope(spec, "cancelled", "RunCancelledError", self._cancel_reason or "cancelled in Temporal")

    @workflow.signal(name=CANCEL_SIGNAL)
    def cancel(self, reason: str) -> None:
        """Stop the run; the first reason wins."""
        if self._cancel_reason is None:
            self._cancel_reason = reason
        if self._activity is not None and not self._activity.done():
            self._activity.cancel()

    @workflow.signal(name=APPROVE_SIGNAL)
    def approve(self, answer: dict[str, Any]) -> None:
        """An answer for ``answer["request_id"]`` asked by attempt ``answer["attempt"]``: keyed by both, so an
        answer meant for an attempt that has since been lost never answers the next attempt's question. The
        first answer per question wins (the front end's registry already decided who that is)."""
        key = (int(answer["attempt"]), str(answer["request_id"]))
        self._decisions.setdefault(key, dict(answer))

    @workflow.query(name=DECISIONS_QUERY)
    def decisions(self, attempt: int) -> list[dict[str, Any]]:
        return [answer for (n, _), answer in self._decisions.items() if n == attempt]

    @workflow.query(name="cancel_reason")
    def cancel_reason(self) -> str | None:
        return self._cancel_reason


@workflow.defn(name=TRANSCRIPT_WORKFLOW)
class TranscriptPageWorkflow:
    """Runs on a worker's own task queue: one page of a transcript that only that worker holds (or, for a query with
    ``offset``, a range of its raw bytes)."""

    @workflow.run
    async def run(self, query: dict[str, Any]) -> dict[str, Any]:
        page = await workflow.execute_activity(
            TRANSCRIPT_BYTES_ACTIVITY if "offset" in query else TRANSCRIPT_ACTIVITY,
            query,
            task_queue=workflow.info().task_queue,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
        return dict(page)


def _failed(spec: dict[str, Any], err: ActivityError, cancel_reason: str | None) -> dict[str, Any]:
    """The envelope for an activity that ended without a result: the run's own failure (carried in the error's
    details), a cancel, a worker that stopped heartbeating on its last attempt, or a refusal on the worker."""
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.details and isinstance(cause.details[0], dict):
        return dict(cause.details[0])  # a retryable run failure on its last attempt: its own result
    if isinstance(cause, CancelledError) or cancel_reason is not None:
        return _envelope(spec, "cancelled", "RunCancelledError", cancel_reason or "cancelled in Temporal")
    if isinstance(cause, TimeoutError):
        message = f"the worker running it stopped answering ({cause.type.name.lower() if cause.type else 'timeout'})"
        return _envelope(spec, "lost", "RunLostError", f"{message}; no attempt left")
    if isinstance(cause, ApplicationError):
        return _envelope(spec, "failed", cause.type or "RunError", cause.message)
    return _envelope(spec, "failed", "RunError", str(cause or err))


def _envelope(spec: dict[str, Any], status: str, error_class: str, error: str) -> dict[str, Any]:
    request = spec["request"]
    result = {
        "run_id": request["run_id"],
        "status": status,
        "task": request["task"],
        "cwd": request["cwd"],
        "error_class": error_class,
        "error": error,
        "list_id": request.get("list_id"),
        "parent_run_id": request.get("parent_run_id"),
    }
    return {"result": result, "transcript": None, "last_seq": None}
