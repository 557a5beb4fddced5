"""The worker's side of a run: the ``execute_run`` activity (and the transcript page a front end asks for).

The activity executes the run through ``engine.runner`` like every other backend. What Temporal adds:
- **Heartbeats** on a timer (every ``HEARTBEAT_EVERY_S``, even while claude is silent) and on each progress
  update, carrying the attempt, this worker, the latest progress and its sequence number. They are how the server
  notices a dead worker and the only way a cancel reaches the activity.
- **One attempt per activity attempt.** The engine's own retry loop is off (``max_attempts=1``); a retryable run
  error (429, 529, 5xx: ``RunError.retryable``) is raised as a retryable ``ApplicationError`` so Temporal retries
  it, on any worker, under the workflow's retry policy. Every other failure is the run's result; everything that
  is not a run (bad request, no cwd here, no claude) is a non-retryable ``ApplicationError`` naming the problem.
- **Fencing.** Temporal accepts heartbeats and a completion only from the current attempt: an attempt the server
  gave up on (its worker stopped heartbeating) is told so on its next heartbeat and cancelled, and its late
  result is refused. Sequence numbers continue from the last heartbeat the server kept, so they never repeat.
- **Ask mode.** The heartbeat also lists the attempt's questions, and answers come back from the workflow
  (``questions``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import logging
from collections import deque
from pathlib import Path
from typing import Any

import anyio
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from cc_executor.backends.protocol import TranscriptQuery
from cc_executor.backends.temporal.questions import Answers, QuestionRelay
from cc_executor.backends.temporal.workflow import DECISIONS_QUERY
from cc_executor.backends.transcript_chunks import read_chunk
from cc_executor.engine.runner import Run, prepare_run
from cc_executor.engine.slots import RunSlots
from cc_executor.errors import ERROR_CLASSES, CCExecutorError, RunNotFoundError
from cc_executor.models import ExecutionResult, ProgressUpdate, RunRecord, RunRequest
from cc_executor.paths import transcript_paths
from cc_executor.registry.store import RunStore

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 1.0  # the server sees at most one a second (the worker's throttle); ≤ 5 s is the promise
RECENT_EVENTS = 64  # progress updates each heartbeat carries, so a front end polling every second misses none
SHIP_TRANSCRIPT_BYTES = 1024 * 1024  # shipped with the result (gzip); a longer one ships its last MiB
FETCH_TRANSCRIPT_BYTES = 1024 * 1024  # the rest is fetched by the front end in pieces this big (payloads ≤ 2 MB)


class Beat:
    """What the activity's heartbeats carry; every progress update gets the next sequence number."""

    def __init__(self, *, attempt: int, worker: str, transcript_queue: str, seq: int) -> None:
        self.attempt = attempt
        self.worker = worker
        self.transcript_queue = transcript_queue
        self.seq = seq
        self.events: deque[dict[str, Any]] = deque(maxlen=RECENT_EVENTS)
        self.approvals: list[dict[str, Any]] | None = None  # ask mode: the attempt's questions and answers

    def details(self) -> dict[str, Any]:
        details = {
            "attempt": self.attempt,
            "worker": self.worker,
            "transcript_queue": self.transcript_queue,
            "seq": self.seq,
            "events": list(self.events),
        }
        if self.approvals is not None:
            details["approvals"] = self.approvals
        return details

    def questions(self, approvals: list[dict[str, Any]]) -> None:
        self.approvals = approvals
        self.send()

    def send(self) -> None:
        activity.heartbeat(self.details())

    def progress(self, update: ProgressUpdate) -> None:
        self.seq += 1
        self.events.append({"seq": self.seq, "attempt": self.attempt, "progress": update.model_dump(mode="json")})
        self.send()

    async def timer(self) -> None:
        while True:
            await anyio.sleep(HEARTBEAT_EVERY_S)
            self.send()


