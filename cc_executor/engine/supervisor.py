"""The supervisor of one durable run: ``python -m cc_executor.engine.supervisor RUN_ID --home STATE_DIR``.

A durable run must outlive the front end that started it (an MCP server its host restarts, a ``cc-executor run
--detach``), so it is not executed in that front end. ``start_supervisor`` starts this module in its own session
(outside the front end's process group and session, so a host killing those leaves it alone), with stdin a pipe
and stdout/stderr appended to ``<state>/supervisors/<run_id>.log``. The front end records the run (row + request)
and then writes ``go`` on that pipe; if it dies or gives up first, the supervisor reads EOF and exits having done
nothing. So a run is never executed twice, and never executed unrecorded.

The supervisor then runs the one core, ``Run.execute``, exactly as an in-process backend would: claude under it
keeps its pdeathsig, so if the supervisor is SIGKILLed, claude and its tools go too, and the row (owned by the
supervisor's pid) becomes ``lost`` as soon as a front end looks at it (``DurableBackend``) or at the latest at the
next reconcile. It records the result once, then writes the run's ``finished`` event.

Progress goes to ``run_events`` as numbered events (bounded: the latest ``KEEP_EVENTS`` progress events plus the
finished one), which any front end follows with ``DurableBackend.events(run_id, after=seq)``.

Cancelling: any process marks the row cancelled and stops the tree by its marker (``engine.cancel``); the runner
then records ``cancelled`` with that reason. A watcher here also polls the row, so a run cancelled while it waits
for a slot (no CLI to signal yet) ends at once. SIGTERM/SIGINT/SIGHUP to the supervisor cancel the run too.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

from cc_executor.engine import process
from cc_executor.engine.file_slots import FileSlots
from cc_executor.engine.runner import Run, adopt_run
from cc_executor.models import ExecutionResult, ProgressUpdate, RunRequest, RunStatus
from cc_executor.paths import check_run_id, ensure_private_dir
from cc_executor.registry.store import RunStore

log = logging.getLogger("cc_executor.supervisor")

ENV_REQUEST_ENV = "CC_EXECUTOR_SUPERVISOR_ENV"
"""The request's ``config.env`` and ``config.mcp_config`` (often secrets), as JSON: handed over in the supervisor's
environment, never stored."""
KEEP_EVENTS = 200
_TRIM_EVERY = 50
_WATCH_S = 0.5
GO = b"go\n"


def supervisors_dir(home: Path) -> Path:
    return home / "supervisors"


def start_supervisor(
    run_id: str, home: Path, *, secrets: dict[str, object], max_concurrent: int | None = None
) -> subprocess.Popen[bytes]:
    """Start the supervisor of ``run_id`` (it waits for ``release``). Not in our session or process group, and
    without pdeathsig: it must outlive this process."""
    check_run_id(run_id)
    return spawn_detached("cc_executor.engine.supervisor", run_id, home, secrets, max_concurrent, log_name=run_id)


def spawn_detached(
    module: str, key: str, home: Path, secrets: object, max_concurrent: int | None, *, log_name: str
) -> subprocess.Popen[bytes]:
    """``python -m module KEY --home HOME`` in its own session, stdin a pipe (see ``release``), output appended to
    ``<state>/supervisors/<log_name>.log``; ``secrets`` reach it in its environment only."""
    logs = ensure_private_dir(supervisors_dir(home))
    argv = [sys.executable, "-m", module, "--home", str(home)]
    if max_concurrent is not None:
        argv += ["--max-concurrent", str(max_concurrent)]
    argv += ["--", key]  # a key is data, never an option
    env = {**os.environ, ENV_REQUEST_ENV: json.dumps(secrets)}
    # cwd: where this cc_executor package is importable from, installed or not (PYTHONPATH would leak into claude).
    package_root = Path(__file__).resolve().parents[2]
    fd = os.open(logs / f"{log_name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=fd,
            stderr=fd,
            cwd=package_root,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(fd)


def secrets_of(request: RunRequest) -> dict[str, object]:
    """What may hold secrets (``config.env``, ``config.mcp_config``: server env): handed to the supervisor in its
    environment, never written to the registry."""
    return {"env": dict(request.config.env), "mcp_config": request.config.mcp_config}


def with_secrets(request: RunRequest, secrets: dict[str, Any]) -> RunRequest:
    """A recorded request with its secrets (``secrets_of``) put back."""
    request.config.env = dict(secrets.get("env") or {})
    request.config.mcp_config = secrets.get("mcp_config")
    return request


def recordable(request: RunRequest, transcript_dir: Path) -> str:
    """The request as a supervisor loads it: the secrets left out (``secrets_of``), the transcript dir made
    explicit (the supervisor writes where the front end would)."""
    config = request.config.model_copy(update={"env": {}, "mcp_config": None, "transcript_dir": transcript_dir})
    return request.model_copy(update={"config": config}).model_dump_json()


def release(supervisor: subprocess.Popen[bytes], *, go: bool) -> None:
    """Tell a started supervisor to run (``go``: the run is recorded) or to exit without doing anything."""
    pipe = supervisor.stdin
    if pipe is None:
        return
    try:
        if go:
            pipe.write(GO)
        pipe.close()
    except OSError:
        pass  # it died already: the row's owner is dead and the run will be marked lost


class EventLog:
    """Writes one run's progress as numbered events, keeping the latest ``KEEP_EVENTS`` of them."""

    def __init__(self, store: RunStore, run_id: str, last_seq: int) -> None:
        self.store = store
        self.run_id = run_id
        self.seq = last_seq

    async def progress(self, update: ProgressUpdate) -> None:
        self.seq += 1
        await self.store.append_event(self.run_id, self.seq, "progress", update.model_dump_json())
        if self.seq % _TRIM_EVERY == 0:
            await self.store.trim_events(self.run_id, keep=KEEP_EVENTS)


