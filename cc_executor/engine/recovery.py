"""Reconcile runs whose owner died: a row left ``running`` by a killed server or script is marked
``lost``, and any process still carrying that run's marker is killed."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import anyio

from cc_executor.engine import process
from cc_executor.models import RunStatus
from cc_executor.paths import db_path
from cc_executor.registry.store import RunStore

log = logging.getLogger(__name__)


async def reconcile(store: RunStore) -> list[str]:
    """Mark unfinished runs of dead owners as lost; returns their ids."""
    lost = []
    for record in await store.unfinished_runs():
        owner = record.owner_pid
        if owner is not None and (owner == os.getpid() or process.pid_alive(owner)):
            continue  # still owned by a live process (maybe this one)
        killed = process.kill_marked_group(record.pgid, record.run_id)
        note = (
            f"owner process {owner} died; {killed} leftover process(es) killed"
            if killed
            else f"owner process {owner} died"
        )
        await store.mark_status(record.run_id, RunStatus.LOST, error_class="RunLostError", error=note)
        log.info("run %s marked lost: %s", record.run_id, note)
        lost.append(record.run_id)
    return lost


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
