"""``DurableBackend``: runs that outlive the front end that started them, behind the same seam as LocalBackend.

Each run is owned by its own supervisor process (``engine.supervisor``), started in its own session, which loads
the recorded request and runs the one core. The front end (an MCP server, the CLI, a script) only records the run,
starts the supervisor and then follows the registry, so it can exit, crash or be restarted at any moment: the run
goes on, and any front end on the same state dir sees it, waits for it, follows its numbered events (``run_events``)
and cancels it.

Why one supervisor per run rather than one per state dir (docs/architecture.md has the measurements): its cost is
one small Python process next to a claude that is ~10x larger; a crash takes one run, not all; there is no daemon
to start on demand, find, version or stop when idle, and no IPC beyond the registry the front ends already share.

Liveness. A durable row's ``owner_pid`` is its supervisor. When a front end finds an unfinished row whose owner is
dead (``owner_alive``), it records the run ``lost`` (one conditional write, so a result recorded meanwhile wins)
and its ``finished`` event, and kills anything still carrying the run's marker. The registry's reconcile does the
same for every row at the next start of any front end.

Task lists outlive their front end too. ``submit_list`` records the list (``task_lists``: mode, max_parallel,
stop_on_error, owner; ``task_list_members``: each member's request without secrets, in order) and starts one list
supervisor (``engine.list_supervisor``, the same start-and-release pattern as a run's), which drives the one list
engine (``TaskList``: order, context preamble, parallelism, stop_on_error, skipped rows) and executes every member
itself as a durable run it owns (row, request, numbered events, file slots, row-watched cancel): one ~25 MB
process per list rather than one more per running member. So any front end on the state dir reads
``list_outcome`` (members not started included: they are ``pending`` until the list ends), follows
``events(list_id)`` (``list_events``), waits for any member by its run id before it has a row, and cancels the
list or one member (a request on the list's rows that its supervisor acts on within 0.5 s). A dead list
supervisor takes its running members' claude with it (pdeathsig); whoever looks next (or the next reconcile)
records those members ``lost``, the members it never started ``skipped``, and the list ``failed``, saying why.
Lists of ``LocalBackend`` (the library's attached use) stay in that process.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import TracebackType

import anyio

from cc_executor.backends.list_outcomes import outcome_of_recorded
from cc_executor.backends.local import LocalBackend
from cc_executor.backends.pending_members import pending_record, placed, skipped_record
from cc_executor.backends.protocol import CancelReport, ListOutcome, ListRequest, RunEvent, RunFilter
from cc_executor.engine import process
from cc_executor.engine.cancel import cancel_run
from cc_executor.engine.list_supervisor import list_secrets, start_list_supervisor
from cc_executor.engine.recovery import end_lost_list
from cc_executor.engine.runner import preflight, prepare_run
from cc_executor.engine.supervisor import recordable, release, secrets_of, start_supervisor
from cc_executor.errors import InvalidRequestError, RunNotFoundError
from cc_executor.models import ExecutionResult, ProgressUpdate, RunRecord, RunRequest, RunStatus
from cc_executor.paths import DB_NAME, TRANSCRIPTS_NAME, state_dir
from cc_executor.registry.store import TaskListRow, UnstartedMember

log = logging.getLogger(__name__)

EVENT_POLL_S = 0.1  # how often a follower looks for new events: well under the 250 ms attach target
WAIT_POLL_S = 0.1  # a waiter sees the recorded end within this (one indexed SELECT per poll)
LIVENESS_EVERY_S = 1.0  # how often a follower checks that the supervisor of an unfinished run is alive
CANCEL_SETTLE_S = 15.0  # after a cancel, how long to wait for the supervisor to record the end
SUPERVISOR_EXIT_S = 3.0  # aclose: how long supervisors of ended runs get to exit


def owner_alive_list(row: TaskListRow) -> bool:
    """Whether a recorded list's supervisor still runs (as ``owner_alive``)."""
    if row.owner_pid == os.getpid():
        return True
    return process.owner_alive(row.owner_pid, row.owner_start, row.owner_boot)


def owner_alive(record: RunRecord) -> bool:
    """Whether the process that owns ``record`` (a durable run's supervisor) still runs: pid + start time + boot id,
    so a reused pid does not pass for a live supervisor. The one liveness check of this backend."""
    if record.owner_pid == os.getpid():
        return True
    return process.owner_alive(record.owner_pid, record.owner_start, record.owner_boot)


