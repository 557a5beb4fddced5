"""``TemporalBackend``: the front ends' side of runs executed on Temporal workers.

Each run is a workflow whose id is the run id (so submitting twice never starts two). Its state lives in
Temporal; the front end keeps its SQLite registry filled from what it observes, so ``cc-executor runs``/``show``
work as before:
- while the run is live, from ``describe``: the pending activity's attempt, its worker, and the heartbeat, which
  carries the latest progress updates with their sequence numbers (only the current attempt's heartbeat counts);
- when it ends, from its result, which also says which worker ran it, how many attempts it took, and ships the
  transcript (gzipped; its last MiB when longer) so the front end keeps a copy that outlives the worker. A waiting
  front end reads it from the history as soon as the activity completed (the workflow returns it unchanged).
Nothing here needs to stay up for a run to go on: a restarted front end finds its runs through the registry rows
marked ``backend = 'temporal'`` and Temporal. Rows are brought up to date when a run is looked at (status, wait,
events, list) and, while the backend is entered (``async with``), by a background sweep.

Ask mode: a run's questions come with its heartbeat and land in the registry like a local run's; ``approve``
records an answer here and signals it to the run's workflow (``questions``).

Task lists live in Temporal too: one list workflow per list (``list_workflow``) starts the members as child run
workflows, so a member is a run like any other here; any front end reads the list from the workflow's query (its
memo when no worker answers), fills the members' rows as they start and end, follows, waits for and cancels it.

A live transcript is read from the worker that writes it, through a short workflow on that worker's own task
queue; when that worker does not answer, the front end says so and returns the latest progress it has.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import logging
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from cc_executor.backends.list_outcomes import outcome_from_rows
from cc_executor.backends.pending_members import merge_ids, placed, unstarted_transcript
from cc_executor.backends.protocol import (
    CancelReport,
    ListOutcome,
    ListRequest,
    ResumeRequest,
    RunEvent,
    RunFilter,
    TranscriptChunk,
    TranscriptQuery,
)
from cc_executor.backends.run_queries import matching_runs
from cc_executor.backends.temporal.client import connect
from cc_executor.backends.temporal.list_events import follow_rows
from cc_executor.backends.temporal.list_workflow import CANCEL_LIST_SIGNAL, LIST_WORKFLOW, SKIP_MEMBER_SIGNAL
from cc_executor.backends.temporal.lists import (
    ListState,
    list_holding,
    list_memo,
    list_spec,
    list_state,
    outcome_from_state,
    pending_members,
    running_lists,
)
from cc_executor.backends.temporal.observation import Observation, events_from, observe
from cc_executor.backends.temporal.questions import answer_of, parse_questions
from cc_executor.backends.temporal.rows import record_progress, record_result
from cc_executor.backends.temporal.settings import TemporalSettings
from cc_executor.backends.temporal.worker import transcript_queue
from cc_executor.backends.temporal.workflow import APPROVE_SIGNAL, CANCEL_SIGNAL, RUN_WORKFLOW, TRANSCRIPT_WORKFLOW
from cc_executor.backends.transcript_chunks import read_chunk
from cc_executor.engine.approvals import decide
from cc_executor.engine.recovery import connect_registry
from cc_executor.errors import InvalidRequestError, RunNotFoundError, TranscriptNotFoundError
from cc_executor.models import Approval, ApprovalDecision, ExecutionResult, RunRecord, RunRequest, RunStatus
from cc_executor.registry.store import RunStore

log = logging.getLogger(__name__)

BACKEND = "temporal"
_START_SLACK_S = 120.0  # an attempt's start-to-close: the run's own wall timeout (the engine enforces it) + slack
_SWEEP_S = 5.0
_DRAIN_S = 2.0  # how long wait() lets followers deliver a finished run's last events
_ORPHAN_AFTER_S = 60.0  # a row whose workflow Temporal does not know after this long is lost
_SKIP_WAIT_S = 30.0  # how long a pending member's cancel waits for its list workflow to skip it
_CANCEL_LIST_WAIT_S = 60.0  # cancel_list: how long it waits for the list to end (running members stop on workers)
_OUTCOMES_KEPT = 256


@dataclass
class _Follow:
    """The ``events`` iterators following one run: ``wait`` wakes them when it ends and lets them drain."""

    count: int = 0
    wake: anyio.Event = field(default_factory=anyio.Event)
    drained: anyio.Event = field(default_factory=anyio.Event)


class TemporalBackend:
    """Runs as Temporal workflows; see the module doc. ``settings`` default to ``CC_EXECUTOR_TEMPORAL_*``."""

    name = BACKEND

    def __init__(
        self,
        settings: TemporalSettings | None = None,
        *,
        store_path: Path | None = None,
        transcript_dir: Path | None = None,
        poll_s: float = 0.5,
        page_timeout_s: float = 5.0,
    ) -> None:
        self.settings = settings or TemporalSettings.from_env()
        self.store_path = store_path
        self.transcript_dir = transcript_dir
        self.poll_s = poll_s
        self.page_timeout_s = page_timeout_s
        self._client: Client | None = None
        self._store: RunStore | None = None
        self._lock = anyio.Lock()
        self._group: anyio.abc.TaskGroup | None = None
        self._lists: dict[str, str] = {}  # member run id -> list id, for the list workflows seen here
        self._places: dict[str, int] = {}  # member run id -> its 1-based place in that list
        self._list_ids: set[str] = set()  # list workflows submitted or looked at here, unfinished: the sweep fills rows
        self._synced_attempts: dict[str, int] = {}
        self._follows: dict[str, _Follow] = {}
        self._finishing: dict[str, anyio.Lock] = {}
        self._outcomes: dict[str, Observation] = {}  # finished runs' outcomes, oldest first

    # --- lifecycle --------------------------------------------------------------------------------------------

    async def __aenter__(self) -> TemporalBackend:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self._group.start_soon(self._sweep)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._group is not None
        self._group.cancel_scope.cancel()  # runs go on in Temporal; only this process's watchers stop
        try:
            return await self._group.__aexit__(exc_type, exc, tb)
        finally:
            self._group = None
            await self.aclose()

    async def aclose(self) -> None:
        if self._group is not None:
            self._group.cancel_scope.cancel()
        if self._store is not None:
            with anyio.CancelScope(shield=True):
                await self._store.close()
            self._store = None
        self._client = None

    async def client(self) -> Client:
        async with self._lock:
            if self._client is None:
                self._client = await connect(self.settings)
        return self._client

    async def store(self) -> RunStore:
        async with self._lock:
            if self._store is None:
                self._store = await connect_registry(self.store_path)
        return self._store

    # --- submitting -------------------------------------------------------------------------------------------

    async def preflight(self, request: RunRequest) -> None:
        """Whether Temporal answers; ``claude`` and the cwd are the workers' (a worker refuses what it can't run)."""
        await self.client()

    async def approve(
        self,
        run_id: str,
        request_id: str,
        decision: ApprovalDecision,
        *,
        decided_by: str = "caller",
        message: str | None = None,
    ) -> Approval:
        """Answer a question a run on a worker asks (``questions``): recorded here first (the first answer wins,
        from any front end on this registry), then signalled to the run's workflow for the attempt that asked."""
        observation = await self._observe(run_id)  # RunNotFoundError for a run Temporal does not know
        record = await self._sync(run_id, observation)
        asked = next((a for a in record.approvals if a.request_id == request_id), None)
        if asked is not None and asked.pending:
            current = parse_questions(observation.approvals) or {}
            if request_id not in current:
                raise InvalidRequestError(
                    f"request {request_id} of run {run_id} was asked by an attempt that is no longer running "
                    "(not answered: a later attempt asks again)"
                )
            if datetime.fromisoformat(asked.deadline_at) <= datetime.now(UTC):
                raise InvalidRequestError(
                    f"request {request_id} of run {run_id} is past its deadline ({asked.deadline_at}): "
                    "the worker denies it"
                )
        answered = await decide(await self.store(), run_id, request_id, decision, decided_by, message)
        try:
            await (
                (await self.client())
                .get_workflow_handle(run_id)
                .signal(APPROVE_SIGNAL, answer_of(observation.attempt, answered))
            )
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
            await self._sync(run_id)  # the run ended meanwhile: its result says how the question ended
        return answered

    async def submit(self, request: RunRequest, *, activity_queue: str | None = None) -> str:
        client = await self.client()  # unreachable: refuse before anything is recorded
        store = await self.store()
        try:
            await store.create_run(request, argv=[], owner_pid=os.getpid(), backend=BACKEND)
        except InvalidRequestError:
            record = await store.get(request.run_id)
            if record.backend != BACKEND:
                raise InvalidRequestError(f"run id {request.run_id!r} already exists (not a Temporal run)") from None
        spec = self._run_spec(request, activity_queue)
        with contextlib.suppress(WorkflowAlreadyStartedError):  # submitted before: one run, one workflow
            await client.start_workflow(
                RUN_WORKFLOW,
                spec,
                id=request.run_id,
                task_queue=self.settings.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        return request.run_id

    def _run_spec(self, request: RunRequest, activity_queue: str | None = None) -> dict[str, Any]:
        """What the run workflow takes (for a single run, or a list member started by its list's workflow)."""
        return {
            "request": request.model_dump(mode="json"),
            "max_attempts": request.config.max_attempts,
            "heartbeat_timeout_s": self.settings.heartbeat_timeout_s,
            "start_to_close_s": request.timeout_s + _START_SLACK_S,
            "activity_queue": activity_queue,
        }

    async def resume(self, request: ResumeRequest) -> str:
        """A new run continuing a finished one's session, on the worker that holds the session (its own queue)."""
        original = await (await self.store()).get(request.run_id)
        if not original.status.finished:
            raise InvalidRequestError(f"run {request.run_id} has not finished yet: wait for it before resuming")
        if not original.session_id:
            raise InvalidRequestError(f"run {request.run_id} has no Claude session to resume")
        new = request.request.model_copy(
            update={
                "cwd": Path(original.cwd),
                "resume_session_id": original.session_id,
                "fork_session": request.fork,
                "parent_run_id": original.run_id,
                "run_id": str(uuid.uuid4()),
            }
        )
        queue = transcript_queue(self.settings.task_queue, original.worker) if original.worker else None
        return await self.submit(new, activity_queue=queue)

    async def cancel(self, run_id: str, reason: str = "cancelled") -> CancelReport:
        """Signal the run's workflow (the first reason wins there too); the worker kills the tree when the cancel
        reaches it with its next heartbeat, and this returns once the workflow has ended. A list member its list has
        not started yet is skipped (the list goes on)."""
        pending = await self._pending_member(run_id)
        if pending is not None and pending.list_id is not None:
            skipped = await self._skip_pending(pending.list_id, run_id, reason)
            if skipped is not None:
                return skipped
        record = await (await self.store()).get(run_id)
        handle = (await self.client()).get_workflow_handle(run_id)
        try:
            await handle.signal(CANCEL_SIGNAL, reason)
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
            record = await self._sync(run_id)  # closed already (NOT_FOUND for a closed workflow's signal)
            return CancelReport(run_id=run_id, cancelled=False, status=record.status, owner="elsewhere")
        if not record.status.finished:
            await (await self.store()).mark_cancelled(run_id, reason)
        observation = await self._observe(run_id, wait_s=60.0)
        record = await self._sync(run_id, observation) if observation.finished else await self.status(run_id)
        cancelled = observation.finished and record.status is RunStatus.CANCELLED
        return CancelReport(run_id=run_id, cancelled=cancelled, status=record.status, owner="elsewhere")

    async def _skip_pending(self, list_id: str, run_id: str, reason: str) -> CancelReport | None:
        """Ask the list workflow to skip its pending member ``run_id``; the report once it has, None if the member
        started meanwhile (then it is cancelled as a run)."""
        handle = (await self.client()).get_workflow_handle(list_id)
        with contextlib.suppress(RPCError):  # closed meanwhile: its state below says how the member ended
            await handle.signal(SKIP_MEMBER_SIGNAL, {"run_id": run_id, "reason": reason})
        with anyio.move_on_after(_SKIP_WAIT_S):
            while True:
                snapshot = await self._list_snapshot(list_id)
                member = snapshot[0].member(run_id) if snapshot is not None else None
                if member is None or member["state"] == "skipped":
                    return CancelReport(run_id=run_id, cancelled=True, status=RunStatus.SKIPPED, owner="elsewhere")
                if member["state"] != "pending":
                    return None
                await anyio.sleep(self.poll_s)
        raise TimeoutError(f"the list workflow {list_id} did not take the cancel of its member {run_id}")

    async def _pending_member(self, run_id: str) -> RunRecord | None:
        """A list member its list workflow has not started (so it has no run workflow and no row here), as a
        ``pending`` run. Members that have started get their row here on the way (``_list_snapshot``)."""
        store = await self.store()
        with contextlib.suppress(RunNotFoundError):
            await store.get(run_id)
            return None
        list_id = await self.list_of(run_id)
        snapshot = await self._list_snapshot(list_id) if list_id is not None else None
        pending = pending_members(snapshot[0]) if snapshot is not None else []
        return next((record for record in pending if record.run_id == run_id), None)

    async def _until_submitted(self, run_id: str, timeout_s: float) -> bool:
        """For a pending list member: until its list starts or skips it (False if the timeout came first)."""
        deadline = anyio.current_time() + timeout_s
        pending = await self._pending_member(run_id)
        while pending is not None and anyio.current_time() < deadline:
            await anyio.sleep(min(self.poll_s, max(0.0, deadline - anyio.current_time())))
            pending = await self._pending_member(run_id)
        return pending is None

    # --- observing --------------------------------------------------------------------------------------------

    async def status(self, run_id: str) -> RunRecord:
        pending = await self._pending_member(run_id)
        if pending is not None:
            return pending
        record = await (await self.store()).get(run_id)
        if record.backend == BACKEND and (not record.status.finished or record.finished_at is None):
            record = await self._sync(run_id)
        return placed([record], self._places)[0]

    async def wait(self, run_id: str, timeout_s: float) -> ExecutionResult | None:
        started = anyio.current_time()
        if not await self._until_submitted(run_id, timeout_s):
            return None
        record = await (await self.store()).get(run_id)
        if record.status is RunStatus.SKIPPED:
            return record.to_result()
        timeout_s = max(0.0, timeout_s - (anyio.current_time() - started))
        observation = await self._observe(run_id, wait_s=timeout_s)
        if not observation.finished:
            return None
        record = await self._sync(run_id, observation)
        follow = self._follows.get(run_id)
        if follow is not None:
            # Followers poll; let them deliver the run's last events (shipped with the result) before a caller
            # that waits and follows at once (the MCP server) stops following.
            follow.wake.set()
            with anyio.move_on_after(_DRAIN_S):
                await follow.drained.wait()
        return record.to_result()

    async def events(self, run_id: str, after: int = 0) -> AsyncIterator[RunEvent]:
        if not await self._has_row(run_id) and await self._list_snapshot(run_id) is not None:
            # A list id (its workflow): its members' progress, then finished, for any front end.
            async for event in self._follow_list(run_id, after):
                yield event
            return
        await self._until_submitted(run_id, float("inf"))
        try:
            record = await (await self.store()).get(run_id)
        except RunNotFoundError:
            if not await (await self.store()).list_runs(list_id=run_id, limit=1):
                raise
            # A list this front end does not run (it restarted): its members' rows.
            async for event in follow_rows(run_id, after, partial(self._list_rows, run_id), self.poll_s):
                yield event
            return
        if record.status is RunStatus.SKIPPED:
            yield RunEvent(run_id=run_id, seq=after + 1, kind="finished", status=record.status)
            return
        follow = self._follows.setdefault(run_id, _Follow())
        follow.count += 1
        try:
            async for event in self._follow(run_id, after, follow):
                yield event
        finally:
            follow.count -= 1
            if follow.count == 0:
                follow.drained.set()
                self._follows.pop(run_id, None)

    async def _follow(self, run_id: str, after: int, follow: _Follow) -> AsyncIterator[RunEvent]:
        last = after
        while True:
            observation = await self._observe(run_id)
            for event in observation.events:
                if event.seq > last:
                    last = event.seq
                    yield event
            if observation.finished:
                for event in events_from(run_id, (observation.envelope or {}).get("events") or [], None):
                    if event.seq > last:
                        last = event.seq
                        yield event
                record = await self._sync(run_id, observation)
                final = max(last, int((observation.envelope or {}).get("last_seq") or 0)) + 1
                if final > after:
                    yield RunEvent(run_id=run_id, seq=final, kind="finished", status=record.status)
                return
            await self._sync(run_id, observation)
            with anyio.move_on_after(self.poll_s):
                await follow.wake.wait()

    async def list_runs(self, query: RunFilter) -> list[RunRecord]:
        store = await self.store()
        for record in await store.unfinished_runs(backend=BACKEND):
            await self._sync_quietly(record.run_id)
        pending = await self._pending_runs(query.list_id)
        return placed(await matching_runs(store, query, pending), self._places)

    async def find_ids(self, prefix: str, limit: int = 10) -> list[str]:
        """Run ids in this front end's registry starting with ``prefix``, and members of running lists that have
        not started (no row yet)."""
        found = await (await self.store()).find_ids(prefix, limit=limit)
        return merge_ids(found, await self._pending_runs(None), prefix, limit)

    async def _pending_runs(self, list_id: str | None) -> list[RunRecord]:
        """Members their list workflows have not started, as ``pending`` runs: of ``list_id``, or of every running
        list (those Temporal lists, and those seen here), whichever front end submitted it."""
        if list_id is not None:
            candidates = {list_id}
        else:
            candidates = set(self._list_ids)
            with contextlib.suppress(RPCError):
                candidates.update(await running_lists(await self.client()))
        pending: list[RunRecord] = []
        for key in sorted(candidates):
            snapshot = await self._list_snapshot(key)
            if snapshot is not None:
                pending += pending_members(snapshot[0])
        return pending

    async def transcript(self, run_id: str, query: TranscriptQuery) -> TranscriptChunk:
        record = await self.status(run_id)
        unstarted = unstarted_transcript(record)
        if unstarted is not None:
            raise unstarted
        if record.transcript_path and await anyio.Path(record.transcript_path).is_file():
            return read_chunk(Path(record.transcript_path), run_id, query, finished=record.status.finished)
        observation = await self._observe(run_id)
        queue = observation.transcript_queue or (
            transcript_queue(self.settings.task_queue, record.worker) if record.worker else None
        )
        if queue is None:
            raise TranscriptNotFoundError(f"run {run_id} has no transcript yet: no worker has started it")
        try:
            return await self._remote_page(run_id, queue, query)
        except TimeoutError:
            return self._leftovers(record, observation, queue)

    async def _remote_page(self, run_id: str, queue: str, query: TranscriptQuery) -> TranscriptChunk:
        page = await self._on_worker(run_id, queue, {"run_id": run_id, "query": query.model_dump(mode="json")})
        return TranscriptChunk.model_validate(page)

    async def _on_worker(self, run_id: str, queue: str, payload: dict[str, Any]) -> dict[str, Any]:
        """A transcript page (or byte range) from the worker serving ``queue``; TimeoutError when it does not
        answer within ``page_timeout_s``."""
        client = await self.client()
        handle = await client.start_workflow(
            TRANSCRIPT_WORKFLOW,
            payload,
            id=f"{run_id}-transcript-{uuid.uuid4()}",
            task_queue=queue,
            execution_timeout=timedelta(seconds=self.page_timeout_s),
        )
        try:
            with anyio.fail_after(self.page_timeout_s + 1):
                return dict(await handle.result())
        except WorkflowFailureError as exc:
            cause = getattr(exc.cause, "cause", None)
            if cause is not None and "TranscriptNotFoundError" in str(getattr(cause, "type", "")):
                raise TranscriptNotFoundError(str(getattr(cause, "message", cause))) from None
            raise TimeoutError(str(exc)) from None

    async def _fetch_head(self, run_id: str, worker: str, length: int, size: int) -> bytes | None:
        """The first ``length`` bytes of a transcript of ``size`` bytes that only ``worker`` holds (its result
        shipped the rest); None when the worker does not answer or its copy differs."""
        queue = transcript_queue(self.settings.task_queue, worker)
        head = bytearray()
        try:
            while len(head) < length:
                piece = await self._on_worker(
                    run_id, queue, {"run_id": run_id, "offset": len(head), "length": length - len(head)}
                )
                data = gzip.decompress(base64.b64decode(piece["gz"]))
                if int(piece["size"]) != size or not data:
                    return None
                head += data
        except (TimeoutError, TranscriptNotFoundError, RPCError) as exc:
            log.info("run %s: the start of its transcript stays on worker %s: %s", run_id, worker, exc)
            return None
        return bytes(head[:length])

    def _leftovers(self, record: RunRecord, observation: Observation, queue: str) -> TranscriptChunk:
        """The worker holding the transcript is gone: say so, and give the progress lines this front end has."""
        worker = observation.worker or record.worker or queue
        note = (
            f"[cc-executor] the transcript of run {record.run_id} is kept by worker {worker}, which did not answer "
            f"within {self.page_timeout_s:g}s (stopped or unreachable); below is the latest progress known here"
        )
        lines = [note] + [e.progress.message for e in observation.events if e.progress is not None]
        if record.last_progress and len(lines) == 1:
            lines.append(record.last_progress)
        return TranscriptChunk(
            run_id=record.run_id, lines=lines, cursor=0, next_cursor=None, total_bytes=0, running=True
        )

    # --- task lists -------------------------------------------------------------------------------------------

    async def submit_list(self, request: ListRequest) -> str:
        """Start the list's workflow (id = the list id): the list lives in Temporal, which starts each member as a
        child run workflow when its turn comes (``list_workflow``); this front end may close or crash meanwhile."""
        if not request.requests:
            raise InvalidRequestError("tasks: the list is empty")
        client = await self.client()  # unreachable: refuse before anything is started
        store = await self.store()
        for member in request.requests:
            with contextlib.suppress(RunNotFoundError):
                record = await store.get(member.run_id)
                if record.list_id != request.list_id:
                    raise InvalidRequestError(f"run id {member.run_id!r} already exists (not a member of this list)")
        with contextlib.suppress(WorkflowAlreadyStartedError):  # submitted before: one list, one workflow
            await client.start_workflow(
                LIST_WORKFLOW,
                list_spec(request, self._run_spec),
                id=request.list_id,
                task_queue=self.settings.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                memo=list_memo(request),
            )
        self._lists.update((member.run_id, request.list_id) for member in request.requests)
        self._places.update((member.run_id, i) for i, member in enumerate(request.requests, start=1))
        self._list_ids.add(request.list_id)
        return request.list_id

    async def cancel_list(self, list_id: str, reason: str = "cancelled") -> bool:
        """Signal the list's workflow, from any front end: running members cancelled, the rest skipped; returns once
        the list has ended (bounded). False if it had already ended or is not a list."""
        snapshot = await self._list_snapshot(list_id)
        if snapshot is None or snapshot[0].ended:
            return False
        try:
            await (await self.client()).get_workflow_handle(list_id).signal(CANCEL_LIST_SIGNAL, reason)
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
            return False  # closed meanwhile
        await self._list_snapshot(list_id, wait_s=_CANCEL_LIST_WAIT_S)
        return True

    async def list_outcome(self, list_id: str, timeout_s: float = 0.0) -> ListOutcome:
        snapshot = await self._list_snapshot(list_id, wait_s=timeout_s)
        if snapshot is None:  # not a list workflow: a list_id some runs were submitted with, read from their rows
            return await self._outcome_from_rows(list_id, timeout_s)
        return outcome_from_state(*snapshot)

    async def list_of(self, run_id: str) -> str | None:
        """The list holding ``run_id``: known here, on its row, or (a member not started yet, for a front end that
        did not submit the list) the running list workflow whose memo names it."""
        if run_id in self._lists:
            return self._lists[run_id]
        with contextlib.suppress(RunNotFoundError):
            return (await (await self.store()).get(run_id)).list_id
        return await list_holding(await self.client(), run_id)

    async def _list_snapshot(
        self, list_id: str, *, wait_s: float = 0.0, sync: bool = True
    ) -> tuple[ListState, dict[str, RunRecord]] | None:
        """The list workflow's state (waiting up to ``wait_s`` for it to end) and its started members' rows here,
        created as members start and brought up to date from Temporal; None when ``list_id`` is no list workflow."""
        state = await list_state(await self.client(), list_id, wait_s=wait_s)
        if state is None:
            return None
        rows = await self._member_rows(state, sync=sync)
        if state.ended:
            self._list_ids.discard(list_id)
        else:
            self._list_ids.add(list_id)
        return state, rows

    async def _follow_list(self, list_id: str, after: int) -> AsyncIterator[RunEvent]:
        """A list's numbered events (from ``after``) for any front end: its members' progress as their workers
        report it (a member that ended between two polls: the updates its result shipped), each prefixed with the
        member's place (``[2/3] ...``), then ``finished`` once the list workflow has ended."""
        seq, last, done = after, dict[str, int](), set[str]()
        while True:
            snapshot = await self._list_snapshot(list_id, sync=False)
            if snapshot is None:
                raise RunNotFoundError(list_id)
            state = snapshot[0]
            total = len(state.members)
            for member in state.members:
                run_id, index = str(member["run_id"]), int(member["index"])
                if member["state"] not in ("running", "finished") or run_id in done:
                    continue
                try:
                    observation = await self._observe(run_id)
                except RunNotFoundError:  # its workflow is being started by the list (or never was: list ended)
                    if state.ended:
                        done.add(run_id)
                    continue
                events = list(observation.events)
                if observation.finished:
                    events += events_from(run_id, (observation.envelope or {}).get("events") or [], None)
                    done.add(run_id)
                await self._sync(run_id, observation)
                for event in sorted(events, key=lambda e: e.seq):
                    if event.progress is None or event.seq <= last.get(run_id, 0):
                        continue
                    last[run_id] = event.seq
                    seq += 1
                    update = event.progress.model_copy(
                        update={
                            "message": f"[{index}/{total}] {event.progress.message}",
                            "list_index": index,
                            "list_total": total,
                        }
                    )
                    yield RunEvent(run_id=list_id, seq=seq, kind="progress", progress=update)
            if state.ended and all(str(m["run_id"]) in done for m in state.members if m["state"] == "finished"):
                yield RunEvent(run_id=list_id, seq=seq + 1, kind="finished")
                return
            await anyio.sleep(self.poll_s)

    async def _member_rows(self, state: ListState, *, sync: bool = True) -> dict[str, RunRecord]:
        """A row here for every member its list has started (as ``submit`` makes for a single run) or skipped."""
        store = await self.store()
        rows: dict[str, RunRecord] = {}
        for member in state.members:
            run_id = str(member["run_id"])
            self._lists[run_id] = state.list_id
            self._places[run_id] = int(member["index"])
            record: RunRecord | None = None
            with contextlib.suppress(RunNotFoundError):
                record = await store.get(run_id)
            if state.from_memo and record is not None:  # no worker answered: the row says how far it got
                skipped = record.status is RunStatus.SKIPPED
                member["state"] = "skipped" if skipped else "finished" if record.status.finished else "running"
                member["reason"] = record.error if skipped else None
            if member["state"] == "pending" or (record is None and member.get("request") is None):
                continue
            if record is None:
                request = RunRequest.model_validate(member["request"])
                if member["state"] == "skipped":
                    await store.record_skipped(request, str(member.get("reason") or "skipped"))
                else:
                    with contextlib.suppress(InvalidRequestError):  # another observer here made it meanwhile
                        await store.create_run(request, argv=[], owner_pid=os.getpid(), backend=BACKEND)
                record = await store.get(run_id)
            if sync and record.backend == BACKEND and (not record.status.finished or record.finished_at is None):
                with contextlib.suppress(RunNotFoundError):  # its workflow is being started by the list
                    record = await self._sync(run_id)
            rows[run_id] = record
        return rows

    async def _has_row(self, run_id: str) -> bool:
        try:
            await (await self.store()).get(run_id)
        except RunNotFoundError:
            return False
        return True

    async def _outcome_from_rows(self, list_id: str, timeout_s: float) -> ListOutcome:
        """A list another front end (or this one before a restart) ran: what its rows say, refreshed, once they
        have all ended or ``timeout_s`` has passed (its members run on in Temporal). Members the list had not
        submitted yet have no row: they are not known here."""
        deadline = anyio.current_time() + timeout_s
        while True:
            rows = await self._list_rows(list_id)
            if not rows:
                raise RunNotFoundError(list_id)
            left = deadline - anyio.current_time()
            if left <= 0 or all(row.status.finished for row in rows):
                return outcome_from_rows(list_id, rows)
            await anyio.sleep(min(self.poll_s, left))

    async def _list_rows(self, list_id: str) -> list[RunRecord]:
        """A list's rows, unfinished ones brought up to date from Temporal."""
        rows = await (await self.store()).list_runs(list_id=list_id, limit=500)
        return [row if row.status.finished and row.finished_at else await self.status(row.run_id) for row in rows]

    # --- Temporal → registry ----------------------------------------------------------------------------------

    async def _observe(self, run_id: str, *, wait_s: float = 0.0) -> Observation:
        outcome = self._outcomes.get(run_id)
        if outcome is not None:
            return outcome
        observation = await observe(await self.client(), run_id, wait_s=wait_s)
        if observation.finished:
            # Kept: the outcome can come from the history before the workflow has closed (observation._outcome),
            # and a follower describing the run in that window must not think it is still running.
            self._outcomes[run_id] = observation
            while len(self._outcomes) > _OUTCOMES_KEPT:
                self._outcomes.pop(next(iter(self._outcomes)))
        return observation

    async def _sync(self, run_id: str, observation: Observation | None = None) -> RunRecord:
        """Bring the registry row up to date with what Temporal says (every attempt recorded)."""
        observation = observation or await self._observe(run_id)
        store = await self.store()
        if observation.finished:
            assert observation.envelope is not None
            async with self._finishing.setdefault(run_id, anyio.Lock()):  # one fetch of a long transcript's start
                await record_result(
                    store,
                    run_id,
                    observation.envelope,
                    self.transcript_dir,
                    fetch_head=partial(self._fetch_head, run_id),
                )
            self._finishing.pop(run_id, None)
            self._synced_attempts.pop(run_id, None)
            if run_id in self._outcomes:  # the shipped transcript is kept now: don't hold it in memory too
                self._outcomes[run_id] = replace(observation, envelope={**observation.envelope, "transcript": None})
        elif observation.attempt:
            seen = await record_progress(store, run_id, observation, self._synced_attempts.get(run_id))
            if seen is not None:
                self._synced_attempts[run_id] = seen
        return await store.get(run_id)

    async def _sync_quietly(self, run_id: str) -> None:
        try:
            await self._sync(run_id)
        except RunNotFoundError:
            store = await self.store()
            record = await store.get(run_id)
            created = datetime.fromisoformat(record.created_at) if record.created_at else None
            if created is not None and datetime.now(UTC) - created > timedelta(seconds=_ORPHAN_AFTER_S):
                # Not a submit racing this sweep: the workflow never started or Temporal dropped it.
                await store.mark_status(
                    run_id, RunStatus.LOST, error_class="RunLostError", error="its workflow is not in Temporal"
                )
        except Exception:
            log.warning("could not refresh run %s from Temporal", run_id, exc_info=True)

    async def _sweep(self) -> None:
        """While entered: keep unfinished Temporal rows up to date, so `runs` shows them without being asked."""
        while True:
            with contextlib.suppress(Exception):
                for record in await (await self.store()).unfinished_runs(backend=BACKEND):
                    if record.list_id:
                        self._list_ids.add(record.list_id)  # a restarted front end learns its lists from their rows
                    if record.run_id not in self._follows:  # followed runs are kept up to date by their followers
                        await self._sync_quietly(record.run_id)
            for list_id in list(self._list_ids):  # members a list started get their rows without being asked
                try:
                    if await self._list_snapshot(list_id) is None:
                        self._list_ids.discard(list_id)
                except Exception:
                    log.warning("could not refresh task list %s from Temporal", list_id, exc_info=True)
            await anyio.sleep(_SWEEP_S)
