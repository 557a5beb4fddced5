"""Ask mode on the command line: `cc-executor run --permission-prompts ask` asks y/n/always on a terminal; off a
terminal the run waits and `cc-executor approve RUN` (another process) answers; `show` lists the decisions."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest

from cc_executor.api import open_store
from cc_executor.engine import process
from cc_executor.models import RunStatus
from cc_executor.testing.fake_api import FakeAnthropic, Scenario, Text, ToolUse
from cc_executor.testing.terminal import on_a_terminal

pytestmark = pytest.mark.anyio

CLI = [sys.executable, "-m", "cc_executor.cli"]
TEST_MODEL = "claude-sonnet-4-5"


@pytest.fixture
def env(cli_env: dict[str, str], claude_bin: Path) -> dict[str, str]:
    return {**os.environ, **cli_env, "CC_EXECUTOR_CLAUDE": str(claude_bin)}


def touch(target: Path) -> Scenario:
    return Scenario([ToolUse("Bash", {"command": f"/usr/bin/touch {target}", "description": "t"}), Text("done")])


async def test_on_a_terminal_the_person_answers_y(fake_api: FakeAnthropic, env: dict[str, str], workdir: Path) -> None:
    target = workdir / "made.txt"
    fake_api.scenario = touch(target)
    argv = [*CLI, "run", "touch it", "--cwd", str(workdir), "--model", TEST_MODEL, "--permission-prompts", "ask"]
    code, output = await on_a_terminal(argv, env, answers=[(b"Allow?", b"y\n")], within=60)
    assert code == 0, output
    assert "claude asks to use Bash" in output and str(target) in output
    assert target.exists()
    async with open_store() as store:
        (record,) = await store.list_runs()
        record = await store.get(record.run_id)
    assert [(a.decision, a.decided_by) for a in record.approvals] == [("allow", "person")]
    assert process.marked_processes(record.run_id) == []


async def test_off_a_terminal_cc_executor_approve_answers_and_show_lists_it(
    fake_api: FakeAnthropic, env: dict[str, str], workdir: Path
) -> None:
    target = workdir / "made.txt"
    fake_api.scenario = touch(target)
    argv = [*CLI, "run", "touch it", "--cwd", str(workdir), "--model", TEST_MODEL, "--permission-prompts", "ask"]
    async with await anyio.open_process(argv, env=env) as proc:
        with anyio.fail_after(60):
            run_id = ""
            while not run_id:
                async with open_store() as store:
                    waiting = await store.list_runs(status=RunStatus.WAITING_FOR_APPROVAL)
                run_id = waiting[0].run_id if waiting else ""
                await anyio.sleep(0.2)
            nothing = await anyio.run_process([*CLI, "approve", "0000"], env=env, check=False)
            approved = await anyio.run_process([*CLI, "approve", run_id[:8]], env=env, check=False)
            code = await proc.wait()
    assert nothing.returncode == 2 and b"0000" in nothing.stderr
    assert approved.returncode == 0, approved.stderr.decode()
    assert b"allow: Bash" in approved.stdout
    assert code == 0 and target.exists()
    shown = await anyio.run_process([*CLI, "show", run_id], env=env, check=False)
    assert b"allow by person" in shown.stdout and b"prompts ask" in shown.stdout, shown.stdout.decode()
    again = await anyio.run_process([*CLI, "approve", run_id, "--deny"], env=env, check=False)
    assert again.returncode == 2 and b"waits on no question" in again.stderr
    assert process.marked_processes(run_id) == []
