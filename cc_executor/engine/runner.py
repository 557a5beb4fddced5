"""``execute_run``: one run end to end — prepare, queue, attempts and retries, cancellation, record.

This is the unit a remote backend would wrap (e.g. as a Temporal activity): it takes a validated
RunRequest and a store, and leaves behind a finished row, a transcript and no process. Each attempt's CLI
process (spawn, stream, timeouts, kill) is driven by ``attempt.AttemptDriver``; progress and events reach the
caller through ``emit.Emitter``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from cc_executor.engine import changes, process, recovery
from cc_executor.engine.approvals import ApprovalBroker, CanUseTool
from cc_executor.engine.attempt import Attempt, AttemptDriver
from cc_executor.engine.command import (
    RUN_MARKER_ENV,
    build_argv,
    build_env,
    check_argv_values,
    find_claude,
    redact_argv,
    write_mcp_config,
)
from cc_executor.engine.emit import Emitter, EventCallback, ProgressCallback
from cc_executor.engine.prediction import resolve_timeout
from cc_executor.engine.progress_text import ProgressTracker, shorten
from cc_executor.engine.slots import RunSlots, default_slots
from cc_executor.engine.structured_output import reply_error
from cc_executor.engine.worktree import RunWorktree, plan_worktree, worktree_root
from cc_executor.errors import (
    ExecutorError,
    IdleTimeoutError,
    RunCancelledError,
    RunError,
    RunNotFoundError,
    RunTimeoutError,
    StructuredOutputError,
    UsageLimitError,
)
from cc_executor.models import Approval, ExecutionResult, RunRequest, RunStatus
from cc_executor.paths import transcript_paths
from cc_executor.policy import Policy, current_policy
from cc_executor.registry.store import RunStore, utc_now
from cc_executor.registry.transcripts import TranscriptWriter

__all__ = [
    "Checked",
    "EventCallback",
    "ProgressCallback",
    "Run",
    "adopt_run",
    "execute_run",
    "preflight",
    "prepare_run",
]

log = logging.getLogger(__name__)


async def execute_run(
    request: RunRequest,
    store: RunStore,
    *,
    on_progress: ProgressCallback | None = None,
    on_event: EventCallback | None = None,
    slots: RunSlots | None = None,
    transcript_dir: Path | None = None,
    can_use_tool: CanUseTool | None = None,
) -> ExecutionResult:
    """Run ``request`` to completion and return its result (failures are a status, not an exception).

    Cancelling the caller kills the process tree, records ``cancelled`` and re-raises.
    """
    run = await prepare_run(request, store, transcript_dir=transcript_dir)
    return await run.execute(on_progress=on_progress, on_event=on_event, slots=slots, can_use_tool=can_use_tool)


@dataclass(frozen=True, slots=True)
class Checked:
    """A request that passed ``preflight``: within the operator's policy, with the CLI found and its env built."""

    request: RunRequest
    claude: str
    env: dict[str, str]
    policy: Policy


def preflight(request: RunRequest) -> Checked:
    """Everything that refuses a request before a row exists, for every front end alike (``Backend.preflight``
    calls this): the operator's policy (PolicyError), values that could reach argv as flags, no CLI
    (ClaudeNotFoundError), root + bypassPermissions without IS_SANDBOX=1. Nothing is written or started."""
    policy = current_policy()
    request = policy.enforce(request)
    check_argv_values(request)
    claude = find_claude(request.config.claude_path, {**os.environ, **request.config.env})
    env = build_env(request)  # also refuses root + bypass, before any work
    return Checked(request, claude, env, policy)


