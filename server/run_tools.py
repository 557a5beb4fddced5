"""Single runs: build and check a request, start it, follow it (with hand-off), inspect, wait, cancel, list.

Plain async functions over AppState, so the MCP wrappers in app.py stay one-liners. Core errors become ToolError
in exactly one place (``tool_errors``); everything is validated before a row is written or a process started.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server.mcpserver.exceptions import ToolError

from . import approval_tools
from .approval_tools import HostPerson
from .errors import note_run_id
from .progress_notifications import ProgressSink, wait_reporting
from .results import run_result, run_summary, running_result
from .roots import check_inside_roots, choose_cwd
from .schemas import RunList, RunOptions, RunResult, RunStatusName
from .state import PeerCancelled, cancel_quietly

if TYPE_CHECKING:
    from cc_executor.backends import Backend
    from cc_executor.models import ApprovalDecision, ExecutionResult, RunRecord, RunRequest

    from .state import AppState

CLIENT_CANCEL_REASON = "cancelled: the MCP client cancelled the tool call"


@dataclass(frozen=True, slots=True)
class Submission:
    """A checked request, and the finished run it continues (resume_run_id) if any."""

    request: RunRequest
    resume_of: str | None = None

    @property
    def run_id(self) -> str:
        return self.request.run_id


@contextmanager
def tool_errors() -> Iterator[None]:
    """The one boundary where core errors become ToolError (an isError result naming the problem)."""
    from cc_executor.errors import CCExecutorError, RunNotFoundError

    try:
        yield
    except RunNotFoundError as exc:
        raise ToolError(f"unknown run_id {exc.run_id!r}: no such run (list_runs shows the known ones)") from None
    except CCExecutorError as exc:
        raise ToolError(str(exc)) from None


# --- building requests ---------------------------------------------------------------------------------------------


async def make_request(
    state: AppState,
    task: str,
    options: RunOptions,
    *,
    resume_run_id: str | None = None,
    list_id: str | None = None,
    roots: list[Path] | None = None,
) -> Submission:
    """A validated request (InvalidRequestError names the field), checked by the backend's preflight (the CLI is
    found, the environment and the operator's policy allow it) before anything is written or started.
    ``roots``: the host's (server/roots.py): where a run without cwd works, and the fence around cwd/add_dirs."""
    from cc_executor.api import build_request

    config = state.config(
        timeout=options.timeout_s,
        idle_timeout=options.idle_timeout_s,
        model=options.model,
        permission_mode=options.permission_mode,
        allowed_tools=options.allowed_tools,
        disallowed_tools=options.disallowed_tools,
        max_turns=options.max_turns,
        max_budget_usd=options.max_budget_usd,
        setting_sources=options.setting_sources,
        mcp_config=options.mcp_config,
        strict_mcp_config=options.strict_mcp_config,
        permission_prompts=options.permission_prompts,
    )
    backend = await state.backend()
    if resume_run_id is not None:
        parent = await backend.status(resume_run_id)
        _check_resume(parent, options.cwd)
        cwd = Path(parent.cwd)
    else:
        cwd = choose_cwd(options.cwd, roots or [], state.settings.default_cwd)
    request = build_request(
        task, config=config, cwd=cwd, json_schema=options.json_schema, list_id=list_id, **isolation_fields(options)
    )
    _check_run_mcp_config(state, options)
    allow = state.settings.allow_outside_roots
    check_inside_roots(request.cwd, roots or [], allow_outside=allow)
    for directory in request.config.add_dirs:
        check_inside_roots(directory, roots or [], allow_outside=allow, what="add_dirs entry")
    await backend.preflight(request)
    return Submission(request, resume_run_id)


def _check_run_mcp_config(state: AppState, options: RunOptions) -> None:
    """A caller's own MCP servers only when the operator allows them (see ServerSettings.allow_run_mcp_config)."""
    from cc_executor.errors import InvalidRequestError

    settings = state.settings
    if options.mcp_config is None or settings.allow_run_mcp_config or options.mcp_config == settings.mcp_config:
        return
    raise InvalidRequestError(
        "mcp_config: this server does not accept MCP servers from its callers (each one is a command the nested "
        "CLI starts, whatever the permission mode); the operator can list servers in CC_EXECUTOR_MCP_CONFIG for "
        "every run, or set CC_EXECUTOR_ALLOW_RUN_MCP_CONFIG=1 on the server to accept callers' servers"
    )


