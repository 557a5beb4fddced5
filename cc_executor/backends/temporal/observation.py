"""What Temporal says about a run right now: the workflow's result once it closed, else its pending activity's
attempt, worker and heartbeat (the latest progress updates, numbered by the worker). Only the current attempt's
heartbeat is believed: the fence a late attempt cannot cross."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import anyio
from temporalio.api.enums.v1 import EventType, WorkflowExecutionStatus
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from cc_executor.backends.protocol import RunEvent
from cc_executor.backends.temporal.workflow import EXECUTE_ACTIVITY
from cc_executor.errors import RunNotFoundError
from cc_executor.models import ProgressUpdate


@dataclass
class Observation:
    """What Temporal says about a run right now."""

    finished: bool
    envelope: dict[str, Any] | None = None  # the workflow's result once finished
    attempt: int = 0  # the current activity attempt (0: not started yet)
    worker: str | None = None
    transcript_queue: str | None = None
    events: list[RunEvent] = field(default_factory=list)  # the current attempt's recent progress, by seq
    previous_failure: str | None = None  # why the attempt before the current one ended
    previous_lost: bool = False
    approvals: list[dict[str, Any]] | None = None  # ask mode: the current attempt's questions (its heartbeat)


async def observe(client: Client, run_id: str, *, wait_s: float = 0.0) -> Observation:
    """Describe the workflow (waiting up to ``wait_s`` for its outcome first); its result once it has one."""
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(run_id)
    try:
        if wait_s > 0:
            with anyio.move_on_after(wait_s):
                outcome = await _outcome(client, handle)
                if outcome is not None:
                    return outcome
        description = await handle.describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise RunNotFoundError(run_id) from None
        raise
    state = description.raw_description.workflow_execution_info.status
    if state != WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING:
        try:
            return Observation(finished=True, envelope=dict(await handle.result()))
        except WorkflowFailureError as exc:
            return Observation(finished=True, envelope=failed_workflow(run_id, exc))
    return await _pending(client, run_id, description.raw_description.pending_activities)


async def _outcome(client: Client, handle: WorkflowHandle[Any, Any]) -> Observation | None:
    """Follow the workflow's history (long polls) until the run has an outcome. A completed ``execute_run`` is
    the outcome: the workflow returns its result unchanged, one more workflow task (~10 ms) later, so this does
    not wait for that. Any other ending is the workflow's own result (None: it failed; describe says how)."""
    runs: set[int] = set()  # event ids of the scheduled execute_run activities
    async for event in handle.fetch_history_events(wait_new_event=True):
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            if event.activity_task_scheduled_event_attributes.activity_type.name == EXECUTE_ACTIVITY:
                runs.add(event.event_id)
        elif (
            event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
            and event.activity_task_completed_event_attributes.scheduled_event_id in runs
        ):
            payloads = event.activity_task_completed_event_attributes.result.payloads
            decoded = await client.data_converter.decode(payloads)
            if decoded and isinstance(decoded[0], dict):
                return Observation(finished=True, envelope=dict(decoded[0]))
    with contextlib.suppress(WorkflowFailureError):  # closed: the history's last event was its close
        return Observation(finished=True, envelope=dict(await handle.result()))
    return None


async def _pending(client: Client, run_id: str, pending: Any) -> Observation:
    if not pending:
        return Observation(finished=False)
    info = pending[0]
    observation = Observation(finished=False, attempt=int(info.attempt), worker=info.last_worker_identity or None)
    if info.HasField("last_failure"):
        failure = info.last_failure
        observation.previous_lost = failure.HasField("timeout_failure_info")
        observation.previous_failure = failure.message or "the attempt failed"
    if info.HasField("heartbeat_details") and info.heartbeat_details.payloads:
        decoded = await client.data_converter.decode(info.heartbeat_details.payloads)
        details = decoded[0] if decoded and isinstance(decoded[0], dict) else {}
        if details.get("attempt") == observation.attempt:  # fencing: only the current attempt's heartbeat
            observation.worker = details.get("worker") or observation.worker
            observation.transcript_queue = details.get("transcript_queue")
            observation.events = events_from(run_id, details.get("events", []), observation.attempt)
            observation.approvals = details.get("approvals")
    return observation


def failed_workflow(run_id: str, exc: WorkflowFailureError) -> dict[str, Any]:
    """A workflow that failed or was terminated outside cc-executor's control (e.g. `temporal workflow terminate`)."""
    message = str(exc.cause or exc)
    return {
        "result": {"run_id": run_id, "status": "failed", "error_class": "RunError", "error": message},
        "transcript": None,
        "last_seq": None,
    }


def events_from(run_id: str, items: list[dict[str, Any]], attempt: int | None) -> list[RunEvent]:
    """Progress events as a worker numbered them (only ``attempt``'s, when given: the fence)."""
    return [
        RunEvent(
            run_id=run_id,
            seq=int(item["seq"]),
            kind="progress",
            progress=ProgressUpdate.model_validate(item["progress"]),
        )
        for item in items
        if attempt is None or item.get("attempt") == attempt
    ]
