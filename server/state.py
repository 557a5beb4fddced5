"""The server's lifespan: one backend (started on first use) shared by every tool call.

Nothing heavy happens before the initialize answer: the core is imported, the backend entered and the database
opened only when the first tool needs them. The backend is ``DurableBackend`` by default (settings.backend): runs
are owned by their own supervisor processes, so leaving the lifespan (stdin EOF, SIGTERM, or a SIGKILL that skips
it) leaves them running, and a later server on the same state dir picks them up. With ``local``, leaving the
lifespan cancels every live run, which kills its process tree and records why.
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

from .retention import prune_at_start
from .settings import ServerSettings

if TYPE_CHECKING:
    from cc_executor.backends import Backend
    from cc_executor.models import CCExecutorConfig

log = logging.getLogger(__name__)

SHUTDOWN_REASON = "cancelled: the MCP server shut down"
_SHUTDOWN_BOUND_S = 30.0
_FORGET_POLL_S = 3600.0  # a wait_run-style long poll; the local backend answers the moment the run ends


class AppState:
    """What tools reach through ``ctx.request_context.lifespan_context``."""

    def __init__(self, settings: ServerSettings, group: anyio.abc.TaskGroup) -> None:
        self.settings = settings
        self.group = group
        self.lists: set[str] = set()  # task lists this server started (cancelled when it shuts down)
        self.submitted: set[str] = set()  # runs this server started (likewise)
        self.list_members: dict[str, str] = {}  # run id -> list id, for the lists above
        self.handed_over: set[str] = set()  # approval request ids already shown to a caller (approve_run's to answer)
        self._backend: Backend | None = None
        self._backend_lock = anyio.Lock()
        self._stop = anyio.Event()
        self._stopped = anyio.Event()

    async def backend(self) -> Backend:
        """The shared backend, entered in its own task on first use (task groups must exit where they entered)."""
        async with self._backend_lock:
            if self._backend is None:
                self._backend = await self.group.start(self._serve_backend)
        return self._backend

    def _make_backend(self) -> Backend:
        """The configured backend (``CC_EXECUTOR_BACKEND``; the server's default is durable: runs outlive it)."""
        import os

        from cc_executor.backends.factory import BACKEND_ENV, open_backend

        home = self.settings.home
        grace = self.settings.kill_grace_s if self.settings.kill_grace_s is not None else 2.0
        return open_backend(
            store_path=home / "runs.db" if home else None,
            transcript_dir=home / "transcripts" if home else None,
            max_concurrent=self.settings.max_concurrent,
            kill_grace_s=grace,
            environ={**os.environ, BACKEND_ENV: self.settings.backend},
        )

    async def _serve_backend(self, *, task_status: anyio.abc.TaskStatus[Backend]) -> None:
        backend = self._make_backend()
        try:
            async with backend:  # type: ignore[attr-defined]  # every backend is an async context manager
                task_status.started(backend)
                await self._stop.wait()
                if not self.settings.durable:
                    await self._cancel_live(backend, SHUTDOWN_REASON)
        finally:
            self._stopped.set()

    def cancels_with_call(self, *, by_peer: bool) -> bool:
        """Whether a cancelled tool call (execute_task, wait_run, execute_task_list) cancels its run. A host that
        cancels the call (notifications/cancelled) means it; a host that goes away (EOF, a signal) does not, when
        runs are durable. Local runs die with the server anyway, so they are cancelled and recorded either way."""
        return by_peer or not self.settings.durable

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

    def remember_run(self, run_id: str) -> None:
        """A run this server started: cancelled if the server shuts down first, forgotten once it finishes (so a
        long-lived server's memory stays flat; its row stays in the store)."""
        self.submitted.add(run_id)
        self.group.start_soon(self._forget_when_done, run_id)

    async def _forget_when_done(self, run_id: str) -> None:
        try:
            backend = await self.backend()
            while await backend.wait(run_id, _FORGET_POLL_S) is None:
                pass
        except Exception:
            log.warning("could not follow run %s to its end; it stays on the shutdown list", run_id, exc_info=True)
            return
        self.submitted.discard(run_id)

    async def shutdown(self, reason: str = SHUTDOWN_REASON) -> None:
        """Cancel live list jobs and runs (each tree killed, each row says why), then stop the backend.

        The first reason wins (the core keeps the first reason a list or a run is given, and each shutdown starts
        every cancel before it awaits any): a SIGTERM shutdown followed by stdin EOF records the SIGTERM.
        """
        if self._backend is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_SHUTDOWN_BOUND_S):
                if not self.settings.durable:  # durable runs go on under their supervisors
                    await self._cancel_live(self._backend, reason)
                self._stop.set()
                await self._stopped.wait()
        self._stop.set()

    async def _cancel_live(self, backend: Backend, reason: str) -> None:
        if backend.name == "temporal":
            return  # its runs live in Temporal and outlive this server (another front end can wait for them)
        async with anyio.create_task_group() as group:
            for list_id in list(self.lists):
                group.start_soon(_stop_list, backend, list_id, reason)
            for run_id in list(self.submitted):
                group.start_soon(cancel_quietly, backend, run_id, reason)
        self.submitted.clear()
        self.lists.clear()