def isolation_fields(options: RunOptions) -> dict[str, Any]:
    """isolation and its options as request fields (the request refuses base_ref/branch/setup without a worktree)."""
    names = ("isolation", "base_ref", "branch", "setup")
    return {name: getattr(options, name) for name in names if getattr(options, name) is not None}


def _check_resume(record: RunRecord, cwd: str | None) -> None:
    """Claude keeps sessions per directory, so a resumed run works where the original did."""
    from cc_executor.errors import InvalidRequestError

    if not record.session_id:
        raise InvalidRequestError(f"run {record.run_id} has no Claude session to resume (status {record.status.value})")
    if cwd is not None and os.path.realpath(os.path.expanduser(cwd)) != os.path.realpath(record.cwd):
        raise ToolError(f"resume_run_id: run {record.run_id} worked in {record.cwd!r}; resume it there (omit cwd)")


# --- running -------------------------------------------------------------------------------------------------------


async def submit(state: AppState, submission: Submission) -> str:
    """Start a run owned by this server's backend; it outlives the tool call that started it."""
    from cc_executor.backends import ResumeRequest

    backend = await state.backend()
    note_run_id(submission.run_id)  # so an internal error of this tool call can name the run
    if submission.resume_of is not None:
        run_id = await backend.resume(ResumeRequest(run_id=submission.resume_of, request=submission.request))
    else:
        run_id = await backend.submit(submission.request)
    state.remember_run(run_id)
    return run_id


@asynccontextmanager
async def submitted(
    state: AppState, submission: Submission, cancel_reason: str, by_peer: PeerCancelled = lambda: True
) -> AsyncIterator[str]:
    """Submit and yield the run id; if the body (or the submit itself) is cancelled, the run is cancelled with
    ``cancel_reason`` (by the request's id, so mid-submit too) before the cancel goes on, unless the run is durable
    and the client merely went away (``state.cancels_with_call``)."""
    try:
        yield await submit(state, submission)
    except anyio.get_cancelled_exc_class():
        if state.cancels_with_call(by_peer=by_peer()):
            with anyio.CancelScope(shield=True):
                await cancel_quietly(await state.backend(), submission.run_id, cancel_reason)
        raise


async def execute(
    state: AppState,
    submission: Submission,
    sink: ProgressSink,
    return_after_s: float,
    person: HostPerson | None = None,
    by_peer: PeerCancelled = lambda: True,
) -> RunResult:
    """Start the run and wait up to ``return_after_s``; a call the client cancels kills the run before re-raising."""
    async with submitted(state, submission, CLIENT_CANCEL_REASON, by_peer) as run_id:
        return await follow(state, run_id, sink, return_after_s, person)


@asynccontextmanager
async def cancelling_on_peer_cancel(state: AppState, run_id: str, by_peer: PeerCancelled) -> AsyncIterator[None]:
    """wait_run: a client that cancels its pending wait cancels the run (an explicit cancel); one that goes away
    does not."""
    try:
        yield
    except anyio.get_cancelled_exc_class():
        if by_peer():
            with anyio.CancelScope(shield=True):
                await cancel_quietly(await state.backend(), run_id, CLIENT_CANCEL_REASON)
        raise


async def follow(
    state: AppState, run_id: str, sink: ProgressSink, timeout_s: float, person: HostPerson | None = None
) -> RunResult:
    """The finished run's result, or a 'still running' answer pointing at wait_run once ``timeout_s`` passes.
    In ask mode, a question nobody here can answer ends the wait early with the question (approve_run)."""
    backend = await state.backend()
    if await _asks(backend, run_id):
        result = await _wait_or_question(backend, run_id, sink, timeout_s, person, state.handed_over)
    else:
        result = await wait_reporting(backend, run_id, sink, timeout_s)
    if result is not None:
        return finished(state, result)
    record = await backend.status(run_id)
    if record.status.finished:  # finished between the timeout and this read
        return finished(state, record.to_result())
    return running_result(record, waited_s=sink.elapsed(), max_chars=state.settings.max_result_chars)


