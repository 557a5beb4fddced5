"""The supervisor of one durable task list: ``python -m cc_executor.engine.list_supervisor LIST_ID --home STATE_DIR``.

A task list of multi-hour tasks must outlive the front end that submitted it (an MCP server its host restarts), so
its order is not kept in that front end. ``DurableBackend.submit_list`` records the list (``task_lists``: mode,
options, owner; ``task_list_members``: each member's request without secrets, in order), starts this module in its
own session exactly like a run's supervisor (``spawn_detached``: stdin a pipe, ``go`` once the list is recorded,
EOF otherwise, so a list is never run twice or unrecorded), and returns. This process then drives the one list
engine, ``TaskList`` (sequential with the context preamble, or parallel under ``max_parallel``; stop_on_error;
skipped rows), and executes each member here, through the one core (``Run.execute``), as a durable run it owns:
the member's row and request are recorded as a run supervisor's are, its progress goes to ``run_events``, its slot
is taken from the state dir's file slots, and a cancel written on its row by any process stops it.

Why members run in this process rather than each under its own run supervisor: a supervisor costs ~25 MB; one per
list instead of one more per running member (a parallel list of 4 would hold 5). And the guarantees come for free:
a member's claude has its pdeathsig tied to this process, so if this supervisor is SIGKILLed nothing of the list
goes on running; the members' rows (owned by this pid) and the list (owned by this pid) are then recorded lost by
whoever looks next, or by the next reconcile (``engine.recovery``), and members not started get skipped rows.

Cancelling from any front end: ``task_lists.cancel_reason`` (the whole list) or ``task_list_members.cancel_reason``
(one member: pending is skipped, running cancelled), polled here. SIGTERM/SIGINT/SIGHUP cancel the list too.
The list's own progress (every member's, prefixed with its place) is numbered in ``list_events``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from cc_executor.engine.runner import prepare_run
from cc_executor.engine.supervisor import (
    KEEP_EVENTS,
    EventLog,
    execute_watched,
    recordable,
    released,
    secrets_of,
    spawn_detached,
    with_secrets,
)
from cc_executor.engine.task_list_runner import TaskList, UpdateCallback
from cc_executor.models import ExecutionResult, ProgressUpdate, RunRequest
from cc_executor.paths import DB_NAME
from cc_executor.registry.store import RunStore

log = logging.getLogger("cc_executor.list_supervisor")

MODULE = "cc_executor.engine.list_supervisor"
_WATCH_S = 0.5
_TRIM_EVERY = 50


class ListEventLog:
    """The list's numbered progress events (``list_events``), the latest ``KEEP_EVENTS`` kept."""

    def __init__(self, store: RunStore, list_id: str) -> None:
        self.store = store
        self.list_id = list_id
        self.seq = 0

    async def progress(self, update: ProgressUpdate) -> None:
        self.seq += 1
        await self.store.append_list_event(self.list_id, self.seq, "progress", update.model_dump_json())
        if self.seq % _TRIM_EVERY == 0:
            await self.store.trim_list_events(self.list_id, keep=KEEP_EVENTS)


def start_list_supervisor(
    list_id: str, home: Path, *, secrets: dict[str, Any], max_concurrent: int | None = None
) -> subprocess.Popen[bytes]:
    """Start the supervisor of ``list_id`` (it waits for ``release``); ``secrets``: ``list_secrets``."""
    return spawn_detached(MODULE, list_id, home, secrets, max_concurrent, log_name=log_name(list_id))


def list_secrets(requests: Sequence[RunRequest]) -> dict[str, Any]:
    """The members' secrets (``secrets_of``) for the supervisor's environment: each distinct value once (members
    usually share the server's env), and which member has which, so a long list stays far below the kernel's limit
    on one environment string (128 KiB)."""
    values: list[dict[str, object]] = []
    of: dict[str, int] = {}
    for request in requests:
        secrets = secrets_of(request)
        if not secrets["env"] and secrets["mcp_config"] is None:
            continue
        if secrets not in values:
            values.append(secrets)
        of[request.run_id] = values.index(secrets)
    return {"values": values, "of": of}