class RunActivities:
    """The activities one worker serves; ``store`` is the worker's own registry (rows of the runs it executed)."""

    def __init__(
        self,
        *,
        identity: str,
        transcript_queue: str,
        store: RunStore,
        slots: RunSlots,
        transcript_dir: Path | None = None,
    ) -> None:
        self.identity = identity
        self.transcript_dir = transcript_dir  # None: the state dir's (tests); run_worker gives the worker's own
        self.transcript_queue = transcript_queue
        self.store = store
        self.slots = slots

    @activity.defn(name="cc_executor.execute_run")
    async def execute_run(self, spec: dict[str, Any]) -> dict[str, Any]:
        info = activity.info()
        request = self._request(spec)
        beat = Beat(
            attempt=info.attempt,
            worker=self.identity,
            transcript_queue=self.transcript_queue,
            seq=_prior_seq(info.heartbeat_details),
        )
        beat.send()  # at once: the front end learns which worker holds the run
        log.info("run %s attempt %d started on %s", request.run_id, info.attempt, self.identity)
        async with anyio.create_task_group() as group:
            group.start_soon(beat.timer)
            try:
                result = await self._execute(request, beat)
            finally:
                group.cancel_scope.cancel()
        log.info("run %s attempt %d ended %s", request.run_id, info.attempt, result.status.value)
        if beat.approvals is not None:  # the questions as they ended (the last heartbeat may predate an answer)
            beat.approvals = [a.model_dump(mode="json") for a in (await self.store.get(request.run_id)).approvals]
        envelope = self._envelope(result, beat)
        self._raise_if_retryable(result, envelope, spec)
        return envelope

    async def _execute(self, request: RunRequest, beat: Beat) -> ExecutionResult:
        # A retried attempt on the worker that ran an earlier one starts afresh: this registry is the worker's copy.
        # (Looked up first: deleting is a write transaction, ~1 ms on every run's way in, and there is rarely a row.)
        with contextlib.suppress(RunNotFoundError):
            await self.store.get(request.run_id)
            await self.store.delete_run(request.run_id)
        try:
            run = await prepare_run(request, self.store)
        except CCExecutorError as exc:
            raise _refusal(exc, self.identity) from exc
        # Each attempt marks (and sweeps) its own processes: attempt 1, fenced off and stopping late on a worker
        # that shares a host with attempt 2's, must not take attempt 2's tree with it.
        run.use_marker(attempt_marker(request.run_id, activity.info().attempt))
        try:
            if request.config.permission_prompts != "ask":
                return await run.execute(on_progress=beat.progress, slots=self.slots)
            return await self._execute_asking(run, beat)
        except asyncio.CancelledError:
            details = activity.cancellation_details()
            if details is not None and details.worker_shutdown:
                # The tree is dead; hand the run back so another worker retries it.
                raise ApplicationError(
                    f"worker {self.identity} shut down before the run ended; handed back", type="WorkerShutdown"
                ) from None
            raise

    async def _execute_asking(self, run: Run, beat: Beat) -> ExecutionResult:
        """Ask mode: the run's questions go out with the heartbeat, and answers come in (``questions``)."""
        beat.approvals = []
        answers = _answers_for_this_attempt()
        relay = QuestionRelay(self.store, run.request.run_id, answers=answers, publish=beat.questions)
        result: ExecutionResult | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(relay.run)
            try:
                result = await run.execute(on_progress=beat.progress, slots=self.slots)
            finally:
                group.cancel_scope.cancel()
        assert result is not None
        return result

    def _request(self, spec: dict[str, Any]) -> RunRequest:
        """The request as the worker runs it: validated here (the cwd must exist on this worker), with its
        transcript in this worker's state dir and one CLI attempt per Temporal attempt."""
        data = dict(spec["request"])
        cwd = Path(str(data.get("cwd", "")))
        if not cwd.is_dir():
            raise ApplicationError(
                f"worker {self.identity} cannot find the run's cwd {str(cwd)!r}: every worker needs the working "
                "directory at the same path (shared storage or the same checkout path)",
                type="InvalidRequestError",
                non_retryable=True,
            )
        config = dict(data.get("config") or {})
        transcript_dir = str(self.transcript_dir) if self.transcript_dir is not None else None
        config.update(max_attempts=1, transcript_dir=transcript_dir, stream_output=False)
        data["config"] = config
        try:
            return RunRequest.model_validate(data)
        except ValidationError as exc:
            raise ApplicationError(
                f"worker {self.identity} refused the request: {exc}", type="InvalidRequestError", non_retryable=True
            ) from None

    def _envelope(self, result: ExecutionResult, beat: Beat) -> dict[str, Any]:
        data = result.model_dump(mode="json")
        data.update(worker=self.identity, attempts=beat.attempt)
        return {
            "result": data,
            "transcript": _ship_transcript(result),
            "last_seq": beat.seq,
            "events": list(beat.events),  # the latest updates, for a front end that polled too late to see them
            "approvals": beat.approvals,
        }

    @staticmethod
    def _raise_if_retryable(result: ExecutionResult, envelope: dict[str, Any], spec: dict[str, Any]) -> None:
        """Let Temporal retry a retryable failure (if attempts remain); the details carry the result."""
        error_class = ERROR_CLASSES.get(result.error_class or "")
        if error_class is None or not error_class.retryable or activity.info().attempt >= spec["max_attempts"]:
            return
        wait = getattr(result._exception, "retry_after_s", None)
        config = spec["request"].get("config") or {}
        limit = float(config.get("retry_max_wait_s", 300.0))
        if wait is not None and wait > limit:
            return  # a usage limit resetting in hours: fail now with the reset time, as locally
        raise ApplicationError(
            result.error or result.error_class or "retryable failure",
            envelope,
            type=result.error_class,
            next_retry_delay=None if wait is None else _delta(wait),
        )

    def _transcript_of(self, record: RunRecord) -> Path:
        """Where this worker wrote a run's transcript (its row says; else where it would have)."""
        if record.transcript_path:
            return Path(record.transcript_path)
        return transcript_paths(record.run_id, self.transcript_dir)[0]

    @activity.defn(name="cc_executor.transcript_page")
    async def transcript_page(self, query: dict[str, Any]) -> dict[str, Any]:
        """A page of a transcript this worker wrote (served on the worker's own task queue)."""
        run_id = str(query["run_id"])
        try:
            record = await self.store.get(run_id)
            path = (
                Path(record.transcript_path)
                if record.transcript_path
                else transcript_paths(run_id, self.transcript_dir)[0]
            )
            chunk = read_chunk(
                path, run_id, TranscriptQuery.model_validate(query["query"]), finished=record.status.finished
            )
        except CCExecutorError as exc:
            raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from None
        return chunk.model_dump(mode="json")

    @activity.defn(name="cc_executor.transcript_bytes")
    async def transcript_bytes(self, query: dict[str, Any]) -> dict[str, Any]:
        """Raw bytes of a transcript this worker wrote, gzipped: the part of a long transcript its result did not
        ship, fetched by the front end when the run ends so its copy is complete."""
        run_id = str(query["run_id"])
        try:
            record = await self.store.get(run_id)
        except CCExecutorError as exc:
            raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from None
        path = (
            Path(record.transcript_path) if record.transcript_path else transcript_paths(run_id, self.transcript_dir)[0]
        )
        offset, length = int(query["offset"]), min(int(query["length"]), FETCH_TRANSCRIPT_BYTES)
        try:
            with path.open("rb") as file:
                size = file.seek(0, 2)
                file.seek(offset)
                data = file.read(length)
        except OSError as exc:
            raise ApplicationError(
                f"worker {self.identity} cannot read the transcript of run {run_id}: {exc}",
                type="TranscriptNotFoundError",
                non_retryable=True,
            ) from None
        return {"gz": base64.b64encode(gzip.compress(data)).decode(), "size": size}


