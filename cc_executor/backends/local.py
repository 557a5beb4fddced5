"""The backend seam: submit, cancel, events, status, wait.

Runs submitted here outlive the call that started them (the MCP server hands a run id back before a
host's wall clock expires and the run keeps going). ``LocalBackend`` runs ``execute_run``'s pieces in
this process's task group; a remote backend (e.g. a Temporal activity per run on workers) would
implement the same protocol around the same ``prepare_run`` / ``Run.execute`` pair.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectSendStream

from cc_executor.engine.runner import Run, prepare_run
from cc_executor.engine.slots import RunSlots
from cc_executor.errors import RunNotFoundError
from cc_executor.models import ExecutionResult, ProgressUpdate, RunRecord, RunRequest
from cc_executor.registry.store import RunStore

log = logging.getLogger(__name__)

_POLL_S = 0.5


class Backend(Protocol):
    async def submit(self, request: RunRequest) -> str: ...

    async def cancel(self, run_id: str, reason: str = "cancelled") -> bool: ...

    def events(self, run_id: str) -> AsyncIterator[ProgressUpdate]: ...

    async def status(self, run_id: str) -> RunRecord: ...

    async def wait(self, run_id: str, timeout_s: float) -> ExecutionResult | None: ...


@dataclass(eq=False)
class _LiveRun:
    run: Run
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    done: anyio.Event = field(default_factory=anyio.Event)
    result: ExecutionResult | None = None
    latest: ProgressUpdate | None = None
    subscribers: list[MemoryObjectSendStream[ProgressUpdate]] = field(default_factory=list)

    async def publish(self, update: ProgressUpdate) -> None:
        self.latest = update
        for send in list(self.subscribers):
            try:
                send.send_nowait(update)
            except anyio.WouldBlock:
                pass  # a slow subscriber misses an update, never the run
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self.subscribers.remove(send)


class LocalBackend:
    """In-process runs under one task group; leaving the context cancels (and kills) whatever still runs."""

    def __init__(
        self,
        store: RunStore | None = None,
        *,
        store_path: Path | None = None,
        slots: RunSlots | None = None,
        transcript_dir: Path | None = None,
    ) -> None:
        self._store = store
        self._owns_store = store is None
        self.store_path = store_path
        self.slots = slots or RunSlots()
        self.transcript_dir = transcript_dir
        self._live: dict[str, _LiveRun] = {}
        self._group: anyio.abc.TaskGroup | None = None
        self._store_lock = anyio.Lock()

    @property
    def store(self) -> RunStore:
        if self._store is None:
            raise RuntimeError("the store is not open yet: await backend.get_store() first")
        return self._store

    async def get_store(self) -> RunStore:
        """Open the registry on first use (and reconcile runs of dead owners), so start-up does no I/O."""
        async with self._store_lock:
            if self._store is None:
                from cc_executor.registry.recovery import connect_registry

                self._store = await connect_registry(self.store_path)
        return self._store

    async def __aenter__(self) -> LocalBackend:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._group is not None
        for live in self._live.values():
            live.run.set_cancel_reason("cancelled: the server shut down")
            live.scope.cancel()
        try:
            return await self._group.__aexit__(exc_type, exc, tb)
        finally:
            if self._owns_store and self._store is not None:
                with anyio.CancelScope(shield=True):
                    await self._store.close()
                self._store = None

    @property
    def active(self) -> int:
        return sum(1 for live in self._live.values() if not live.done.is_set())

    async def submit(self, request: RunRequest) -> str:
        """Validate and record the run, start it in the background and return its id at once."""
        if self._group is None:
            raise RuntimeError("LocalBackend must be entered (async with) before submit")
        run = await prepare_run(request, await self.get_store(), transcript_dir=self.transcript_dir)
        live = _LiveRun(run)
        self._live[request.run_id] = live
        self._group.start_soon(self._drive, live)
        return request.run_id

    async def _drive(self, live: _LiveRun) -> None:
        try:
            with live.scope:
                live.result = await live.run.execute(on_progress=live.publish, slots=self.slots)
        except Exception:
            log.exception("run %s crashed in the executor", live.run.request.run_id)
        finally:
            if live.result is None:
                with anyio.CancelScope(shield=True):
                    record = await self.store.get(live.run.request.run_id)
                live.result = record.to_result()
            for send in live.subscribers:
                send.close()
            live.done.set()

    async def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        """Kill a live run's tree and record ``cancelled``; False if it already finished or is not live here.

        The first reason wins: cancelling a run that is already being cancelled only waits for it to end.
        """
        live = self._live.get(run_id)
        if live is None:
            await (await self.get_store()).get(run_id)  # RunNotFoundError for unknown ids
            return False
        if live.done.is_set():
            return False
        live.run.set_cancel_reason(reason)
        live.scope.cancel()
        await live.done.wait()
        return True

    async def events(self, run_id: str) -> AsyncIterator[ProgressUpdate]:
        """Progress updates of a live run until it finishes (nothing for finished or unknown runs)."""
        live = self._live.get(run_id)
        if live is None or live.done.is_set():
            return
        send, receive = anyio.create_memory_object_stream[ProgressUpdate](256)
        live.subscribers.append(send)
        if live.latest is not None:
            send.send_nowait(live.latest)
        async with receive:
            async for update in receive:
                yield update

    async def status(self, run_id: str) -> RunRecord:
        record = await (await self.get_store()).get(run_id)
        live = self._live.get(run_id)
        if live is not None and live.latest is not None and not live.done.is_set():
            record.last_progress = live.latest.message
        return record

    async def wait(self, run_id: str, timeout_s: float) -> ExecutionResult | None:
        """The result once the run finishes, or None if it is still running after ``timeout_s``."""
        live = self._live.get(run_id)
        with anyio.move_on_after(timeout_s):
            if live is not None:
                await live.done.wait()
                return live.result
            store = await self.get_store()
            while True:  # owned by another process: follow its row
                record = await store.get(run_id)
                if record.status.finished:
                    return record.to_result()
                await anyio.sleep(_POLL_S)
        return None

    def latest(self, run_id: str) -> ProgressUpdate | None:
        live = self._live.get(run_id)
        return live.latest if live else None

    def forget_finished(self) -> None:
        """Drop finished runs from memory (their rows stay in the store)."""
        for run_id in [r for r, live in self._live.items() if live.done.is_set()]:
            del self._live[run_id]


__all__ = ["Backend", "LocalBackend", "RunNotFoundError"]