async def prepare_run(
    request: RunRequest,
    store: RunStore,
    *,
    transcript_dir: Path | None = None,
    owner: process.OwnerIdentity | None = None,
) -> Run:
    """Everything that can fail fast (policy, no CLI, root bypass) fails here, before a row is written.

    ``owner``: the process that will execute the run, when it is not this one (a durable run's supervisor)."""
    checked = preflight(request)
    claude, env = checked.claude, checked.env
    request = checked.policy.cap_timeout(await resolve_timeout(checked.request, store, execute=execute_run))
    config = request.config
    stdout_path, stderr_path = transcript_paths(request.run_id, transcript_dir or config.transcript_dir)
    owner = owner or process.own_identity()
    worktree = None
    if request.isolation == "worktree":  # validated before anything is written: bad input creates nothing
        worktree = RunWorktree(await plan_worktree(request, worktree_root(config.worktree_dir)), request.task)
    mcp_config_file = write_mcp_config(request)
    try:
        argv = build_argv(request, claude, mcp_config_file=mcp_config_file)
        await store.create_run(
            request,
            argv=redact_argv(argv),
            owner_pid=owner.pid,
            owner_start=owner.start,
            owner_boot=owner.boot,
            transcript_path=str(stdout_path) if config.save_transcript else None,
            stderr_path=str(stderr_path) if config.save_transcript else None,
        )
        if worktree is not None:
            await store.set_worktree(request.run_id, worktree.plan)
    except anyio.get_cancelled_exc_class():
        # Cancelled while the INSERT was under way: it may land anyway, and nobody would ever run that row (its owner,
        # this live process, keeps reconcile away). Queued behind the INSERT, this makes such a row say cancelled.
        _remove(mcp_config_file)
        with anyio.CancelScope(shield=True):
            await _cancel_unstarted(store, request.run_id)
        raise
    except BaseException:
        _remove(mcp_config_file)
        raise
    run = Run(request, argv, env, store, stdout_path, stderr_path, worktree)
    run.mcp_config_file = mcp_config_file
    return run


