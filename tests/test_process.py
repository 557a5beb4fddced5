"""Process-tree primitives on a fake CLI: spawn in its own session, the atexit reaper, the /proc walk, and stopping
a run's tree from another process (cancel_run)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from cc_executor.api import build_request
from cc_executor.engine import process
from cc_executor.engine.cancel import cancel_run
from cc_executor.models import RunStatus
from cc_executor.registry.store import MEMORY, RunStore

pytestmark = pytest.mark.anyio

FAKE_CLAUDE = Path(__file__).parent / "fake_claude.py"


async def spawn_fake(mode: str, tmp_path: Path, **env: str) -> process.ChildProcess:
    marker = str(uuid.uuid4())
    full_env = {**os.environ, "FAKE_CLAUDE_MODE": mode, "CC_EXECUTOR_RUN_ID": marker, **env}
    child = await process.spawn([str(FAKE_CLAUDE)], cwd=tmp_path, env=full_env, marker=marker)
    assert child.process.stdin is not None and child.process.stdout is not None
    await child.process.stdin.aclose()
    await child.process.stdout.receive()  # the init line: its signal handlers are in place
    return child


async def wait_gone(pids: list[int]) -> list[int]:
    for _ in range(50):
        alive = [p for p in pids if process.pid_alive(p)]
        if not alive:
            return []
        await anyio.sleep(0.1)
    return alive


async def test_child_runs_in_its_own_session(tmp_path: Path) -> None:
    child = await spawn_fake("ignore_term", tmp_path)
    try:
        assert os.getpgid(child.pid) == child.pid and os.getsid(child.pid) == child.pid
        assert os.getsid(child.pid) != os.getsid(0)
    finally:
        await process.terminate_tree(child, grace_s=0.3)
    assert child.returncode == -9  # it ignored SIGINT and SIGTERM, so SIGKILL it was


async def test_interpreter_exit_reaper_kills_what_is_left(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids.json"
    child = await spawn_fake(
        "grandchildren", tmp_path, FAKE_CLAUDE_PIDFILE=str(pidfile), FAKE_CLAUDE_GRANDCHILD_STDIO="devnull"
    )
    for _ in range(50):
        if pidfile.exists():
            break
        await anyio.sleep(0.05)
    grandchildren = json.loads(pidfile.read_text())
    process.reap_all()  # what atexit runs
    assert await wait_gone([child.pid, *grandchildren]) == []
    assert process.marked_processes(child.marker) == []
    await child.process.wait()


async def test_descendants_follows_parent_links(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids.json"
    child = await spawn_fake(
        "grandchildren", tmp_path, FAKE_CLAUDE_PIDFILE=str(pidfile), FAKE_CLAUDE_GRANDCHILD_STDIO="devnull"
    )
    try:
        for _ in range(50):
            if pidfile.exists():
                break
            await anyio.sleep(0.05)
        plain, new_session, daemon = json.loads(pidfile.read_text())
        tree = process.descendants(child.pid)
        assert plain in tree and new_session in tree and daemon not in tree  # the daemon was reparented to init
        assert set(process.marked_processes(child.marker)) >= {child.pid, plain, new_session, daemon}
    finally:
        await process.terminate_tree(child, grace_s=0.3)
    leftovers = process.marked_processes(child.marker)
    assert [(p, Path(f"/proc/{p}/stat").read_text()) for p in leftovers] == []


@asynccontextmanager
async def stubborn_marked_tree(marker: str) -> AsyncIterator[anyio.abc.Process]:
    """A group leader that ignores SIGINT/SIGTERM with a child, both carrying ``marker``; plus a bystander that
    must survive. Yields the leader once both marked processes exist."""
    stubborn = "trap '' INT TERM; sleep 30 & wait"
    marked = await anyio.open_process(
        ["sh", "-c", stubborn], env={**os.environ, "CC_EXECUTOR_RUN_ID": marker}, start_new_session=True
    )
    bystander = await anyio.open_process(["sleep", "30"], start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        with anyio.fail_after(5):
            while len(process.marked_processes(marker)) < 2:  # noqa: ASYNC110 (polling /proc)
                await anyio.sleep(0.02)
        yield marked
        assert bystander.returncode is None and process.pid_alive(bystander.pid)
    finally:
        for proc in (bystander, marked):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def test_stop_marked_escalates_to_sigkill_and_only_touches_marked_processes() -> None:
    marker = f"unit-stop-marked-{uuid.uuid4()}"  # unique: other suites may run beside this one
    async with stubborn_marked_tree(marker) as leader:
        signalled = await process.stop_marked(leader.pid, marker, grace_s=0.2)
        assert signalled == 2
        assert process.marked_processes(marker) == []
        assert await leader.wait() == -signal.SIGKILL


async def test_cancel_run_marks_the_row_then_stops_the_tree_of_another_owner(tmp_path: Path) -> None:
    request = build_request("owned elsewhere", cwd=tmp_path)
    async with RunStore.open(MEMORY) as store, stubborn_marked_tree(request.run_id) as leader:
        await store.create_run(request, argv=["claude"], owner_pid=os.getppid())
        await store.mark_started(request.run_id, pid=leader.pid, pgid=leader.pid)

        outcome = await cancel_run(store, request.run_id, reason="cancelled: first reason", grace_s=0.2)
        again = await cancel_run(store, request.run_id, reason="cancelled: second reason", grace_s=0.2)
        row = await store.get(request.run_id)

        assert (outcome.cancelled, outcome.status, outcome.signalled, outcome.remaining) == (
            True,
            RunStatus.CANCELLED,
            2,
            0,
        )
        assert (again.cancelled, again.status, again.signalled) == (False, RunStatus.CANCELLED, 0)
        assert row.status is RunStatus.CANCELLED and row.error == "cancelled: first reason"
        assert row.error_class == "RunCancelledError" and row.finished_at is not None
