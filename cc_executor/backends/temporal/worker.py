"""A worker process: polls the shared task queue for runs and its own queue for transcript pages.

SIGTERM (or SIGINT) stops it gracefully: it stops taking runs at once, lets the runs it has finish within
``graceful_s``, and at that deadline kills their trees and hands them back (a retryable failure, so another worker
takes them over). Its identity (host:pid unless given) is logged and recorded on every run it executes.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import anyio
from temporalio.worker import PollerBehaviorSimpleMaximum, UnsandboxedWorkflowRunner, Worker

from cc_executor.backends.temporal.activity import RunActivities
from cc_executor.backends.temporal.client import connect
from cc_executor.backends.temporal.list_activity import member_context
from cc_executor.backends.temporal.list_workflow import ListWorkflow
from cc_executor.backends.temporal.settings import TemporalSettings
from cc_executor.backends.temporal.workflow import RunWorkflow, TranscriptPageWorkflow
from cc_executor.engine.recovery import connect_registry
from cc_executor.engine.slots import RunSlots
from cc_executor.paths import DB_NAME, TRANSCRIPTS_NAME, ensure_private_dir, state_dir

log = logging.getLogger(__name__)

DEFAULT_GRACEFUL_S = 600.0
WORKER_DIR = "worker"  # under the state dir: the worker's own runs.db and transcripts/
MIN_POLLS = 5  # the SDK's default number of workflow task polls


def default_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def default_max_concurrent() -> int:
    return os.cpu_count() or 1


def worker_state_dir() -> Path:
    """``<state dir>/worker``: a worker's registry and transcripts, apart from a front end's. A worker and a front
    end on one machine share the state dir by default (docs/scale-out.md's one-machine example); in one runs.db the
    worker's copy of a run would replace the front end's row for it (same run id), and its transcript the copy the
    front end keeps."""
    return ensure_private_dir(state_dir() / WORKER_DIR)


def transcript_queue(task_queue: str, identity: str) -> str:
    """The worker's own queue: only it can read the transcripts it wrote."""
    return f"{task_queue}@{re.sub(r'[^A-Za-z0-9_.:@-]', '_', identity)}"


async def run_worker(
    settings: TemporalSettings,
    *,
    identity: str | None = None,
    max_concurrent: int | None = None,
    graceful_s: float = DEFAULT_GRACEFUL_S,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or the caller's cancel); leftovers of a previous worker here are swept first."""
    identity = identity or default_identity()
    limit = max_concurrent or default_max_concurrent()
    client = await connect(settings, identity=identity)
    # The worker's own registry: reconciling it kills what a previous worker here left behind (SIGKILL).
    home = worker_state_dir()
    store = await connect_registry(home / DB_NAME)
    own_queue = transcript_queue(settings.task_queue, identity)
    activities = RunActivities(
        identity=identity,
        transcript_queue=own_queue,
        store=store,
        slots=RunSlots(limit),
        transcript_dir=ensure_private_dir(home / TRANSCRIPTS_NAME),
    )
    throttle = timedelta(seconds=1)
    runs = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[RunWorkflow, ListWorkflow],  # a list's workflow drives its members as child run workflows
        activities=[activities.execute_run, member_context],  # member_context: the list's local activity
        # The workflows import only temporalio and the standard library and decide nothing from the clock or the
        # environment; the sandbox would re-import them for every run at a cost of CPU per workflow task.
        workflow_runner=UnsandboxedWorkflowRunner(),
        max_concurrent_activities=limit,
        # Every run is a new workflow: its first workflow task comes through the shared (non-sticky) queue, which
        # the SDK's default gives one of a worker's 5 workflow polls. A burst of runs then waits on that poll's
        # round trips: 16 runs submitted at once to 2 workers here got their first workflow task over 1.1 s (the
        # last activity started 1.5-2.4 s after the submits), against 0.2 s (0.8 s) with a poll per slot, half of
        # them non-sticky. Activity polls stay at the SDK's 5: a poll per slot as well made a lone run ~6 ms slower.
        workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(max(MIN_POLLS, limit)),
        nonsticky_to_sticky_poll_ratio=0.5,
        identity=identity,
        graceful_shutdown_timeout=timedelta(seconds=graceful_s),
        max_heartbeat_throttle_interval=throttle,
        default_heartbeat_throttle_interval=throttle,
    )
    pages = Worker(
        client,
        task_queue=own_queue,
        workflows=[TranscriptPageWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
        # execute_run: resumed runs
        activities=[activities.transcript_page, activities.transcript_bytes, activities.execute_run],
        max_concurrent_activities=limit + 4,
        identity=identity,
        max_heartbeat_throttle_interval=throttle,
        default_heartbeat_throttle_interval=throttle,
    )
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(runs.run)
            group.start_soon(pages.run)
            log.info(
                "worker %s serving task queue %r (namespace %r at %s), up to %d run(s) at once; transcripts on %r",
                identity,
                settings.task_queue,
                settings.namespace,
                settings.address,
                limit,
                own_queue,
            )
            if on_ready is not None:
                on_ready(identity)
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    log.info(
                        "worker %s got %s: taking no new runs; running ones get %.0fs to finish",
                        identity,
                        signal.Signals(signum).name,
                        graceful_s,
                    )
                    break
            with anyio.CancelScope(shield=True):
                await runs.shutdown()
                await pages.shutdown()
            group.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await store.close()
        log.info("worker %s stopped", identity)