def _remove(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


async def adopt_run(request: RunRequest, store: RunStore, *, transcript_dir: Path | None = None) -> Run:
    """A Run for a row that already exists: a durable run's supervisor executes what its front end prepared
    (``request`` as recorded: policy applied, timeout resolved). A worktree run's plan is made again (it only
    validates, and is named after the run id, so it is the one the front end recorded)."""
    checked = preflight(request)
    request, claude, env = checked.request, checked.claude, checked.env
    stdout_path, stderr_path = transcript_paths(request.run_id, transcript_dir or request.config.transcript_dir)
    worktree = None
    if request.isolation == "worktree":
        worktree = RunWorktree(await plan_worktree(request, worktree_root(request.config.worktree_dir)), request.task)
    mcp_config_file = write_mcp_config(request)
    argv = build_argv(request, claude, mcp_config_file=mcp_config_file)
    run = Run(request, argv, env, store, stdout_path, stderr_path, worktree)
    run.mcp_config_file = mcp_config_file
    return run


async def _cancel_unstarted(store: RunStore, run_id: str) -> None:
    try:
        await store.mark_cancelled(run_id, "cancelled before it started (the call submitting it was cancelled)")
    except RunNotFoundError:
        pass  # the INSERT never landed: nothing to undo
    except Exception:
        log.exception("run %s: could not mark the unstarted run cancelled", run_id)
        recovery.abandon(run_id)


class Run:
    """A prepared run (its row exists). ``execute`` runs it once; on cancel the first reason given is recorded."""

    def __init__(
        self,
        request: RunRequest,
        argv: list[str],
        env: dict[str, str],
        store: RunStore,
        stdout_path: Path,
        stderr_path: Path,
        worktree: RunWorktree | None = None,
    ) -> None:
        self.request = request
        self.caller_cwd = request.cwd
        self.worktree = worktree  # isolation="worktree": entered before attempt 1, left in _execute's finally
        self.config = request.config
        self.argv = argv
        self.env = env
        self.store = store
        self.tracker = ProgressTracker(request.run_id)
        self.emitter = Emitter(None, None, store, request.run_id)
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path
        self.attempts: list[Attempt] = []
        self.started = time.monotonic()
        self.started_at: str | None = None
        self.deadline = self.started + request.timeout_s
        self.before: changes.Snapshot | None = None
        self.writer: TranscriptWriter | None = None
        self.cancel_reason: str | None = None
        self.mcp_config_file: Path | None = None  # removed when the run ends
        self.can_use_tool: CanUseTool | None = None
        # What its processes are marked with (and swept by). A remote worker makes it per attempt
        # (``use_marker``), so two attempts of one run on one host never sweep each other's processes.
        self.marker = request.run_id

    def use_marker(self, marker: str) -> None:
        self.marker = marker
        self.env[RUN_MARKER_ENV] = marker

    def set_cancel_reason(self, reason: str) -> None:
        """What the row will say if this run ends cancelled. The first reason wins: a later cancel (a shutdown
        after a client's cancel, EOF after SIGTERM) does not rewrite why the run stopped."""
        if self.cancel_reason is None:
            self.cancel_reason = reason

    async def cancel_requested(self) -> str | None:
        """The reason on the row if a cancel request marked it (`cc-executor cancel`, a stopping task list);
        such a reason came first, so it is the one recorded."""
        record = await self.store.get(self.request.run_id)
        if record.status is not RunStatus.CANCELLED:
            return None
        return record.error or "cancelled by request"

    async def queued(self, position: int) -> None:
        update = self.tracker.update("queued", f"queued: position {position} (concurrency limit reached)")
        update.queue_position = position
        await self.emitter.progress(update)

    async def execute(
        self,
        *,
        on_progress: ProgressCallback | None = None,
        on_event: EventCallback | None = None,
        slots: RunSlots | None = None,
        can_use_tool: CanUseTool | None = None,
    ) -> ExecutionResult:
        """``can_use_tool``: the library caller's answerer for permission prompts (ask mode only)."""
        self.emitter.on_progress = on_progress
        self.emitter.on_event = on_event
        self.can_use_tool = can_use_tool
        try:
            async with (slots or default_slots()).acquire(self.queued):
                return await self._execute()
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self.record_cancelled()
            raise
        except Exception as exc:  # our side failed (disk, database, a removed cwd): the run still ends recorded
            with anyio.CancelScope(shield=True):
                failed = await self._fail(exc)
            return failed
        finally:
            _remove(self.mcp_config_file)

    async def _execute(self) -> ExecutionResult:
        self.started = time.monotonic()
        self.deadline = self.started + self.request.timeout_s
        self.started_at = utc_now()
        self.tracker.started = self.started
        if self.config.track_files and self.worktree is None:  # a worktree's changes come from git
            self.before = await changes.take_snapshot(self.request.cwd, exclude=self._own_files())
        self.writer = self._open_writer()
        try:
            error = await self._attempts()
        finally:
            if self.writer is not None:
                self.writer.close()
            if self.worktree is not None:
                await self.worktree.leave()  # shielded: a failed, cancelled or timed-out run's work is committed too
        # A cancel request from any process that came first wins: finish_run is a compare-and-set that keeps it.
        return await self._finish(await self._result(error))

    async def _finish(self, result: ExecutionResult) -> ExecutionResult:
        """Write the final row (a compare-and-set: a run cancelled meanwhile, from any process, stays cancelled),
        retrying a failed write; return the result as recorded. If no write gets through, the run is handed to
        ``recovery.abandon`` so the next reconcile marks it lost rather than leave it running."""
        run_id = self.request.run_id
        for delay in _FINISH_RETRY_S:
            await anyio.sleep(delay)
            try:
                status = await self.store.finish_run(result)
                if status is not result.status:
                    record = await self.store.get(run_id)
                    # Cancelled by a request that came first; anything else (lost) is what the row says.
                    cancelled = status is RunStatus.CANCELLED
                    result = (
                        self._as_cancelled(result, record.error or "cancelled") if cancelled else record.to_result()
                    )
                break
            except Exception:
                log.warning("run %s: could not write the final row", run_id, exc_info=True)
        else:
            log.error("run %s: the final row could not be written; the next reconcile marks it lost", run_id)
            recovery.abandon(run_id)
        await self.emitter.progress(
            self.tracker.update("finished", f"{result.status.value}: {self._final_line(result)}")
        )
        return result

    async def _fail(self, exc: Exception) -> ExecutionResult:
        """cc-executor's own side failed mid-run: stop what is left of the tree, record ``failed`` with an
        ExecutorError carrying the message, and return that result (waiters get it). The traceback goes to the log."""
        run_id = self.request.run_id
        log.error("run %s: executor failure", run_id, exc_info=exc)
        error = _executor_error(exc, self.request.cwd, spawned=bool(self.attempts))
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
        with contextlib.suppress(Exception):
            await process.sweep_marked(run_id)  # an attempt kills its tree itself; this catches what escaped
        try:
            result = await self._result(error) if self.attempts else self._bare_result(error)
        except Exception:
            log.exception("run %s: could not assemble the failed run's result", run_id)
            result = self._bare_result(error)
        return await self._finish(result)

    def _bare_result(self, error: RunError) -> ExecutionResult:
        """The result of a run that failed before any attempt produced anything."""
        request = self.request
        result = ExecutionResult(
            run_id=request.run_id,
            status=_status_for(error),
            task=request.task,
            cwd=str(request.cwd),
            duration_s=round(time.monotonic() - self.started, 3),
            error_class=type(error).__name__,
            error=str(error),
            transcript_path=str(self.stdout_path) if self.config.save_transcript else None,
            stderr_path=str(self.stderr_path) if self.config.save_transcript else None,
            attempts=max(1, len(self.attempts)),
            timeout_s=request.timeout_s,
            timeout_basis=request.timeout_basis,
            list_id=request.list_id,
            parent_run_id=request.parent_run_id,
            started_at=self.started_at,
            finished_at=utc_now(),
        )
        error.result = result
        result._exception = error
        return result

    def _open_writer(self) -> TranscriptWriter | None:
        if not self.config.save_transcript:
            return None
        return TranscriptWriter.open(self.stdout_path, self.stderr_path)

    async def _attempts(self) -> RunError | None:
        error: RunError | None = None
        for n in range(1, self.config.max_attempts + 1):
            attempt = Attempt(n=n, started_at=utc_now())
            self.attempts.append(attempt)
            await self._run_attempt(attempt)
            error = attempt.error()
            await self._record_attempt(attempt, error)
            delay = self._retry_delay(error, n)
            if delay is None:
                return error
            message = f"{type(error).__name__}: retrying in {delay:.0f}s (attempt {n + 1}/{self.config.max_attempts})"
            await self.emitter.progress(self.tracker.update("event", message))
            await anyio.sleep(delay)
        return error

    def _retry_delay(self, error: RunError | None, n: int) -> float | None:
        """Seconds to wait before retrying, or None to stop: only retryable classes, within the deadline."""
        if error is None or not error.retryable or n >= self.config.max_attempts:
            return None
        if isinstance(error, UsageLimitError):
            wait = error.retry_after_s or 0.0
            if wait > self.config.retry_max_wait_s:
                return None  # fail fast with the reset time rather than sleep for hours
        else:
            wait = self.config.retry_base_delay_s * 2 ** (n - 1) * random.uniform(0.5, 1.5)
            wait = min(wait, self.config.retry_max_wait_s)
        if time.monotonic() + wait >= self.deadline:
            return None
        return wait

    async def _record_attempt(self, attempt: Attempt, error: RunError | None) -> None:
        result = attempt.result
        await self.store.record_attempt(
            self.request.run_id,
            attempt.n,
            started_at=attempt.started_at,
            finished_at=utc_now(),
            status=_status_for(error).value,
            exit_code=attempt.exit_code,
            error_class=type(error).__name__ if error else None,
            error=str(error) if error else None,
            session_id=attempt.session_id,
            cost_usd=result.total_cost_usd if result else None,
        )

    async def _run_attempt(self, attempt: Attempt) -> None:
        if attempt.n > 1 and self.writer is not None:
            self.writer.write_line(json.dumps({"type": "cc_executor", "subtype": "attempt", "n": attempt.n}).encode())
        requested = await self.cancel_requested()
        if requested is not None:
            attempt.stopped = RunCancelledError(f"{requested} (before the CLI started)")
            return
        if attempt.n == 1 and self.worktree is not None:
            self.request, attempt.stopped = await self.worktree.enter(
                self.request, self.writer, self.env, self.deadline
            )
            if attempt.stopped is not None:
                return
        driver = AttemptDriver(
            **self._answerers(),
            request=self.request,
            argv=self.argv,
            env=self.env,
            store=self.store,
            emitter=self.emitter,
            tracker=self.tracker,
            writer=self.writer,
            deadline=self.deadline,
            marker=self.marker,
        )
        await driver.run(attempt)

    def _answerers(self) -> dict[str, Any]:
        """Who answers the CLI's questions: nobody in deny mode (deny / cancel), the broker in ask mode."""
        if self.config.permission_prompts != "ask":
            return {}
        broker = ApprovalBroker(
            self.store,
            self.request.run_id,
            timeout_s=self.config.approval_timeout_s,
            can_use_tool=self.can_use_tool,
            on_pending=self._announce_pending,
        )
        return {"on_permission": broker.permission, "on_elicitation": broker.elicitation}

    async def _announce_pending(self, approval: Approval) -> None:
        what = f"{approval.tool}: {approval.summary}" if approval.summary else str(approval.tool)
        message = f"waiting for approval: {what} (request {approval.request_id})"
        await self.emitter.progress(self.tracker.update("event", message))

    async def _result(self, error: RunError | None) -> ExecutionResult:
        last = self.attempts[-1]
        result_event = last.result
        structured = result_event.structured_output if result_event else None
        files = await self._file_changes()
        # An isolated run's cwd is its worktree, which leave() removed on purpose after committing the work.
        if error is None and self.worktree is None and not await anyio.Path(self.request.cwd).is_dir():
            error = _cwd_removed(self.request.cwd, files, self.tracker.files)
        error = error or self._schema_error(structured)
        text = (
            result_event.result if result_event and result_event.result is not None else "\n".join(last.texts) or None
        )
        result = ExecutionResult(
            run_id=self.request.run_id,
            status=_status_for(error),
            task=self.request.task,
            cwd=str(self.request.cwd),
            result=text,
            structured_output=structured,
            summary=_summary(structured, text),
            files_created=files.created if files else [],
            files_modified=files.modified if files else [],
            files_deleted=files.deleted if files else [],
            files_truncated=files.truncated if files else False,
            session_id=last.session_id,
            cost_usd=sum((a.result.total_cost_usd or 0.0) for a in self.attempts if a.result) or None,
            usage=result_event.usage if result_event else {},
            num_turns=result_event.num_turns if result_event else (self.tracker.turn or None),
            duration_s=round(time.monotonic() - self.started, 3),
            exit_code=last.exit_code,
            error_class=type(error).__name__ if error else None,
            error=str(error) if error else None,
            permission_denials=(result_event.permission_denials if result_event else []) or last.denials,
            transcript_path=str(self.stdout_path) if self.config.save_transcript else None,
            stderr_path=str(self.stderr_path) if self.config.save_transcript else None,
            attempts=len(self.attempts),
            timeout_s=self.request.timeout_s,
            timeout_basis=self.request.timeout_basis,
            list_id=self.request.list_id,
            parent_run_id=self.request.parent_run_id,
            started_at=self.started_at,
            finished_at=utc_now(),
        )
        if self.worktree is not None:
            result = self.worktree.apply(result, self.caller_cwd)
        if error is not None:
            error.result = result
            result._exception = error
        return result

    def _schema_error(self, structured: object) -> RunError | None:
        from cc_executor.engine.command import effective_schema

        schema = effective_schema(self.request)
        if schema is None:
            return None
        if structured is None:
            return StructuredOutputError("a json_schema was given but claude returned no structured output")
        mismatch = reply_error(schema, structured)
        return StructuredOutputError(mismatch) if mismatch else None

    def _own_files(self) -> list[Path]:
        """cc-executor's own files, never part of a run's changes even when they lie under its cwd: the database
        (with its -wal/-shm/-journal) and the transcripts directory."""
        own = [self.stdout_path.parent, self.stderr_path.parent]
        if self.store.path is not None:
            own += [self.store.path.with_name(self.store.path.name + s) for s in ("", "-wal", "-shm", "-journal")]
        return own

    async def _file_changes(self) -> changes.FileChanges | None:
        """The diff of the cwd; a cwd removed meanwhile counts as empty, so everything it held reads as deleted."""
        if self.before is None:
            return None
        with anyio.CancelScope(shield=True):
            try:
                after = await changes.take_snapshot(self.request.cwd, exclude=self._own_files())
            except (FileNotFoundError, NotADirectoryError):
                after = changes.Snapshot(root=self.before.root, entries={}, truncated=False)
        return changes.diff_snapshots(self.before, after)

    async def record_cancelled(self) -> None:
        """The caller cancelled: the tree is already dead (shielded finally); write the row."""
        try:
            requested = await self.cancel_requested()
        except Exception:  # the database failed too: still record (or hand to reconcile) what we know
            log.warning("run %s: could not read the row's cancel reason", self.request.run_id, exc_info=True)
            requested = None
        reason = requested or self.cancel_reason
        error = RunCancelledError(reason or "cancelled by the caller; process tree killed")
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
        try:
            result = await self._result(error) if self.attempts else None
        except Exception:
            log.exception("could not assemble the result of a cancelled run")
            result = None
        if result is not None:
            await self._finish(result)
            return
        try:
            await self.store.mark_cancelled(self.request.run_id, str(error))  # only an unfinished row
        except Exception:
            log.exception("run %s: could not record the cancel; the next reconcile marks it lost", self.request.run_id)
            recovery.abandon(self.request.run_id)

    @staticmethod
    def _as_cancelled(result: ExecutionResult, reason: str) -> ExecutionResult:
        cancelled = result.model_copy(
            update={"status": RunStatus.CANCELLED, "error_class": "RunCancelledError", "error": reason}
        )
        cancelled._exception = RunCancelledError(reason, cancelled)
        return cancelled

    @staticmethod
    def _final_line(result: ExecutionResult) -> str:
        return shorten(" ".join((result.error or result.result or "").split()), 120)


_FINISH_RETRY_S = (0.0, 0.5, 2.0, 5.0)  # on top of SQLite's own busy timeout for each try


def _executor_error(exc: BaseException, cwd: Path, *, spawned: bool) -> ExecutorError:
    """One sentence for a failure on our side; a removed cwd is named as such, since it is the usual cause."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]  # a task group wraps the one exception that ended it
    if isinstance(exc, ExecutorError):
        return exc
    if not cwd.is_dir():
        when = "while it ran" if spawned else "before claude started"
        return ExecutorError(f"the run's cwd {str(cwd)!r} was removed {when} ({type(exc).__name__}: {exc})")
    return ExecutorError(f"cc-executor failed while running this task ({type(exc).__name__}: {exc})")


def _cwd_removed(cwd: Path, files: changes.FileChanges | None, touched: list[str]) -> ExecutorError:
    """The run ended but its cwd is gone: say so, with the files we can still name."""
    named = f"{len(files.deleted)} file(s) it held are listed in files_deleted" if files else "no file list was kept"
    if touched:
        named += f"; claude's tools touched: {', '.join(touched[:20])}" + (" ..." if len(touched) > 20 else "")
    return ExecutorError(f"the run's cwd {str(cwd)!r} was removed while it ran; {named}")


def _status_for(error: RunError | None) -> RunStatus:
    if error is None:
        return RunStatus.SUCCESS
    if isinstance(error, IdleTimeoutError):
        return RunStatus.IDLE_TIMEOUT
    if isinstance(error, RunTimeoutError):
        return RunStatus.TIMEOUT
    if isinstance(error, RunCancelledError):
        return RunStatus.CANCELLED
    return RunStatus.FAILED


def _summary(structured: object, text: str | None) -> str | None:
    if isinstance(structured, dict) and isinstance(structured.get("summary"), str):
        return str(structured["summary"])
    if text:
        return shorten(" ".join(text.split()), 200)
    return None
