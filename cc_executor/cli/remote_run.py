"""``cc-executor run`` through a backend that runs elsewhere (``CC_EXECUTOR_BACKEND=temporal``): submit, show
the run's progress events as they come, and print its result. SIGINT/SIGTERM cancel the run where it runs. In ask
mode on a terminal, the person answers the run's questions here as for a local run."""

from __future__ import annotations

import argparse
import os
import signal
import sys

import anyio
import anyio.abc

from cc_executor.backends.factory import BACKEND_ENV, open_backend
from cc_executor.cli.common import err, write_json
from cc_executor.cli.live_display import make_display
from cc_executor.models import ExecutionResult, RunRequest


def remote_backend_selected() -> bool:
    return os.environ.get(BACKEND_ENV, "").strip().lower() not in ("", "local")


async def run_remote(request: RunRequest, args: argparse.Namespace) -> tuple[ExecutionResult | None, int | None]:
    """The run's result (None when a signal cancelled it) and the signal, if one came."""
    display = make_display(quiet=args.quiet)
    interrupted: list[int] = []
    async with open_backend() as backend:
        await backend.preflight(request)
        run_id = await backend.submit(request)
        display.start(run_id, str(request.cwd))
        try:
            async with anyio.create_task_group() as group:

                async def watch(*, task_status: anyio.abc.TaskStatus[None]) -> None:
                    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                        task_status.started()
                        async for signum in signals:
                            interrupted.append(signum)
                            name = "Ctrl-C (SIGINT)" if signum == signal.SIGINT else signal.Signals(signum).name
                            err(f"cc-executor: cancelling run {run_id} on its worker ...")
                            await backend.cancel(run_id, f"interrupted by {name}; process tree killed")
                            group.cancel_scope.cancel()
                            return

                await group.start(watch)
                if request.config.permission_prompts == "ask" and sys.stdin.isatty() and sys.stderr.isatty():
                    from cc_executor.cli.terminal_approvals import answer_on_terminal

                    group.start_soon(answer_on_terminal, backend, run_id, display)
                async for event in backend.events(run_id):
                    if event.progress is not None:
                        await display.update(event.progress)
                group.cancel_scope.cancel()
        finally:
            display.stop()
        if interrupted:
            record = await backend.status(run_id)
            if args.json:
                write_json(record.to_result().model_dump(mode="json"))
            err(f"cc-executor: {record.status.value}: run {run_id} ({record.error or 'interrupted'})")
            return None, interrupted[0]
        return await backend.wait(run_id, 60.0), None
