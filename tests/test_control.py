"""The control protocol with the real CLI: the prompt over stdin, stdin closed right after the result, and what
would prompt a person denied by default (permission_prompts="deny", today's behaviour)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio
import pytest

from cc_executor import CCExecutorConfig, RunStatus, cc_execute
from cc_executor.api import build_request
from cc_executor.engine import process
from cc_executor.engine.command import build_argv, build_env
from cc_executor.engine.control import ControlChannel, PermissionDecision, PermissionRequest, control_message
from cc_executor.engine.events import Event, ResultEvent
from cc_executor.engine.process import marked_processes
from cc_executor.engine.stream import Line, LineFramer
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic

pytestmark = pytest.mark.anyio


def touch_scenario(target: Path) -> scenarios.Scenario:
    """A Bash step that really needs permission under acceptEdits (an absolute /usr/bin/touch is asked about;
    a plain `touch` in cwd is auto-approved by the CLI)."""
    return scenarios.bash(f"/usr/bin/touch {target}", final="tried to touch")


async def test_the_cli_exits_right_after_its_result(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.text("hello over stream-json")
    result_at: list[float] = []

    def on_event(event: Event) -> None:
        if isinstance(event, ResultEvent):
            result_at.append(time.monotonic())

    result = await cc_execute("say hi", config=config, cwd=workdir, on_event=on_event)
    returned_at = time.monotonic()
    assert result.ok and result.result == "hello over stream-json"
    assert "say hi" in fake_api.message_requests[0].text  # the prompt went over stdin as a user message
    assert len(result_at) == 1 and returned_at - result_at[0] < 3.0, returned_at - result_at[0]
    assert marked_processes(result.run_id) == []


async def test_what_would_prompt_is_denied_and_listed_by_default(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    target = workdir / "made.txt"
    fake_api.scenario = touch_scenario(target)
    result = await cc_execute("touch a file", config=config, cwd=workdir)
    assert result.status is RunStatus.SUCCESS
    assert not target.exists()
    assert [d["tool_name"] for d in result.permission_denials] == ["Bash"]
    assert "permission_prompts=deny" in fake_api.message_requests[-1].text  # the model was told why
    assert marked_processes(result.run_id) == []


async def test_a_question_the_cli_withdraws_is_not_answered(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    """The real CLI sends control_cancel_request for a pending can_use_tool when its turn is interrupted: the
    handler is cancelled (the question withdrawn everywhere) and no answer is written for it."""
    fake_api.scenario = touch_scenario(workdir / "made.txt")
    request = build_request("touch", config=config, cwd=workdir)
    argv = build_argv(request, str(config.claude_path))
    child = await process.spawn(argv, cwd=workdir, env=build_env(request), marker=request.run_id)
    asked, withdrawn = anyio.Event(), anyio.Event()
    withdrawn_before_result: list[bool] = []  # (closing stdin at the result would cancel it anyway)

    async def pending_forever(question: PermissionRequest) -> PermissionDecision:
        asked.set()
        try:
            await anyio.sleep_forever()
        finally:
            withdrawn.set()
        raise AssertionError("unreachable")

    try:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                assert child.process.stdin is not None and child.process.stdout is not None
                channel = ControlChannel(child.process.stdin, group, on_permission=pending_forever)
                await channel.open(request.prompt)

                async def interrupt_when_asked() -> None:
                    await asked.wait()
                    assert await channel.interrupt()

                group.start_soon(interrupt_when_asked)
                framer = LineFramer(1 << 20)
                async for chunk in child.process.stdout:
                    for item in framer.push(chunk):
                        assert isinstance(item, Line)
                        message = control_message(item.data)
                        if message is not None:
                            channel.handle(message)
                        else:
                            data = json.loads(item.data)
                            if data.get("type") == "result":
                                withdrawn_before_result.append(withdrawn.is_set())
                            await channel.observe(data)
                await child.process.wait()
    finally:
        with anyio.CancelScope(shield=True):
            await process.terminate_tree(child, grace_s=1.0)
    assert withdrawn_before_result == [True] and channel.pending == 0 and channel.result_seen
    assert not (workdir / "made.txt").exists()
    assert marked_processes(request.run_id) == []


async def test_stdin_stays_open_while_a_background_task_outlives_the_result(
    fake_config: CCExecutorConfig, workdir: Path
) -> None:
    config = fake_config.model_copy(update={"env": {"FAKE_CLAUDE_MODE": "background"}})
    started = time.monotonic()
    result = await cc_execute("start something in the background", config=config, cwd=workdir)
    assert result.ok and result.exit_code == 0  # exit 7 would mean stdin closed under a running task
    assert time.monotonic() - started < 20  # and closed right after the task ended: no hang
    assert marked_processes(result.run_id) == []