async def _asks(backend: Backend, run_id: str) -> bool:
    profile = (await backend.status(run_id)).profile or {}
    return profile.get("permission_prompts") == "ask"


async def _wait_or_question(
    backend: Backend,
    run_id: str,
    sink: ProgressSink,
    timeout_s: float,
    person: HostPerson | None,
    handed_over: set[str],
) -> ExecutionResult | None:
    result: ExecutionResult | None = None
    async with anyio.create_task_group() as group:

        async def wait_for_result() -> None:
            nonlocal result
            result = await wait_reporting(backend, run_id, sink, timeout_s)
            group.cancel_scope.cancel()

        async def watch_questions() -> None:
            await approval_tools.watch(backend, run_id, person, handed_over)
            group.cancel_scope.cancel()

        group.start_soon(wait_for_result)
        group.start_soon(watch_questions)
    return result


async def approve(
    state: AppState, run_id: str, request_id: str, decision: ApprovalDecision, message: str | None
) -> RunResult:
    """approve_run: answer a question the run waits on (as the calling agent: recorded as the caller's)."""
    approval = await (await state.backend()).approve(
        run_id,
        request_id,
        decision,
        decided_by="caller",
        message=message,
    )
    out = await describe(state, run_id)
    note = f"Recorded: {approval.decision} for {approval.tool} ({approval.summary}). "
    if not out.done:
        note += f"The run goes on: call wait_run(run_id='{run_id}') for the result. "
    out.message = note + out.message
    return out


def finished(state: AppState, result: ExecutionResult) -> RunResult:
    return run_result(result, max_chars=state.settings.max_result_chars)


async def describe(state: AppState, run_id: str, *, waited_s: float | None = None) -> RunResult:
    """Status, latest progress and (once finished) the result of one run, without waiting."""
    record = await (await state.backend()).status(run_id)
    if record.status.finished:
        return run_result(record, max_chars=state.settings.max_result_chars)
    return running_result(record, waited_s=waited_s, max_chars=state.settings.max_result_chars)


async def wait(
    state: AppState, run_id: str, timeout_s: float, sink: ProgressSink, person: HostPerson | None = None
) -> RunResult:
    """Long-poll: the result as soon as the run finishes, else its state after ``timeout_s``."""
    await (await state.backend()).status(run_id)  # RunNotFoundError before waiting on a typo
    return await follow(state, run_id, sink, timeout_s, person)


def cancel_reason(reason: str | None) -> str:
    """What a run cancelled through cancel_run records."""
    return f"cancelled via cancel_run: {reason}" if reason else "cancelled via cancel_run"


async def cancel(state: AppState, run_id: str, reason: str | None) -> RunResult:
    """cancel_run: wherever the run executes (this server, another process), its tree is stopped and the row
    says why; a pending list task is skipped."""
    report = await (await state.backend()).cancel(run_id, cancel_reason(reason))
    out = await describe(state, run_id)
    if not report.cancelled:
        out.message = f"Nothing to cancel: the run had already finished ({report.status.value}). " + out.message
    elif report.owner == "elsewhere":
        left = f"; {report.remaining} still alive" if report.remaining else ""
        note = f"The run belonged to another process; {report.signalled} of its process(es) were stopped{left}. "
        out.message = note + out.message
    return out


async def list_runs(
    state: AppState,
    *,
    status: RunStatusName | None,
    cwd: str | None,
    since: str | None,
    list_id: str | None,
    limit: int,
) -> RunList:
    from cc_executor.backends import RunFilter
    from cc_executor.models import RunStatus
    from cc_executor.timeparse import parse_since

    query = RunFilter(
        status=RunStatus(status) if status else None,
        cwd=_normalised_dir(cwd) if cwd else None,
        since=parse_since(since) if since else None,
        list_id=list_id,
        limit=limit,
    )
    records = await (await state.backend()).list_runs(query)
    summaries = [run_summary(record) for record in records]
    more = " (there may be more: raise limit or narrow the filters)" if len(summaries) == limit else ""
    return RunList(runs=summaries, count=len(summaries), message=f"{len(summaries)} run(s), newest first{more}.")


def _normalised_dir(cwd: str) -> str:
    """Rows store the resolved cwd; resolve the filter the same way."""
    return os.path.realpath(os.path.expanduser(cwd))
