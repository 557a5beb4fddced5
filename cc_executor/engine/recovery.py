"""Reconcile runs whose owner died: a row left ``running`` by a killed server or script is marked
``lost``, and any process still carrying that run's marker is killed."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from cc_executor.engine import process
from cc_executor.errors import InvalidRequestError, RunNotFoundError
from cc_executor.models import RunRequest, RunStatus
from cc_executor.paths import db_path
from cc_executor.registry.store import RunStore, TaskListRow

log = logging.getLogger(__name__)


# Runs of this process whose final row could not be written (the runner tried and gave up): not running any more,
# so the next reconcile marks them lost even though their owner, this process, is alive.
_ABANDONED: set[str] = set()


def abandon(run_id: str) -> None:
    """The runner could not record how ``run_id`` ended; have the next reconcile mark it lost, not running."""
    _ABANDONED.add(run_id)


async def reconcile(store: RunStore) -> list[str]:
    """Mark unfinished runs of dead owners (and runs abandoned here) as lost; returns their ids.

    An owner is a pid plus its start time and boot id, so a pid reused by another process (a container restarted
    with the same small pids, a long-lived host) does not keep a dead owner's runs `running` forever.
    """
    lost = []
    for record in await store.unfinished_runs():
        owner = record.owner_pid
        if record.run_id in _ABANDONED:
            why = "cc-executor could not record how the run ended (the final write failed)"
        elif process.owner_alive(owner, record.owner_start, record.owner_boot):
            continue  # still owned by a live process (maybe this one)
        elif owner is not None and process.pid_alive(owner):
            why = f"owner process {owner} died (pid {owner} now belongs to another process)"
        else:
            why = f"owner process {owner} died"
        killed = process.kill_marked_group(record.pgid, record.run_id)
        note = f"{why}; {killed} leftover process(es) killed" if killed else why
        _ABANDONED.discard(record.run_id)
        if not await store.mark_lost(record.run_id, note):
            continue  # it finished while we looked
        log.info("run %s marked lost: %s", record.run_id, note)
        lost.append(record.run_id)
    for row in await store.unfinished_lists():
        if not process.owner_alive(row.owner_pid, row.owner_start, row.owner_boot):
            await end_lost_list(store, row)
    return lost


async def end_lost_list(store: RunStore, row: TaskListRow) -> None:
    """A durable list whose supervisor died: its running members (owned by that supervisor, their claude gone with
    it through pdeathsig) are recorded lost and any leftover killed, the members it never started get skipped rows,
    and the list is recorded failed with the reason, then its ``finished`` event. Safe to run from several front
    ends at once (each write is conditional)."""
    why = f"the list's supervisor (process {row.owner_pid}) died"
    for run_id, raw, _ in await store.list_members(row.list_id):
        try:
            record = await store.get(run_id)
        except RunNotFoundError:
            with contextlib.suppress(InvalidRequestError):  # another front end recorded it first
                await store.record_skipped(RunRequest.model_validate_json(raw), f"skipped: {why}")
            continue
        if record.status.finished or process.owner_alive(record.owner_pid, record.owner_start, record.owner_boot):
            continue
        killed = process.kill_marked_group(record.pgid, run_id)
        note = f"{why}; {killed} leftover process(es) killed" if killed else why
        if await store.mark_lost_if_unfinished(run_id, note):
            log.info("run %s marked lost: %s", run_id, note)
        if await store.load_request(run_id) is not None:
            await store.append_finished_event(run_id, json.dumps({"status": RunStatus.LOST.value}))
    if await store.finish_list(row.list_id, "failed", why):
        log.info("task list %s ended: %s", row.list_id, why)
    await store.append_list_finished_event(row.list_id)


async def connect_registry(path: Path | None = None) -> RunStore:
    """The run registry (default: the state dir), with runs of dead owners reconciled: how every front end opens it."""
    store = await RunStore.connect(path or db_path())
    try:
        await reconcile(store)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await store.close()
        raise
    return store


@asynccontextmanager
async def open_store(path: Path | None = None) -> AsyncIterator[RunStore]:
    """The run registry at ``path`` (default: the state dir), with stale runs reconciled on open, closed on exit
    (``cc_executor.api.open_store`` for library users)."""
    store = await connect_registry(path)
    try:
        yield store
    finally:
        with anyio.CancelScope(shield=True):
            await store.close()
