"""The control protocol with the real CLI: the prompt over stdin, stdin closed right after the result, and what
would prompt a person denied by default (permission_prompts="deny", today's behaviour)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cc_executor import CCExecutorConfig, RunStatus, cc_execute
from cc_executor.engine.events import Event, ResultEvent
from cc_executor.engine.process import marked_processes
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
