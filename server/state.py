"""The server's lifespan: one LocalBackend (started on first use) shared by every tool call.

Nothing heavy happens before the initialize answer: the core is imported, the backend entered and the database
opened only when the first tool needs them. Leaving the lifespan (stdin EOF, SIGTERM) cancels every live run,
which kills its process tree and records why.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeAlias

import anyio
import anyio.abc
from mcp.server.mcpserver import Context

from .settings import ServerSettings

if TYPE_CHECKING:
    from cc_executor.backends.local import LocalBackend
    from cc_executor.models import CCExecutorConfig, RunRequest

    from .task_list_tools import ListJob

log = logging.getLogger(__name__)

SHUTDOWN_REASON = "cancelled: the MCP server shut down"
_SHUTDOWN_BOUND_S = 30.0


class AppState:
    """What tools reach through ``ctx.request_context.lifespan_context``."""

    def __init__(self, settings: ServerSettings, group: anyio.abc.TaskGroup) -> None:
        self.settings = settings
        self.group = group
        self.lists: dict[str, ListJob] = {}
        self.submitted: set[str] = set()
        self._backend: LocalBackend | None = None
        self._backend_lock = anyio.Lock()
        self._stop = anyio.Event()
        self._stopped = anyio.Event()

    async def backend(self) -> LocalBackend:
        """The shared backend, entered in its own task on first use (task groups must exit where they entered)."""
        async with self._backend_lock:
            if self._backend is None:
                self._backend = await self.group.start(self._serve_backend)
        return self._backend

    @property
    def started_backend(self) -> LocalBackend | None:
        """The backend if a tool already started it (no side effects)."""
        return self._backend

    async def _serve_backend(self, *, task_status: anyio.abc.TaskStatus[LocalBackend]) -> None:
        from cc_executor.backends.local import LocalBackend
        from cc_executor.engine.slots import RunSlots

        home = self.settings.home
        backend = LocalBackend(
            store_path=home / "runs.db" if home else None,
            transcript_dir=home / "transcripts" if home else None,
            slots=RunSlots(self.settings.max_concurrent),
        )
        try:
            async with backend:
                task_status.started(backend)
                await self._stop.wait()
                await self._cancel_live(backend, SHUTDOWN_REASON)
        finally:
            self._stopped.set()

    def config(self, **fields: Any) -> CCExecutorConfig:
        """A run config with the server-wide defaults (CLI path, env, model, kill grace) under the call's fields."""
        from pydantic import ValidationError

        from cc_executor.api import describe_validation_error
        from cc_executor.errors import InvalidRequestError
        from cc_executor.models import CCExecutorConfig

        base: dict[str, Any] = {"env": dict(self.settings.cli_env)}
        if self.settings.claude_path:
            base["claude_path"] = self.settings.claude_path
        if self.settings.model:
            base["model"] = self.settings.model
        if self.settings.kill_grace_s is not None:
            base["kill_grace_s"] = self.settings.kill_grace_s
        base.update(self.settings.profile_defaults())
        base.update({k: v for k, v in fields.items() if v is not None})
        try:
            return CCExecutorConfig(**base)
        except ValidationError as exc:  # e.g. a bad mcp_config: a sentence naming the field, not a crash
            raise InvalidRequestError(describe_validation_error(exc)) from None

    async def submit(self, request: RunRequest) -> str:
        """Start a run owned by this server; it outlives the tool call that started it."""
        backend = await self.backend()
        backend.forget_finished()  # their rows stay in the store; keeps memory flat on a long-lived server
        run_id = await backend.submit(request)
        self.submitted.add(run_id)
        return run_id

    async def shutdown(self, reason: str = SHUTDOWN_REASON) -> None:
        """Cancel live list jobs and runs (each tree killed, each row says why), then stop the backend.

        The first reason wins (the core keeps the first reason a list or a run is given, and each shutdown starts
        every cancel before it awaits any): a SIGTERM shutdown followed by stdin EOF records the SIGTERM.
        """
        if self._backend is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_SHUTDOWN_BOUND_S):
                await self._cancel_live(self._backend, reason)
                self._stop.set()
                await self._stopped.wait()
        self._stop.set()

    async def _cancel_live(self, backend: LocalBackend, reason: str) -> None:
        async with anyio.create_task_group() as group:
            for job in list(self.lists.values()):
                group.start_soon(_stop_list, job, reason)
            for run_id in list(self.submitted):
                group.start_soon(cancel_quietly, backend, run_id, reason)
        self.submitted.clear()


Ctx: TypeAlias = Context[AppState, Any]
"""The tools' context: ``ctx.request_context.lifespan_context`` is the AppState."""


async def cancel_quietly(backend: LocalBackend, run_id: str, reason: str) -> None:
    """Cancel ``run_id`` if it exists and runs; never raises (a shutdown must reach every run)."""
    from cc_executor.errors import RunNotFoundError

    try:
        await backend.cancel(run_id, reason)
    except RunNotFoundError:
        pass  # its row was never written
    except Exception:
        log.exception("could not cancel run %s", run_id)


async def _stop_list(job: ListJob, reason: str) -> None:
    """Cancel a list and wait until it has recorded how each task ended (before the backend closes the store)."""
    try:
        await job.core.cancel(reason)
    except Exception:
        log.exception("could not cancel task list %s", job.list_id)
    await job.core.done.wait()


def lifespan_for(settings: ServerSettings) -> Callable[[Any], AbstractAsyncContextManager[AppState]]:
    """The MCPServer lifespan bound to ``settings``."""

    @asynccontextmanager
    async def lifespan(_server: Any) -> AsyncIterator[AppState]:
        async with anyio.create_task_group() as group:
            state = AppState(settings, group)
            if settings.handle_signals:
                group.start_soon(_watch_signals, state)
            try:
                yield state
            finally:
                with anyio.CancelScope(shield=True):
                    await state.shutdown()
                group.cancel_scope.cancel()

    return lifespan


async def _watch_signals(state: AppState) -> None:
    """SIGTERM/SIGINT: kill and record every run, then die by the same signal (stdin may never reach EOF)."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            log.info("received %s: cancelling live runs", name)
            await state.shutdown(f"cancelled: the MCP server received {name}")
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