def _secrets_for(secrets: dict[str, Any], run_id: str) -> dict[str, Any]:
    index = secrets.get("of", {}).get(run_id)
    return {} if index is None else dict(secrets["values"][index])


def log_name(list_id: str) -> str:
    """The supervisor log's file name: a list id is any string the caller chose (a uuid from the server)."""
    if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", list_id):
        return f"list-{list_id}"
    return "list-" + hashlib.sha256(list_id.encode()).hexdigest()[:32]


def main(argv: Sequence[str] | None = None) -> int:
    started = released(argv, module=MODULE, subject="list_id", kind="list")
    if started is None:
        return 0
    args, secrets = started
    return anyio.run(supervise_list, args.list_id, args.home, secrets, args.max_concurrent)


async def supervise_list(list_id: str, home: Path, secrets: dict[str, Any], max_concurrent: int | None) -> int:
    async with RunStore.open(home / DB_NAME) as store:
        row = await store.get_list(list_id)
        if row is None or row.owner_pid != os.getpid():
            log.warning("the list is not recorded as owned by this process: leaving it alone")
            return 0
        if row.finished:
            return 0
        requests = [
            with_secrets(RunRequest.model_validate_json(raw), _secrets_for(secrets, run_id))
            for run_id, raw, _ in await store.list_members(list_id)
        ]
        events = ListEventLog(store, list_id)
        core = TaskList(
            requests,
            store,
            sequential=row.mode == "sequential",
            max_parallel=row.max_parallel,
            stop_on_error=row.stop_on_error,
            on_progress=events.progress,
            execute=partial(_execute_member, store, home, max_concurrent),
        )
        if row.cancel_reason is not None:  # cancelled between being recorded and now: nothing starts
            await core.cancel(row.cancel_reason)
        error: str | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(_watch_signals, core)
            group.start_soon(_watch_requests, store, core, group)
            try:
                await core.run()
            except Exception as exc:
                log.exception("the task list crashed")
                error = f"the list's supervisor failed: {exc}"
            finally:
                group.cancel_scope.cancel()
        with anyio.CancelScope(shield=True):
            status = "failed" if error is not None else core.status()
            await store.finish_list(list_id, status, error)
            await store.append_list_finished_event(list_id)
        log.info("list ended: %s", status)
    return 0


async def _execute_member(
    store: RunStore, home: Path, max_concurrent: int | None, request: RunRequest, on_progress: UpdateCallback
) -> ExecutionResult:
    """One member, as a durable run owned by this process (``TaskList``'s ``execute`` contract)."""
    run = await prepare_run(request, store)  # the recorded request names its transcript dir (``recordable``)
    run_id = request.run_id
    try:
        await store.save_request(run_id, recordable(run.request, run.stdout_path.parent))
        events = EventLog(store, run_id, 0)

        async def publish(update: ProgressUpdate) -> None:
            await events.progress(update)
            await on_progress(update)

        return await execute_watched(store, run, home, max_concurrent, publish)
    finally:
        with anyio.CancelScope(shield=True):
            status = (await store.get(run_id)).status
            await store.append_finished_event(run_id, json.dumps({"status": status.value}))


async def _watch_signals(core: TaskList) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            await core.cancel(f"cancelled: the list's supervisor received {signal.Signals(signum).name}")


async def _watch_requests(store: RunStore, core: TaskList, group: anyio.abc.TaskGroup) -> None:
    """Cancel requests written by any front end: the whole list, or one member."""
    handled: set[str] = set()
    while True:
        await anyio.sleep(_WATCH_S)
        row = await store.get_list(core.list_id)
        if row is not None and row.cancel_reason is not None:
            await core.cancel(row.cancel_reason)
        for run_id, reason in await store.member_cancels(core.list_id):
            if run_id not in handled:
                handled.add(run_id)
                group.start_soon(core.cancel_member, run_id, reason)


if __name__ == "__main__":
    sys.exit(main())
