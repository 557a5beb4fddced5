"""The command line with durable runs: `run --detach` returns at once, `show --follow` attaches from another process
(live progress, result, an exit code saying how the run ended), `runs --watch` is a live table on a terminal (a
pty). Real CLI processes, the real `claude` against the fake API; nothing of the runs is left afterwards."""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import struct
import sys
import termios
import time
import uuid
from pathlib import Path

import anyio
import pytest

from cc_executor.api import build_request
from cc_executor.backends import DurableBackend, ListRequest
from cc_executor.engine.process import marked_processes
from cc_executor.models import CCExecutorConfig
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CLI = [sys.executable, "-m", "cc_executor.cli"]


@pytest.fixture
def env(config: CCExecutorConfig, state_home: Path) -> dict[str, str]:
    return {
        **os.environ,
        **config.env,
        "CC_EXECUTOR_HOME": str(state_home),
        "CC_EXECUTOR_CLAUDE": str(config.claude_path),
    }


def detach_args(workdir: Path, task: str = "long job") -> list[str]:
    return [
        *CLI,
        "run",
        "--detach",
        task,
        "--cwd",
        str(workdir),
        "--allowed-tools",
        "Bash",
        "--model",
        "claude-sonnet-4-5",
    ]


async def detach(env: dict[str, str], workdir: Path) -> tuple[str, float]:
    started = time.monotonic()
    result = await anyio.run_process(detach_args(workdir), env=env, check=False)
    assert result.returncode == 0, result.stderr.decode()
    run_id = result.stdout.decode().strip()
    assert len(run_id) == 36, result.stdout
    assert "show " in result.stderr.decode() and "--follow" in result.stderr.decode()
    return run_id, time.monotonic() - started


async def until_gone(run_id: str, timeout_s: float = 10) -> None:
    with anyio.fail_after(timeout_s):
        while marked_processes(run_id):  # noqa: ASYNC110 (polling /proc)
            await anyio.sleep(0.1)


async def test_run_detach_returns_at_once_and_show_follow_attaches_from_another_process(
    env: dict[str, str], fake_api: FakeAnthropic, workdir: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=3, seconds=1, final="followed to the end")
    run_id, took_s = await detach(env, workdir)
    follow = await anyio.run_process([*CLI, "show", run_id[:8], "--follow"], env=env, check=False)
    stderr = follow.stderr.decode()
    assert follow.returncode == 0, stderr
    assert took_s < 5, took_s  # includes this interpreter's start; the run itself takes 3+ s
    assert "Bash: sleep 1" in stderr and "success" in stderr
    assert follow.stdout.decode().strip() == "followed to the end"
    await until_gone(run_id)


async def test_show_follow_exits_3_when_the_run_is_cancelled_meanwhile(
    env: dict[str, str], fake_api: FakeAnthropic, workdir: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=20, seconds=1)
    run_id, _ = await detach(env, workdir)
    async with await anyio.open_process([*CLI, "show", run_id, "--follow"], env=env) as follower:
        await anyio.sleep(3)
        cancel = await anyio.run_process([*CLI, "cancel", run_id[:8]], env=env, check=False)
        with anyio.fail_after(15):
            code = await follower.wait()
    assert cancel.returncode == 0, cancel.stderr.decode()
    assert code == 3
    await until_gone(run_id)


async def test_runs_watch_on_a_terminal_shows_the_run_and_its_latest_progress(
    env: dict[str, str], fake_api: FakeAnthropic, workdir: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=8, seconds=1)
    run_id, _ = await detach(env, workdir)
    primary, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
    os.set_blocking(primary, False)
    screen = b""
    try:
        async with await anyio.open_process(
            [*CLI, "runs", "--watch"], stdin=secondary, stdout=secondary, stderr=secondary, env=env
        ) as watcher:
            os.close(secondary)
            with anyio.fail_after(30):
                while not (run_id[:8].encode() in screen and b"Bash: sleep" in screen):
                    screen += _read_available(primary)
                    await anyio.sleep(0.1)
            watcher.send_signal(signal.SIGINT)
            with anyio.fail_after(10):
                code = await watcher.wait()
    finally:
        os.close(primary)
    assert code == 0
    assert b"runs in flight" in screen and b"running" in screen
    cancel = await anyio.run_process([*CLI, "cancel", run_id], env=env, check=False)
    assert cancel.returncode == 0
    await until_gone(run_id)


def _read_available(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return b""
    except OSError as exc:  # EIO: the other side closed
        if exc.errno == errno.EIO:
            return b""
        raise


async def test_show_runs_and_cancel_reach_a_task_its_durable_list_has_not_started(
    env: dict[str, str], fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path, state_home: Path
) -> None:
    fake_api.routes = {
        "ALPHA": scenarios.slow(steps=3, seconds=1, final="ALPHA-DONE"),
        "GAMMA": scenarios.text("GAMMA-DONE"),
    }
    list_id = str(uuid.uuid4())
    with_bash = config.model_copy(update={"allowed_tools": ["Bash"]})
    requests = [
        build_request(task, config=with_bash, cwd=workdir, list_id=list_id)
        for task in ("task ALPHA", "task BETA", "task GAMMA")
    ]
    alpha, beta, gamma = (r.run_id for r in requests)
    async with DurableBackend(state_home) as backend:  # leaving it leaves the list running under its supervisor
        await backend.submit_list(ListRequest(list_id=list_id, requests=requests))
        with anyio.fail_after(30):
            async for event in backend.events(alpha):
                if event.progress is not None and "Bash" in event.progress.message:
                    break
    show = await anyio.run_process([*CLI, "show", gamma[:8]], env=env, check=False)
    table = await anyio.run_process([*CLI, "runs", "--list", list_id], env=env, check=False)
    cancel = await anyio.run_process([*CLI, "cancel", beta[:8]], env=env, check=False)
    async with DurableBackend(state_home) as backend:
        outcome = await backend.list_outcome(list_id, timeout_s=60)
    shown = dict(line.split(None, 1) for line in show.stdout.decode().splitlines() if line and "  " in line)
    assert show.returncode == 0, show.stderr.decode()
    assert shown["status"] == "pending" and shown["task"] == "task GAMMA" and shown["transcript"] == "(none yet)"
    assert shown["list"] == f"{list_id} (task 3)" and "pending: task 3 of 3" in shown["progress"]
    rows = [line.split()[:2] for line in table.stdout.decode().splitlines()[1:]]
    assert rows == [[gamma[:8], "pending"], [beta[:8], "pending"], [alpha[:8], "running"]], table.stdout.decode()
    assert cancel.returncode == 0 and f"skipped run {beta}" in cancel.stderr.decode(), cancel.stderr.decode()
    assert [m.state for m in outcome.members] == ["finished", "skipped", "finished"]
    assert not any("task BETA" in r.text for r in fake_api.message_requests)  # nothing started for it
    for run_id in (alpha, beta, gamma):
        await until_gone(run_id)