class DurableBackend(LocalBackend):
    """Runs owned by per-run supervisors on the state dir ``home``; leaving (or ``aclose``) leaves them running."""

    name = "durable"

    def __init__(
        self,
        home: Path | None = None,
        *,
        max_concurrent: int | None = None,
        kill_grace_s: float = 2.0,
    ) -> None:
        self.home = home if home is not None else state_dir()
        super().__init__(
            store_path=self.home / DB_NAME, transcript_dir=self.home / TRANSCRIPTS_NAME, kill_grace_s=kill_grace_s
        )
        self.max_concurrent = max_concurrent
        self._supervisors: dict[str, subprocess.Popen[bytes]] = {}
        self._durable: set[str] = set()  # run ids known to have a recorded request (cache)
        self._closing = False

    async def __aenter__(self) -> DurableBackend:
        await super().__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        self._closing = True  # lists stop here; their running members (durable runs) go on
        return await super().__aexit__(exc_type, exc, tb)

    async def aclose(self) -> None:
        """Close the registry; the runs go on under their supervisors. Supervisors of runs that have already ended
        are given a moment to exit, so a front end that closes after its runs leaves no process of ours behind."""
        if self._store is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(SUPERVISOR_EXIT_S):
                for key, supervisor in list(self._supervisors.items()):
                    if supervisor.poll() is None and await self._has_ended(key):
                        while supervisor.poll() is None:  # noqa: ASYNC110 (a child's exit: no event to wait on)
                            await anyio.sleep(0.02)
        self._reap()
        await super().aclose()

    async def _has_ended(self, key: str) -> bool:
        """Whether the run or list ``key`` (a supervisor this backend started) has recorded its end."""
        store = await self._registry()
        row = await store.get_list(key)
        return row.finished if row is not None else await store.has_finished_event(key)

    # --- starting runs -------------------------------------------------------------------------------------------

    async def submit(self, request: RunRequest) -> str:
        """Record the run and its request, start its supervisor, return its id (idempotent on the id)."""
        async with self._submit_lock:
            if await self._known(request.run_id):
                return request.run_id
            await self._start(request)
        return request.run_id

    async def _start(self, request: RunRequest) -> None:
        store = await self._registry()
        self._reap()
        preflight(request)  # bad input is refused before any process starts
        supervisor = start_supervisor(
            request.run_id, self.home, secrets=secrets_of(request), max_concurrent=self.max_concurrent
        )
        self._supervisors[request.run_id] = supervisor
        # A supervisor is our child until we exit: a thread waits for it, so it never lingers as a zombie (it has
        # no pdeathsig, so waiting from a thread is harmless).
        threading.Thread(target=supervisor.wait, name=f"reap-{request.run_id[:8]}", daemon=True).start()
        go = False
        try:
            owner = process.OwnerIdentity(supervisor.pid, process.process_start(supervisor.pid), process.boot_id())
            run = await prepare_run(request, store, transcript_dir=self.transcript_dir, owner=owner)
            if run.mcp_config_file is not None:  # the supervisor writes its own copy
                run.mcp_config_file.unlink(missing_ok=True)
            await store.save_request(request.run_id, recordable(run.request, run.stdout_path.parent))
            go = True
        except InvalidRequestError:
            if await self._known(request.run_id):  # another front end recorded this id first: that one runs it
                return
            raise
        finally:
            release(supervisor, go=go)
            if not go:
                await _stopped(supervisor)
        self._durable.add(request.run_id)

    def _reap(self) -> None:
        """Forget supervisors that have exited."""
        self._supervisors = {run_id: s for run_id, s in self._supervisors.items() if s.poll() is None}

    async def execute(
        self, request: RunRequest, on_progress: Callable[[ProgressUpdate], Awaitable[None]]
    ) -> ExecutionResult:
        """A list member: submit it durably and follow it to its end (``TaskList``'s ``execute`` contract). A list
        stopping cancels the run; a front end going away does not."""
        run_id = await self.submit(request)
        try:
            async for event in self.events(run_id):
                if event.progress is not None:
                    await on_progress(event.progress)
            return await self._result(run_id)  # not wait(): that waits for the list member, i.e. for us
        except anyio.get_cancelled_exc_class():
            if not self._closing:
                with anyio.CancelScope(shield=True):
                    await self._cancel_here(run_id, "cancelled: the task list stopped")
            raise

    # --- following runs ------------------------------------------------------------------------------------------

    async def _cancel_here(self, run_id: str, reason: str) -> CancelReport:
        """Mark the row and stop the tree by its marker (from any process); then wait for the supervisor to record
        the end, so a caller reading the run next sees its final row."""
        store = await self._registry()
        outcome = await cancel_run(store, run_id, reason=reason, grace_s=self.kill_grace_s)
        with anyio.move_on_after(CANCEL_SETTLE_S):
            while await self._ended(run_id) is None:  # noqa: ASYNC110 (another process records it)
                await anyio.sleep(WAIT_POLL_S)
        return CancelReport(
            run_id=run_id,
            cancelled=outcome.cancelled,
            status=(await store.get(run_id)).status,
            owner="elsewhere",
            signalled=outcome.signalled,
            remaining=len(process.marked_processes(run_id)),
        )

    async def events(self, run_id: str, after: int = 0) -> AsyncIterator[RunEvent]:
        """Numbered events with ``seq > after`` from the registry, live until ``finished``. A list id or a pending
        list task: as LocalBackend. A run without recorded events (started in-process elsewhere): its row."""
        if run_id in self._lists or self._list_member(run_id) is not None:
            await self._until_started(run_id)
            if run_id in self._lists or not await self._is_durable(run_id):
                async for event in super().events(run_id, after):
                    yield event
                return
        store = await self._registry()
        if await store.get_list(run_id) is not None:
            async for event in self._follow_list(run_id, after):
                yield event
            return
        await self._until_row(run_id)  # a member of a recorded list not started yet
        if not await self._is_durable(run_id):
            await store.get(run_id)  # RunNotFoundError for an unknown id
            async for event in self._follow_row(run_id, after):
                yield event
            return
        checked = 0.0
        while True:
            rows = await store.events_after(run_id, after)
            for seq, kind, payload in rows:
                after = seq
                yield _event(run_id, seq, kind, payload)
                if kind == "finished":
                    return
            if rows:
                continue
            if time.monotonic() - checked >= LIVENESS_EVERY_S:
                checked = time.monotonic()
                await self._ended(run_id)  # a dead supervisor: records lost + the finished event
            await anyio.sleep(EVENT_POLL_S)

    async def status(self, run_id: str) -> RunRecord:
        """The run's row; a member of a recorded list its list has not started: ``pending`` (see
        ``pending_members``). A list member's record carries its place in the list (``list_index``)."""
        store = await self._registry()
        try:
            record = await store.get(run_id)
        except RunNotFoundError:
            return await self._unstarted_record(run_id)
        if record.list_id is not None:
            placed([record], await store.member_places([run_id]))
        if not record.status.finished:
            await self._ended(run_id)
            record = await store.get(run_id)
        if not record.status.finished:
            latest = await self._latest_progress(run_id)
            record.last_progress = latest or record.last_progress
        return record

    async def _unstarted_record(self, run_id: str) -> RunRecord:
        """A list member without a row: ``pending`` while its list runs; ``skipped`` once the list has ended (its
        skipped row, or what the list says when that row is missing). RunNotFoundError for any other id."""
        here = self._unstarted(run_id)
        if here is not None:
            return here
        store = await self._registry()
        found = await store.unstarted_members(run_id=run_id)
        if not found:
            return await store.get(run_id)  # it got its row meanwhile, or RunNotFoundError
        member = found[0]
        row = await self._recorded_list(member.list_id)  # a dead list supervisor: its members recorded first
        if row is None or not row.finished:
            return _pending(member)
        try:
            return await store.get(run_id)
        except RunNotFoundError:
            request = RunRequest.model_validate_json(member.request)
            reason = row.error or "skipped: the task list stopped"
            return skipped_record(
                run_id,
                list_id=member.list_id,
                index=member.index,
                task=request.task,
                cwd=str(request.cwd),
                created_at=member.list_created_at,
                reason=reason,
            )

    async def _pending_runs(self, list_id: str | None) -> list[RunRecord]:
        """Members of recorded lists not started yet (lists whose supervisor died are ended first, so their members
        show as they were recorded, never pending forever), and those of in-process lists."""
        store = await self._registry()
        found = await store.unstarted_members(list_id=list_id, running_lists_only=True)
        ended = set()
        for key in {member.list_id for member in found}:
            row = await self._recorded_list(key)
            if row is None or row.finished:
                ended.add(key)
        recorded = [_pending(member) for member in found if member.list_id not in ended]
        return recorded + await super()._pending_runs(list_id)

    async def _latest_progress(self, run_id: str) -> str | None:
        store = await self._registry()
        last = await store.last_event_seq(run_id)
        for _, kind, payload in await store.events_after(run_id, max(0, last - 1)):
            if kind == "progress":
                return ProgressUpdate.model_validate_json(payload).message
        return None

    def latest(self, run_id: str) -> ProgressUpdate | None:
        return None  # nothing is held in memory: status() reads the latest event

    async def wait(self, run_id: str, timeout_s: float) -> ExecutionResult | None:
        """The recorded result once the run has ended (its supervisor's ``finished`` event), or None after
        ``timeout_s``. Several front ends may wait on one run: only the supervisor records it."""
        member = self._list_member(run_id)  # a task of a list, maybe not started (no row yet)
        store = await self._registry()
        if member is None and await store.list_of(run_id) is None:
            await store.get(run_id)  # RunNotFoundError before waiting on a typo
        with anyio.move_on_after(timeout_s):
            if member is not None:
                await member.done.wait()
            await self._until_row(run_id)
            return await self._result(run_id)
        return None

    async def _result(self, run_id: str) -> ExecutionResult:
        """The recorded result, once the run has ended (polls the registry)."""
        while True:
            record = await self._ended(run_id)
            if record is not None:
                return record.to_result()
            await anyio.sleep(WAIT_POLL_S)

    async def list_runs(self, query: RunFilter) -> list[RunRecord]:
        """As LocalBackend; runs whose supervisor died are recorded lost first, so they never show as running. Members
        of recorded lists carry their place (``list_index``)."""
        records = await super().list_runs(query)
        # Pending list tasks have no owner yet; a remote backend's runs (Temporal) are owned by no process here.
        local = (r for r in records if r.status is not RunStatus.PENDING and r.backend is None)
        stale = [r.run_id for r in local if not r.status.finished and not owner_alive(r)]
        for run_id in stale:
            await self._ended(run_id)
        if stale:
            records = await super().list_runs(query)
        members = [r.run_id for r in records if r.list_id is not None and r.list_index is None]
        return placed(records, await (await self._registry()).member_places(members))

    # --- task lists: recorded, and driven by a list supervisor ----------------------------------------------------

    async def submit_list(self, request: ListRequest) -> str:
        """Record the list (mode, options, every member's request without secrets), start its supervisor, return
        its id (idempotent on the id). Every member is preflighted first: bad input starts and records nothing."""
        store = await self._registry()
        async with self._submit_lock:
            if await store.get_list(request.list_id) is not None:
                return request.list_id
            if not request.requests:
                raise InvalidRequestError("tasks: the list is empty")
            for member in request.requests:
                preflight(member)
            self._reap()
            supervisor = start_list_supervisor(
                request.list_id, self.home, secrets=list_secrets(request.requests), max_concurrent=self.max_concurrent
            )
            self._supervisors[request.list_id] = supervisor
            threading.Thread(target=supervisor.wait, name=f"reap-{request.list_id[:8]}", daemon=True).start()
            go = False
            try:
                row = TaskListRow(
                    list_id=request.list_id,
                    mode=request.mode,
                    max_parallel=request.max_parallel,
                    stop_on_error=request.stop_on_error,
                    owner_pid=supervisor.pid,
                    owner_start=process.process_start(supervisor.pid),
                    owner_boot=process.boot_id(),
                )
                transcripts = self.transcript_dir or self.home / TRANSCRIPTS_NAME
                await store.create_list(row, [recordable(r, transcripts) for r in request.requests])
                go = True
            finally:
                release(supervisor, go=go)
                if not go:
                    await _stopped(supervisor)
        return request.list_id

    async def _recorded_list(self, list_id: str) -> TaskListRow | None:
        """The list's row, its end recorded first if its supervisor died (members lost or skipped: see
        ``end_lost_list``). None: not a durable list (a list of this process's LocalBackend machinery, or unknown)."""
        store = await self._registry()
        row = await store.get_list(list_id)
        if row is None or row.finished or owner_alive_list(row):
            return row
        await end_lost_list(store, row)
        return await store.get_list(list_id)

    async def _list_done(self, list_id: str, timeout_s: float) -> TaskListRow | None:
        """Wait up to ``timeout_s`` for a recorded list to end; its row (finished or not), None if not recorded."""
        row = await self._recorded_list(list_id)
        with anyio.move_on_after(timeout_s):
            checked = time.monotonic()
            while row is not None and not row.finished:
                await anyio.sleep(WAIT_POLL_S)
                if time.monotonic() - checked >= LIVENESS_EVERY_S:
                    checked = time.monotonic()
                    row = await self._recorded_list(list_id)
                else:
                    row = await (await self._registry()).get_list(list_id)
        return row

    async def cancel_list(self, list_id: str, reason: str = "cancelled") -> bool:
        """Ask the list's supervisor to stop it (from any process): running members cancelled, the rest skipped;
        returns once it has recorded the end (bounded). False if the list had already ended."""
        row = await self._recorded_list(list_id)
        if row is None:
            return await super().cancel_list(list_id, reason)
        if row.finished or not await (await self._registry()).request_list_cancel(list_id, reason):
            return False
        await self._list_done(list_id, CANCEL_SETTLE_S)
        return True

    async def list_outcome(self, list_id: str, timeout_s: float = 0.0) -> ListOutcome:
        row = await self._list_done(list_id, timeout_s)
        if row is None:
            return await super().list_outcome(list_id, timeout_s)
        store = await self._registry()
        members: list[tuple[str, RunRequest, RunRecord | None]] = []
        for run_id, raw, _ in await store.list_members(list_id):
            try:
                record: RunRecord | None = await store.get(run_id)
            except RunNotFoundError:
                record = None
            members.append((run_id, RunRequest.model_validate_json(raw), record))
        return outcome_of_recorded(row, members)

    async def list_of(self, run_id: str) -> str | None:
        return await super().list_of(run_id) or await (await self._registry()).list_of(run_id)

    async def _until_row(self, run_id: str) -> None:
        """A member of a recorded list not started yet: wait until it has started (its row and request are
        recorded) or ended (a skipped row). Returns at once for any other id."""
        store = await self._registry()
        list_id = await store.list_of(run_id)
        while list_id is not None:
            if await self._is_durable(run_id) or await self._member_ended(run_id):
                return
            row = await self._recorded_list(list_id)
            if row is not None and row.finished and not await self._known(run_id):
                return  # ended without recording it (it should have): the caller's get() says unknown
            await anyio.sleep(WAIT_POLL_S)

    async def _member_ended(self, run_id: str) -> bool:
        try:
            return (await (await self._registry()).get(run_id)).status.finished
        except RunNotFoundError:
            return False

    async def _cancel_member(self, list_id: str, run_id: str, reason: str) -> CancelReport:
        """Ask the list's supervisor to stop one member (pending: skipped, running: cancelled), wait (bounded)."""
        store = await self._registry()
        if await self._known(run_id) and (await store.get(run_id)).status.finished:
            return await self._report(run_id, False)
        await store.request_member_cancel(run_id, reason)
        with anyio.move_on_after(CANCEL_SETTLE_S):
            while not (await self._known(run_id) and (await store.get(run_id)).status.finished):
                await anyio.sleep(WAIT_POLL_S)
                await self._recorded_list(list_id)  # a dead list supervisor: its members get recorded
        status = (await store.get(run_id)).status if await self._known(run_id) else RunStatus.PENDING
        return CancelReport(
            run_id=run_id,
            cancelled=status in (RunStatus.CANCELLED, RunStatus.SKIPPED),
            status=status,
            owner="elsewhere",
            remaining=len(process.marked_processes(run_id)),
        )

    async def cancel(self, run_id: str, reason: str = "cancelled") -> CancelReport:
        """As LocalBackend; a member of a recorded list still running is stopped through its list's supervisor."""
        if self._list_member(run_id) is None:
            store = await self._registry()
            list_id = await store.list_of(run_id)
            row = await store.get_list(list_id) if list_id is not None else None
            if list_id is not None and row is not None and not row.finished:
                return await self._cancel_member(list_id, run_id, reason)
        return await super().cancel(run_id, reason)

    async def _follow_list(self, list_id: str, after: int) -> AsyncIterator[RunEvent]:
        """A recorded list's numbered events (``list_events``), live until its ``finished`` one."""
        store = await self._registry()
        checked = 0.0
        while True:
            rows = await store.list_events_after(list_id, after)
            for seq, kind, payload in rows:
                after = seq
                if kind == "finished":
                    yield RunEvent(run_id=list_id, seq=seq, kind="finished")
                    return
                progress = ProgressUpdate.model_validate_json(payload)
                yield RunEvent(run_id=list_id, seq=seq, kind="progress", progress=progress)
            if rows:
                continue
            if time.monotonic() - checked >= LIVENESS_EVERY_S:
                checked = time.monotonic()
                await self._recorded_list(list_id)  # a dead supervisor: the list's end and finished event recorded
            await anyio.sleep(EVENT_POLL_S)

    # --- the end of a run ----------------------------------------------------------------------------------------

    async def _is_durable(self, run_id: str) -> bool:
        if run_id not in self._durable and await (await self._registry()).load_request(run_id) is not None:
            self._durable.add(run_id)
        return run_id in self._durable

    async def _ended(self, run_id: str) -> RunRecord | None:
        """The final row once the run has ended for good, else None. A durable run has ended when its supervisor
        wrote the ``finished`` event (after the result), or when its supervisor is dead (then: recorded ``lost``
        if its row was unfinished, and the ``finished`` event written here, once)."""
        store = await self._registry()
        durable = await self._is_durable(run_id)
        if durable and await store.has_finished_event(run_id):
            return await store.get(run_id)  # read after the event: the row is final by then
        record = await store.get(run_id)
        if record.backend is not None:  # a remote backend's run (Temporal): no process here owns it, Temporal does
            return record if record.status.finished else None
        if record.status.finished and not durable:
            return record
        if owner_alive(record):
            return None
        if not record.status.finished:
            killed = process.kill_marked_group(record.pgid, run_id)
            reason = f"its supervisor (process {record.owner_pid}) died"
            reason += f"; {killed} leftover process(es) killed" if killed else ""
            if await store.mark_lost_if_unfinished(run_id, reason):
                log.info("run %s marked lost: %s", run_id, reason)
            record = await store.get(run_id)
        if durable:
            await store.append_finished_event(run_id, json.dumps({"status": record.status.value}))
        return record