Ctx: TypeAlias = Context[AppState, Any]
"""The tools' context: ``ctx.request_context.lifespan_context`` is the AppState."""

PeerCancelled = Callable[[], bool]


def peer_cancel_check(ctx: Ctx) -> PeerCancelled:
    """Did the client cancel this tool call (``notifications/cancelled``), as opposed to going away (stdin EOF)?

    The SDK sets the request's ``cancel_requested`` event before it cancels the handler, and sets it only for a
    client's cancel. The tool Context reaches that event only through the session's ``_request_outbound``;
    tests/test_server_durable.py checks both cases, so an SDK change that moves it fails there. Not found: False
    (a durable run then survives a cancelled call, and cancel_run still stops it)."""
    outbound = getattr(ctx.request_context.session, "_request_outbound", None)
    while hasattr(outbound, "_inner"):  # the runner wraps the dispatcher's context (e.g. to refuse server requests)
        outbound = getattr(outbound, "_inner")  # noqa: B009
    if type(outbound).__module__ == "mcp.shared.direct_dispatcher":
        return lambda: True  # in memory the caller's cancel reaches the tool directly: no notification, no "going away"
    event = getattr(outbound, "cancel_requested", None)
    return lambda: bool(event is not None and event.is_set())


async def cancel_quietly(backend: Backend, run_id: str, reason: str) -> None:
    """Cancel ``run_id`` if it exists and runs; never raises (a shutdown must reach every run)."""
    from cc_executor.errors import RunNotFoundError

    try:
        await backend.cancel(run_id, reason)
    except RunNotFoundError:
        pass  # its row was never written
    except Exception:
        log.exception("could not cancel run %s", run_id)


async def _stop_list(backend: Backend, list_id: str, reason: str) -> None:
    """Cancel a list and wait until it has recorded how each task ended (before the backend closes the store)."""
    try:
        await backend.cancel_list(list_id, reason)
    except Exception:
        log.exception("could not cancel task list %s", list_id)


def lifespan_for(settings: ServerSettings) -> Callable[[Any], AbstractAsyncContextManager[AppState]]:
    """The MCPServer lifespan bound to ``settings``."""

    @asynccontextmanager
    async def lifespan(_server: Any) -> AsyncIterator[AppState]:
        async with anyio.create_task_group() as group:
            state = AppState(settings, group)
            if settings.handle_signals:
                group.start_soon(_watch_signals, state)
            if settings.retention_days is not None:
                group.start_soon(prune_at_start, settings)
            try:
                yield state
            finally:
                with anyio.CancelScope(shield=True):
                    await state.shutdown()
                group.cancel_scope.cancel()

    return lifespan


async def _watch_signals(state: AppState) -> None:
    """SIGTERM/SIGINT: stop (local runs: killed and recorded; durable ones go on), then die by the same signal
    (stdin may never reach EOF)."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            log.info("received %s: cancelling live runs", name)
            await state.shutdown(f"cancelled: the MCP server received {name}")
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
