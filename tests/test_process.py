"""Process-tree primitives on a fake CLI: spawn in its own session, the atexit reaper, the /proc walk."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import anyio
import pytest

from cc_executor import process

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