def _answers_for_this_attempt() -> Answers:
    """Reads the answers front ends signalled to this run's workflow for this attempt (``questions``)."""
    info = activity.info()
    assert info.workflow_id is not None  # a run's activity always belongs to its workflow
    handle = activity.client().get_workflow_handle(info.workflow_id)

    async def answers() -> list[dict[str, Any]]:
        return list(await handle.query(DECISIONS_QUERY, info.attempt))

    return answers


def attempt_marker(run_id: str, attempt: int) -> str:
    """``CC_EXECUTOR_RUN_ID`` of an attempt's processes: the run id, then the attempt (``<run id>.a2``)."""
    return f"{run_id}.a{attempt}"


def _prior_seq(details: Any) -> int:
    """The last sequence number an earlier attempt got to the server (0 for the first attempt)."""
    try:
        return int(details[0]["seq"]) if details else 0
    except (KeyError, TypeError, ValueError, IndexError):
        return 0


def _ship_transcript(result: ExecutionResult) -> dict[str, Any] | None:
    """The transcript (or its last MiB) gzipped: the front end keeps it, so it outlives this worker."""
    if not result.transcript_path:
        return None
    path = Path(result.transcript_path)
    try:
        with path.open("rb") as file:
            size = file.seek(0, 2)
            start = max(0, size - SHIP_TRANSCRIPT_BYTES)
            file.seek(start)
            data = file.read()
    except OSError:
        return None
    if start:
        data = data[data.find(b"\n") + 1 :]  # begin at a line start
    return {"gz": base64.b64encode(gzip.compress(data)).decode(), "size": size, "skipped": size - len(data)}


def _refusal(exc: CCExecutorError, identity: str) -> ApplicationError:
    return ApplicationError(f"worker {identity}: {exc}", type=type(exc).__name__, non_retryable=True)


def _delta(seconds: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=max(0.0, seconds))
