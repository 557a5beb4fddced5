"""The library's front door: ``cc_execute`` (seed-compatible), ``run_stream`` for callers who want
events as they happen, and ``reconcile`` for runs a dead process left behind."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from cc_executor.engine.approvals import CanUseTool
from cc_executor.engine.emit import EventCallback, ProgressCallback
from cc_executor.engine.events import Event
from cc_executor.engine.recovery import connect_registry, open_store
from cc_executor.engine.runner import execute_run
from cc_executor.engine.slots import RunSlots
from cc_executor.errors import ERROR_CLASSES, InvalidRequestError, RunError
from cc_executor.models import CCExecutorConfig, ExecutionResult, ProgressUpdate, RunRequest
from cc_executor.registry.store import RunStore
from cc_executor.retention import prune_runs

if TYPE_CHECKING:
    from cc_executor.backends.durable import RunHandle

__all__ = [
    "build_request",
    "build_resume_request",
    "cc_execute",
    "open_store",
    "prune_runs",
    "raise_for_result",
    "resume",
    "run_stream",
]


def build_request(
    task: str,
    *,
    config: CCExecutorConfig | None = None,
    cwd: str | Path | None = None,
    json_schema: Mapping[str, Any] | None = None,
    return_json: bool = False,
    **fields: Any,
) -> RunRequest:
    """Validate everything up front; an InvalidRequestError names the field and the problem."""
    from pydantic import ValidationError

    try:
        return RunRequest(
            task=task,
            cwd=Path(cwd) if cwd is not None else Path.cwd(),
            config=config or CCExecutorConfig(),
            json_schema=dict(json_schema) if json_schema is not None else None,
            return_json=return_json,
            **fields,
        )
    except ValidationError as exc:
        raise InvalidRequestError(describe_validation_error(exc)) from None


def describe_validation_error(exc: Any) -> str:
    """One sentence per problem, each naming the field (see cc_executor.validation)."""
    from cc_executor.validation import describe_validation_error as describe

    return describe(exc)


def raise_for_result(result: ExecutionResult) -> None:
    """Raise the typed error of a failed result (with ``.result`` attached); no-op on success."""
    if result.ok:
        return
    if isinstance(result._exception, RunError):
        raise result._exception
    cls = ERROR_CLASSES.get(result.error_class or "", RunError)
    error = cls.__new__(cls)
    RunError.__init__(error, result.error or result.status.value, result)
    raise error


def _stderr_printer(on_progress: ProgressCallback | None) -> ProgressCallback:
    async def show(update: ProgressUpdate) -> None:
        sys.stderr.write(f"[cc-executor {update.run_id[:8]}] {update.message}\n")
        sys.stderr.flush()
        if on_progress is not None:
            maybe = on_progress(update)
            if maybe is not None:
                await maybe

    return show


@overload
async def cc_execute(
    task: str,
    *,
    config: CCExecutorConfig | None = ...,
    return_json: Literal[True],
    stream: bool = ...,
    json_schema: Mapping[str, Any] | None = ...,
    cwd: str | Path | None = ...,
    on_progress: ProgressCallback | None = ...,
    on_event: EventCallback | None = ...,
    check: bool = ...,
    agent_predict_timeout: bool | None = ...,
    store: RunStore | None = ...,
    slots: RunSlots | None = ...,
    detach: Literal[False] = ...,
    can_use_tool: CanUseTool | None = ...,
    **fields: Any,
) -> dict[str, Any]: ...


@overload
async def cc_execute(
    task: str,
    *,
    config: CCExecutorConfig | None = ...,
    return_json: Literal[False] = ...,
    stream: bool = ...,
    json_schema: Mapping[str, Any] | None = ...,
    cwd: str | Path | None = ...,
    on_progress: ProgressCallback | None = ...,
    on_event: EventCallback | None = ...,
    check: bool = ...,
    agent_predict_timeout: bool | None = ...,
    store: RunStore | None = ...,
    slots: RunSlots | None = ...,
    detach: Literal[False] = ...,
    can_use_tool: CanUseTool | None = ...,
    **fields: Any,
) -> ExecutionResult: ...


@overload
async def cc_execute(
    task: str,
    *,
    config: CCExecutorConfig | None = ...,
    return_json: Literal[False] = ...,
    stream: Literal[False] = ...,
    json_schema: Mapping[str, Any] | None = ...,
    cwd: str | Path | None = ...,
    on_progress: None = ...,
    on_event: None = ...,
    check: bool = ...,
    agent_predict_timeout: bool | None = ...,
    store: RunStore | None = ...,
    slots: None = ...,
    detach: Literal[True],
    can_use_tool: None = ...,
    **fields: Any,
) -> RunHandle: ...


async def cc_execute(
    task: str,
    *,
    config: CCExecutorConfig | None = None,
    return_json: bool = False,
    stream: bool = False,
    json_schema: Mapping[str, Any] | None = None,
    cwd: str | Path | None = None,
    on_progress: ProgressCallback | None = None,
    on_event: EventCallback | None = None,
    check: bool = True,
    agent_predict_timeout: bool | None = None,
    store: RunStore | None = None,
    slots: RunSlots | None = None,
    detach: bool = False,
    can_use_tool: CanUseTool | None = None,
    **fields: Any,
) -> ExecutionResult | dict[str, Any] | RunHandle:
    """Run one task through the Claude Code CLI and return its verified, recorded result.

    ``return_json=True`` returns the seed's dict ``{result, summary, files_created, files_modified,
    execution_uuid}`` (result/summary via the CLI's native structured output, files from a diff of
    ``cwd``). ``stream=True`` (or ``config.stream_output``) prints live progress on stderr. With
    ``check=True`` (default) a failed run raises its RunError subclass, whose ``.result`` holds the
    partial output; with ``check=False`` the result is returned whatever its status. With no
    ``config.timeout``, the timeout is predicted from similar past runs; ``agent_predict_timeout=True``
    also asks a cheap model (both estimates are recorded in ``timeout_basis``).

    ``detach=True`` records the run, hands it to its own supervisor process and returns a ``RunHandle`` at once
    (``await handle.wait()``, ``handle.events()``, ``await handle.cancel()``): the run goes on even if this
    process exits. Awaited without ``detach``, the run belongs to the caller: cancelling the call (or exiting)
    cancels it.
    ``can_use_tool``: answer the run's permission prompts yourself (it turns on ``permission_prompts="ask"``):
    ``async def can_use_tool(request: PermissionRequest) -> PermissionDecision | bool | None``; None leaves the
    question to others (``cc-executor approve``), and ``config.approval_timeout_s`` later it is denied.
    """
    if can_use_tool is not None:
        config = (config or CCExecutorConfig()).model_copy(update={"permission_prompts": "ask"})
    if agent_predict_timeout is not None:  # the seed's keyword; the same as the config field
        config = (config or CCExecutorConfig()).model_copy(update={"agent_predict_timeout": agent_predict_timeout})
    request = build_request(task, config=config, cwd=cwd, json_schema=json_schema, return_json=return_json, **fields)
    if detach:
        return await _detached(request, store, stream=stream, callbacks=(on_progress, on_event, slots, can_use_tool))
    if stream or request.config.stream_output:
        on_progress = _stderr_printer(on_progress)
    if store is None:
        async with open_store() as own_store:
            result = await execute_run(
                request, own_store, on_progress=on_progress, on_event=on_event, slots=slots, can_use_tool=can_use_tool
            )
    else:
        result = await execute_run(
            request, store, on_progress=on_progress, on_event=on_event, slots=slots, can_use_tool=can_use_tool
        )
    if check:
        raise_for_result(result)
    return result.seed_dict() if return_json else result


async def _detached(
    request: RunRequest, store: RunStore | None, *, stream: bool, callbacks: tuple[Any, ...]
) -> RunHandle:
    """Submit ``request`` to a DurableBackend on the state dir (``store``'s, if given); its handle."""
    from cc_executor.backends.durable import DurableBackend, RunHandle

    if stream or request.return_json or any(c is not None for c in callbacks):
        raise InvalidRequestError(
            "detach=True returns at once: follow the run with handle.events() and get its result with "
            "handle.wait(); stream, return_json, on_progress, on_event, slots and can_use_tool do not apply "
            "(a detached run's permission prompts are answered with `cc-executor approve`)"
        )
    home = store.path.parent if store is not None and store.path is not None else None
    async with DurableBackend(home) as backend:
        run_id = await backend.submit(request)
    return RunHandle(run_id, backend.home)


StreamItem = Event | ProgressUpdate | ExecutionResult


@asynccontextmanager
async def run_stream(
    task: str,
    *,
    config: CCExecutorConfig | None = None,
    cwd: str | Path | None = None,
    json_schema: Mapping[str, Any] | None = None,
    store: RunStore | None = None,
    **fields: Any,
) -> AsyncIterator[MemoryObjectReceiveStream[StreamItem]]:
    """Events and progress as they happen, then the ExecutionResult as the last item.

        async with run_stream("fix the tests", cwd=repo) as items:
            async for item in items:
                ...

    Leaving the block early cancels the run (its process tree is killed and the row says cancelled).
    """
    request = build_request(task, config=config, cwd=cwd, json_schema=json_schema, **fields)
    send, receive = anyio.create_memory_object_stream[StreamItem](1000)

    async def produce(run_store: RunStore) -> None:
        async with send:
            result = await execute_run(request, run_store, on_progress=send.send, on_event=send.send)
            await send.send(result)

    run_store = store if store is not None else await connect_registry()
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(produce, run_store)
            async with receive:
                yield receive
            group.cancel_scope.cancel()
    finally:
        if store is None:
            with anyio.CancelScope(shield=True):
                await run_store.close()


async def build_resume_request(
    store: RunStore,
    run_id: str,
    prompt: str,
    *,
    fork: bool = False,
    config: CCExecutorConfig | None = None,
    **fields: Any,
) -> RunRequest:
    """A request continuing ``run_id``'s Claude session, in that run's cwd (the CLI only finds sessions
    from their own cwd), linked to it as parent. ``fork=True`` branches a new session instead. An isolated run
    resumes isolated: a new worktree from the parent's head."""
    parent = await store.get(run_id)
    if not parent.session_id:
        raise InvalidRequestError(f"run {run_id} has no Claude session to resume (status {parent.status.value})")
    from cc_executor.worktrees import resume_isolation

    return build_request(
        prompt,
        config=config,
        cwd=parent.cwd,
        resume_session_id=parent.session_id,
        fork_session=fork,
        parent_run_id=run_id,
        **resume_isolation(parent, fields),
    )


async def resume(
    run_id: str,
    prompt: str,
    *,
    fork: bool = False,
    config: CCExecutorConfig | None = None,
    check: bool = True,
    store: RunStore | None = None,
    on_progress: ProgressCallback | None = None,
) -> ExecutionResult:
    """Continue a finished run's conversation with ``prompt``. The new run's ``session_id`` is the one the
    CLI produced for this turn; resume that run next to continue the chain."""

    async def go(run_store: RunStore) -> ExecutionResult:
        request = await build_resume_request(run_store, run_id, prompt, fork=fork, config=config)
        return await execute_run(request, run_store, on_progress=on_progress)

    if store is not None:
        result = await go(store)
    else:
        async with open_store() as own:
            result = await go(own)
    if check:
        raise_for_result(result)
    return result
