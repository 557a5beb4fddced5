"""Nothing a caller sends becomes a CLI flag: checked on the real pinned CLI against the fake API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cc_executor import CCExecutorConfig, InvalidRequestError, RunStatus, cc_execute, open_store
from cc_executor.engine.events import Event, InitEvent
from cc_executor.engine.process import marked_processes
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic

pytestmark = pytest.mark.anyio


async def test_a_tool_rule_that_is_a_flag_is_refused_before_anything_starts(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    """The reproduced attack: on main a4df1a2 this ran the CLI in bypassPermissions (with IS_SANDBOX=1)."""
    attack = ["Read", "--permission-mode=bypassPermissions"]
    sandboxed = {**config.model_dump(), "env": {**config.env, "IS_SANDBOX": "1"}}
    with pytest.raises(ValueError, match=r"allowed_tools\n.*'--permission-mode=bypassPermissions' is not a tool rule"):
        CCExecutorConfig.model_validate({**sandboxed, "allowed_tools": attack})
    # Assembled without validation, it is still refused where argv is built, before the row is written.
    unchecked = CCExecutorConfig.model_construct(**{**sandboxed, "allowed_tools": attack})
    with pytest.raises(InvalidRequestError, match="allowed_tools: '--permission-mode=bypassPermissions'"):
        await cc_execute("hi", cwd=workdir, config=unchecked)
    assert fake_api.message_requests == []
    async with open_store() as store:
        assert await store.list_runs() == []


async def test_a_value_starting_with_dashes_stays_a_value_for_the_real_cli(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    """A system prompt may be any text, even flag-like: as `--append-system-prompt=<text>` the CLI reads it as
    text. IS_SANDBOX=1 is set so that, were it read as a flag, the CLI would really run in bypassPermissions."""
    fake_api.scenario = scenarios.text("fine")
    events: list[Event] = []
    sneaky = "--permission-mode=bypassPermissions MARKER-7f3a"
    run_config = config.model_copy(
        update={"env": {**config.env, "IS_SANDBOX": "1"}, "append_system_prompt": sneaky, "allowed_tools": ["Read"]}
    )
    result = await cc_execute("hi", cwd=workdir, config=run_config, on_event=events.append)

    assert result.status is RunStatus.SUCCESS
    init = next(e for e in events if isinstance(e, InitEvent))
    assert init.permission_mode == "acceptEdits" and init.model == config.model
    body = json.dumps(fake_api.message_requests[0].body.get("system"))
    assert sneaky in body and fake_api.message_requests[0].body["model"] == config.model
    async with open_store() as store:
        argv = (await store.get(result.run_id)).argv
    assert "--permission-mode=acceptEdits" in argv and f"--append-system-prompt={sneaky}" in argv
    assert marked_processes(result.run_id) == []


async def test_one_flag_per_tool_rule_adds_up_in_the_real_cli(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    """`--allowedTools=Read --allowedTools=Bash`: the CLI accumulates repeated flags (Bash runs unprompted), and a
    disallowed rule still wins over an allowed one."""
    fake_api.scenario = scenarios.bash("touch made-by-bash")
    allowed = config.model_copy(update={"permission_mode": "default", "allowed_tools": ["Read", "Bash"]})
    result = await cc_execute("run it", cwd=workdir, config=allowed)
    assert result.ok and result.permission_denials == [] and (workdir / "made-by-bash").exists()
    assert result.files_created == ["made-by-bash"]

    (workdir / "made-by-bash").unlink()
    denied = allowed.model_copy(update={"disallowed_tools": ["Read", "Bash"]})
    await cc_execute("run it", cwd=workdir, config=denied, check=False)
    assert not (workdir / "made-by-bash").exists()