def main(argv: Sequence[str] | None = None) -> int:
    started = released(argv, module="cc_executor.engine.supervisor", subject="run_id", kind="run")
    if started is None:
        return 0
    args, secrets = started
    return anyio.run(supervise, args.run_id, args.home, secrets, args.max_concurrent)


def released(
    argv: Sequence[str] | None, *, module: str, subject: str, kind: str
) -> tuple[argparse.Namespace, dict[str, Any]] | None:
    """A supervisor's start, shared by the run and the list supervisors: its arguments, logging to stderr (the
    front end points it at a log file), the secrets it was handed in its environment (taken out at once), then the
    front end's go (None: the front end did not record the ``kind``, so there is nothing to do) and stdin
    detached from the front end."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}")
    parser.add_argument(subject)
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--max-concurrent", type=int, default=None)
    args = parser.parse_args(argv)
    label = "supervisor" if kind == "run" else f"{kind} supervisor"
    logging.basicConfig(
        level=os.environ.get("CC_EXECUTOR_LOG_LEVEL", "INFO").upper(),
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s {label} {os.getpid()} {getattr(args, subject)[:8]}: %(message)s",
    )
    secrets = json.loads(os.environ.pop(ENV_REQUEST_ENV, "{}") or "{}")
    if sys.stdin.buffer.readline() != GO:
        log.info("the front end did not record the %s: nothing to do", kind)
        return None
    detach_stdin()
    return args, secrets


def detach_stdin() -> None:
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)


async def supervise(run_id: str, home: Path, secrets: dict[str, Any], max_concurrent: int | None) -> int:
    async with RunStore.open(home / "runs.db") as store:
        record = await store.get(run_id)
        if record.owner_pid != os.getpid():
            log.warning("run is owned by process %s, not this one: leaving it alone", record.owner_pid)
            return 0
        if record.status.finished:  # cancelled between being recorded and now
            await _finished_event(store, run_id, record.status)
            return 0
        try:
            status = await _execute(store, run_id, home, secrets, max_concurrent)
        except Exception as exc:
            log.exception("the run could not be executed")
            with anyio.CancelScope(shield=True):
                await store.mark_status(
                    run_id, RunStatus.FAILED, error_class="CLICrashError", error=f"the supervisor failed: {exc}"
                )
            status = RunStatus.FAILED
        with anyio.CancelScope(shield=True):
            await _finished_event(store, run_id, status)
        log.info("run ended: %s", status.value)
    return 0


async def _finished_event(store: RunStore, run_id: str, status: RunStatus) -> None:
    await store.append_finished_event(run_id, json.dumps({"status": status.value}))


async def _execute(
    store: RunStore, run_id: str, home: Path, secrets: dict[str, Any], max_concurrent: int | None
) -> RunStatus:
    raw = await store.load_request(run_id)
    if raw is None:
        raise RuntimeError("no request was recorded for this run")
    request = with_secrets(RunRequest.model_validate_json(raw), secrets)
    run = await adopt_run(request, store)
    events = EventLog(store, run_id, await store.last_event_seq(run_id))
    scope = anyio.CancelScope()
    async with anyio.create_task_group() as group:
        group.start_soon(_watch_signals, run, scope)
        with scope:
            result = await execute_watched(store, run, home, max_concurrent, events.progress)
        group.cancel_scope.cancel()
    if scope.cancelled_caught:
        return (await store.get(run_id)).status
    return result.status


async def execute_watched(
    store: RunStore,
    run: Run,
    home: Path,
    max_concurrent: int | None,
    on_progress: Callable[[ProgressUpdate], Awaitable[None]],
) -> ExecutionResult:
    """Run a recorded durable run here (a run's or a list's supervisor): slots shared through the state dir (FIFO
    among durable runs), and the row watched for a cancel request from another process. A cancel of the caller
    propagates (the runner records it)."""
    run_id = run.request.run_id

    async def ahead() -> int:
        """Earlier durable runs still waiting for a slot: queued, not holding one, their supervisor alive."""
        earlier = await store.queued_durable_before(run_id)
        holding = slots.holders() if earlier else set()
        return sum(1 for rid, owner in earlier if rid not in holding and owner and process.pid_alive(owner))

    slots = FileSlots(home / "slots", max_concurrent, holder=run_id, ahead=ahead)
    scope = anyio.CancelScope()
    async with anyio.create_task_group() as group:
        group.start_soon(_watch_row, store, run, scope)
        with scope:
            result = await run.execute(on_progress=on_progress, slots=slots)
        group.cancel_scope.cancel()
    if scope.cancelled_caught:
        return (await store.get(run_id)).to_result()
    return result


async def _watch_signals(run: Run, scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            run.set_cancel_reason(f"cancelled: the run's supervisor received {signal.Signals(signum).name}")
            scope.cancel()


async def _watch_row(store: RunStore, run: Run, scope: anyio.CancelScope) -> None:
    """A cancel request on the row ends the run even when there is no CLI to signal (still queued), or when the
    canceller's signals did not stop it within a few grace periods."""
    seen: float | None = None
    patience = 3 * run.config.kill_grace_s + 2.0
    while True:
        await anyio.sleep(_WATCH_S)
        record = await store.get(run.request.run_id)
        if record.status is not RunStatus.CANCELLED:
            continue
        seen = seen or time.monotonic()
        if record.pid is None or time.monotonic() - seen > patience:
            run.set_cancel_reason(record.error or "cancelled by request")
            scope.cancel()
            return


if __name__ == "__main__":
    sys.exit(main())
