"""The front end's registry rows of Temporal runs, filled from what it observes (see ``observation``)."""

from __future__ import annotations

import base64
import gzip
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cc_executor.backends.temporal.observation import Observation
from cc_executor.backends.temporal.questions import close_questions, parse_questions, record_questions
from cc_executor.models import ExecutionResult, RunStatus
from cc_executor.paths import ensure_private_dir, transcript_paths
from cc_executor.registry.store import RunStore, utc_now


async def record_progress(store: RunStore, run_id: str, observation: Observation, seen: int | None) -> int | None:
    """A live run's row: its attempts (the one before the current one ended lost or failed), progress line and
    worker. ``seen``: the attempt last recorded here (None: read it from the row); returns the new one."""
    record = await store.get(run_id)
    if record.status.finished:
        return seen  # a cancel marked it; the result will say how it ended
    if seen is None:
        seen = record.attempts if record.started_at else 0
    if observation.attempt > seen:
        if observation.attempt > 1:
            await store.record_attempt(
                run_id,
                observation.attempt - 1,
                status=RunStatus.LOST if observation.previous_lost else RunStatus.FAILED,
                finished_at=utc_now(),
                error_class="RunLostError" if observation.previous_lost else None,
                error=observation.previous_failure,
            )
        await store.record_attempt(run_id, observation.attempt, status=RunStatus.RUNNING, started_at=utc_now())
        await store.mark_started(run_id, pid=0, pgid=0)
        seen = observation.attempt
    # Write only what changed: many runs are observed every poll and each write is a commit.
    message = (
        observation.events[-1].progress.message if observation.events and observation.events[-1].progress else None
    )
    if message is not None and message != record.last_progress:
        await store.set_progress(run_id, message)
    if observation.worker and observation.worker != record.worker:
        await store.set_worker(run_id, observation.worker)
    await record_questions(store, run_id, record.approvals, parse_questions(observation.approvals))
    return seen


FetchHead = Callable[[str, int, int], Awaitable[bytes | None]]  # (worker, length, size) -> the transcript's start


async def record_result(
    store: RunStore,
    run_id: str,
    envelope: dict[str, Any],
    transcript_dir: Path | None,
    *,
    fetch_head: FetchHead | None = None,
) -> None:
    """A finished run's row from the workflow's result (and the transcript it shipped, kept here, completed with
    ``fetch_head`` from the worker when the result shipped only its end); every attempt gets a row."""
    record = await store.get(run_id)
    if record.status.finished and record.status not in (RunStatus.CANCELLED, RunStatus.LOST):
        return  # recorded already (a cancel's or a sweep's marking is replaced by the real outcome)
    # The questions as the last attempt left them; any still open here was withdrawn (the run no longer asks).
    await record_questions(store, run_id, record.approvals, parse_questions(envelope.get("approvals")))
    await close_questions(store, run_id)
    data = dict(envelope.get("result") or {})
    data.setdefault("attempts", max(record.attempts, 1))
    result = ExecutionResult.model_validate({**data, "stderr_path": None, "transcript_path": None})
    shipped = envelope.get("transcript")
    if isinstance(shipped, dict):
        worker = str(data.get("worker") or "")
        head = None
        if shipped.get("skipped") and worker and fetch_head is not None:
            head = await fetch_head(worker, int(shipped["skipped"]), int(shipped["size"]))
        path = keep_transcript(run_id, shipped, transcript_dir, head=head, worker=worker)
        result = result.model_copy(update={"transcript_path": str(path)})
    await store.finish_run(result)
    recorded = {int(a["n"]) for a in await store.list_attempts(run_id)} if result.attempts > 1 else set()
    for n in range(1, result.attempts):
        if n not in recorded:  # ended while no front end was looking: Temporal keeps no detail of it
            await store.record_attempt(
                run_id, n, status=RunStatus.LOST, error="retried by Temporal (its worker was lost or it failed)"
            )
    await store.record_attempt(
        run_id,
        result.attempts,
        status=result.status,
        finished_at=result.finished_at or utc_now(),
        error_class=result.error_class,
        error=result.error,
        session_id=result.session_id,
        cost_usd=result.cost_usd,
    )


def keep_transcript(
    run_id: str, shipped: dict[str, Any], transcript_dir: Path | None, *, head: bytes | None = None, worker: str = ""
) -> Path:
    """Write the transcript a result shipped (gzipped), after ``head``, the start it left out. Without the start, a
    first line says how much of the transcript is missing and where it stayed."""
    path, _ = transcript_paths(run_id, transcript_dir)
    data = gzip.decompress(base64.b64decode(shipped["gz"]))
    ensure_private_dir(path.parent)  # a configured dir may not exist yet; never written through a planted link
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as file:
        skipped = int(shipped.get("skipped") or 0)
        if skipped and head is not None and len(head) == skipped:
            file.write(head)
        elif skipped:
            file.write(json.dumps(incomplete_marker(skipped, int(shipped.get("size") or 0), worker)).encode() + b"\n")
        file.write(data)
    return path


def incomplete_marker(skipped: int, size: int, worker: str) -> dict[str, Any]:
    """The first line of a transcript whose start stayed on a worker that did not answer when the run ended."""
    where = f"worker {worker}" if worker else "the worker"
    message = (
        f"incomplete transcript: its first {skipped} of {size} bytes stayed on {where}, which did not answer when "
        "the run ended; below are the last lines it shipped with the result"
    )
    return {"type": "cc_executor", "subtype": "incomplete_transcript", "skipped_bytes": skipped, "message": message}