async def _stopped(supervisor: subprocess.Popen[bytes]) -> None:
    """A supervisor told not to run (the request was refused while being recorded): it has done nothing yet, so
    end it now rather than let it linger for its interpreter's start-up; the reaper thread collects it."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(SUPERVISOR_EXIT_S):
        supervisor.kill()
        while supervisor.poll() is None:  # noqa: ASYNC110 (a child's exit: no event to wait on)
            await anyio.sleep(0.01)


def _pending(member: UnstartedMember) -> RunRecord:
    request = RunRequest.model_validate_json(member.request)
    return pending_record(
        member.run_id,
        list_id=member.list_id,
        index=member.index,
        total=member.total,
        task=request.task,
        cwd=str(request.cwd),
        created_at=member.list_created_at,
    )


def _event(run_id: str, seq: int, kind: str, payload: str) -> RunEvent:
    if kind == "finished":
        return RunEvent(run_id=run_id, seq=seq, kind="finished", status=RunStatus(json.loads(payload)["status"]))
    return RunEvent(run_id=run_id, seq=seq, kind="progress", progress=ProgressUpdate.model_validate_json(payload))


class RunHandle:
    """A detached run (``cc_execute(..., detach=True)``): it runs under its supervisor whether or not this process
    goes on. Each call opens the registry briefly; the handle itself holds nothing, so it can be rebuilt later
    from the run id alone (``RunHandle(run_id)``)."""

    def __init__(self, run_id: str, home: Path | None = None) -> None:
        self.run_id = run_id
        self.home = home if home is not None else state_dir()

    def __repr__(self) -> str:
        return f"RunHandle({self.run_id!r}, home={str(self.home)!r})"

    async def status(self) -> RunRecord:
        async with DurableBackend(self.home) as backend:
            return await backend.status(self.run_id)

    async def wait(self, timeout_s: float = float("inf")) -> ExecutionResult | None:
        """The result once the run has ended; None if it still runs after ``timeout_s``."""
        async with DurableBackend(self.home) as backend:
            return await backend.wait(self.run_id, timeout_s)

    async def events(self, after: int = 0) -> AsyncIterator[RunEvent]:
        """Its numbered events with ``seq > after``, live until the ``finished`` one."""
        async with DurableBackend(self.home) as backend:
            async for event in backend.events(self.run_id, after):
                yield event

    async def cancel(self, reason: str = "cancelled") -> CancelReport:
        async with DurableBackend(self.home) as backend:
            return await backend.cancel(self.run_id, reason)


__all__ = ["DurableBackend", "RunHandle", "owner_alive"]
