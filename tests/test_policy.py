"""The operator's policy (cc_executor.policy): read from the environment, applied in the core, so the library, the
CLI and the MCP server obey it alike; a refusal names the setting that would allow the request."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from cc_executor_mcp.app import create_server
from cc_executor_mcp.settings import ServerSettings
from mcp import Client
from mcp.types import TextContent

from cc_executor import (
    CCExecutorConfig,
    MaxTurnsError,
    PolicyError,
    RunStatus,
    build_request,
    cc_execute,
    cc_execute_list,
    open_store,
)
from cc_executor.engine.events import Event, InitEvent
from cc_executor.policy import (
    ENV_ALLOW_RUN_MCP_CONFIG,
    ENV_ALLOWED_DIRS,
    ENV_ALLOWED_PERMISSION_MODES,
    ENV_ALLOWED_SETTING_SOURCES,
    ENV_ALWAYS_ALLOWED_TOOLS,
    ENV_ALWAYS_DISALLOWED_TOOLS,
    ENV_MAX_BUDGET_USD,
    ENV_MAX_TIMEOUT_S,
    ENV_MAX_TURNS,
    POLICY_VARIABLES,
    Policy,
)
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _no_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in POLICY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


async def no_trace(fake_api: FakeAnthropic) -> None:
    """Nothing happened: no request reached the API, no row was written."""
    assert fake_api.message_requests == []
    async with open_store() as store:
        assert await store.list_runs() == []


# --- reading the settings --------------------------------------------------------------------------------------


def test_the_default_policy_withholds_only_bypass() -> None:
    policy = Policy.from_env({})
    assert "bypassPermissions" not in policy.permission_modes and "acceptEdits" in policy.permission_modes
    assert policy.allowed_dirs is None and policy.max_turns is None and policy.always_allowed_tools == ()


def test_settings_are_parsed(tmp_path: Path) -> None:
    policy = Policy.from_env(
        {
            ENV_ALLOWED_PERMISSION_MODES: "plan, bypassPermissions",
            ENV_ALLOWED_DIRS: f"{tmp_path}{os.pathsep}/",
            ENV_MAX_TIMEOUT_S: "600",
            ENV_MAX_TURNS: "12",
            ENV_MAX_BUDGET_USD: "2.5",
            ENV_ALWAYS_ALLOWED_TOOLS: "Read, Bash(git log:*)",
            ENV_ALWAYS_DISALLOWED_TOOLS: "WebFetch,Bash(curl a,b:*)",
        }
    )
    assert policy.permission_modes == ("plan", "bypassPermissions")
    assert policy.allowed_dirs == (tmp_path.resolve(), Path("/"))
    assert (policy.max_timeout_s, policy.max_turns, policy.max_budget_usd) == (600.0, 12, 2.5)
    assert policy.always_allowed_tools == ("Read", "Bash(git log:*)")
    assert policy.always_disallowed_tools == ("WebFetch", "Bash(curl a,b:*)")
    assert policy.describe()[ENV_MAX_TURNS] == "12"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (ENV_ALLOWED_PERMISSION_MODES, "acceptEdits,yolo", "unknown permission mode 'yolo'"),
        (ENV_ALLOWED_DIRS, "relative/dir", "not an absolute path"),
        (ENV_ALLOWED_DIRS, "/no/such/dir/anywhere", "not a directory"),
        (ENV_MAX_TIMEOUT_S, "-5", "not a number greater than 0"),
        (ENV_MAX_TIMEOUT_S, "nan", "not a number greater than 0"),
        (ENV_MAX_TURNS, "1.5", "not a whole number"),
        (ENV_MAX_BUDGET_USD, "inf", "not a number greater than 0"),
        (ENV_ALWAYS_ALLOWED_TOOLS, "Read,--permission-mode=bypassPermissions", "is not a tool rule"),
    ],
)
def test_a_bad_setting_is_named(name: str, value: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message) as caught:
        Policy.from_env({name: value})
    assert str(caught.value).startswith(f"{name}: ") and caught.value.setting == name


def test_directories_are_compared_after_resolving_links_and_dots(tmp_path: Path) -> None:
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    (allowed / "sub").mkdir(parents=True)
    outside.mkdir()
    (allowed / "link-out").symlink_to(outside)
    policy = Policy(allowed_dirs=(allowed.resolve(),))
    assert policy.enforce(build_request("x", cwd=allowed / "sub")).cwd == (allowed / "sub").resolve()
    for sneaky in (allowed / "link-out", allowed / ".." / "outside", allowed / "sub" / ".." / ".." / "outside"):
        with pytest.raises(PolicyError, match=f"cwd: .* is outside .*{ENV_ALLOWED_DIRS}"):
            policy.enforce(build_request("x", cwd=sneaky))
    extra = build_request("x", cwd=allowed, config=CCExecutorConfig(add_dirs=[allowed / "link-out"]))
    with pytest.raises(PolicyError, match=r"add_dirs\[0\]: .*really .*outside"):
        policy.enforce(extra)


def test_ceilings_fill_open_limits_and_refuse_higher_ones(tmp_path: Path) -> None:
    policy = Policy(max_turns=5, max_budget_usd=1.0, max_timeout_s=60.0, always_disallowed_tools=("WebFetch",))
    filled = policy.enforce(build_request("x", cwd=tmp_path, config=CCExecutorConfig(disallowed_tools=["Bash"])))
    assert filled.config.max_turns == 5 and filled.config.max_budget_usd == 1.0
    assert filled.config.disallowed_tools == ["Bash", "WebFetch"]
    assert policy.enforce(filled) == filled  # applying it twice changes nothing
    cases: list[tuple[dict[str, Any], str]] = [
        ({"max_turns": 6}, f"max_turns: 6 is more than the operator allows \\({ENV_MAX_TURNS}=5\\)"),
        ({"max_budget_usd": 1.5}, f"max_budget_usd: 1.5 .*{ENV_MAX_BUDGET_USD}=1"),
        ({"timeout": 61}, f"timeout_s: 61 seconds .*{ENV_MAX_TIMEOUT_S}=60"),
    ]
    for fields, message in cases:
        with pytest.raises(PolicyError, match=message):
            policy.enforce(build_request("x", cwd=tmp_path, config=CCExecutorConfig(**fields)))
    predicted = build_request("x", cwd=tmp_path, config=CCExecutorConfig(timeout=1800), timeout_basis="history")
    capped = policy.cap_timeout(predicted)
    assert capped.timeout_s == 60 and capped.timeout_basis == f"history; capped at {ENV_MAX_TIMEOUT_S}=60"


# --- applied to real runs ----------------------------------------------------------------------------------------


async def test_bypass_is_refused_unless_the_operator_allows_it(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_api.scenario = scenarios.text("bypassing")
    bypass = config.model_copy(
        update={"permission_mode": "bypassPermissions", "env": {**config.env, "IS_SANDBOX": "1"}}
    )
    with pytest.raises(PolicyError, match=f"'bypassPermissions' is not allowed .*{ENV_ALLOWED_PERMISSION_MODES}"):
        await cc_execute("hi", cwd=workdir, config=bypass)
    await no_trace(fake_api)

    monkeypatch.setenv(ENV_ALLOWED_PERMISSION_MODES, "acceptEdits,bypassPermissions")
    events: list[Event] = []
    result = await cc_execute("hi", cwd=workdir, config=bypass, on_event=events.append)
    assert result.ok and next(e for e in events if isinstance(e, InitEvent)).permission_mode == "bypassPermissions"
    with pytest.raises(PolicyError, match="'plan' is not allowed"):
        await cc_execute("hi", cwd=workdir, config=config.model_copy(update={"permission_mode": "plan"}))


async def test_a_cwd_outside_the_allowed_dirs_is_refused(
    fake_api: FakeAnthropic, config: CCExecutorConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (allowed / "escape").symlink_to(outside)
    monkeypatch.setenv(ENV_ALLOWED_DIRS, str(allowed))
    for cwd in (outside, allowed / "escape", allowed / ".." / "outside"):
        with pytest.raises(PolicyError, match=ENV_ALLOWED_DIRS):
            await cc_execute("hi", cwd=cwd, config=config)
    await no_trace(fake_api)
    fake_api.scenario = scenarios.text("inside")
    assert (await cc_execute("hi", cwd=allowed, config=config)).ok


async def test_max_turns_ceiling_applies_to_runs_that_name_none(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_MAX_TURNS, "1")
    fake_api.scenario = scenarios.bash("echo one")
    with pytest.raises(MaxTurnsError) as caught:
        await cc_execute("two turns", cwd=workdir, config=config.model_copy(update={"allowed_tools": ["Bash"]}))
    async with open_store() as store:
        argv = (await store.get(caught.value.result.run_id if caught.value.result else "")).argv
    assert "--max-turns=1" in argv


async def test_always_disallowed_tools_beat_a_callers_allowed_tools(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_ALWAYS_DISALLOWED_TOOLS, "Bash")
    fake_api.scenario = scenarios.bash("touch forbidden")
    await cc_execute("run it", cwd=workdir, config=config.model_copy(update={"allowed_tools": ["Bash"]}), check=False)
    assert not (workdir / "forbidden").exists()
    tools = [tool["name"] for tool in fake_api.message_requests[0].body.get("tools", [])]
    assert "Bash" not in tools and "Read" in tools


async def test_a_task_list_is_refused_whole_before_any_task_runs(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_MAX_TURNS, "3")
    tasks: list[Any] = ["fine", {"task": "too many turns", "overrides": {"max_turns": 9}}]
    with pytest.raises(PolicyError, match=f"tasks\\[2\\]: max_turns: 9 .*{ENV_MAX_TURNS}=3"):
        await cc_execute_list(tasks, config=config, cwd=workdir)
    await no_trace(fake_api)


async def test_the_cli_and_the_mcp_server_obey_it_too(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = await anyio.run_process(
        [
            sys.executable,
            "-m",
            "cc_executor.cli",
            "run",
            "hi",
            "--cwd",
            str(workdir),
            "--permission-mode",
            "bypassPermissions",
        ],
        env={**os.environ, **config.env, "IS_SANDBOX": "1"},
        check=False,
    )
    stderr = cli.stderr.decode()
    assert cli.returncode == 2 and ENV_ALLOWED_PERMISSION_MODES in stderr and "Traceback" not in stderr

    monkeypatch.setenv(ENV_MAX_BUDGET_USD, "0.5")
    settings = ServerSettings(cli_env=config.env, claude_path=config.claude_path, model=config.model)
    async with Client(create_server(settings)) as client:
        called = await client.call_tool("execute_task", {"task": "hi", "cwd": str(workdir), "max_budget_usd": 5})
    said = " ".join(c.text for c in called.content if isinstance(c, TextContent))
    assert called.is_error and f"{ENV_MAX_BUDGET_USD}=0.5" in said
    await no_trace(fake_api)


async def test_the_row_records_what_the_policy_added(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_ALWAYS_ALLOWED_TOOLS, "Read")
    monkeypatch.setenv(ENV_MAX_TIMEOUT_S, "120")
    fake_api.scenario = scenarios.text("ok")
    result = await cc_execute("hi", cwd=workdir, config=config)
    assert result.status is RunStatus.SUCCESS and result.timeout_s == 120
    assert result.timeout_basis and f"capped at {ENV_MAX_TIMEOUT_S}=120" in result.timeout_basis
    async with open_store() as store:
        assert "--allowedTools=Read" in (await store.get(result.run_id)).argv


async def test_a_policy_that_forbids_the_timeout_predictor_only_skips_the_prediction(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent predictor runs in plan mode; an operator who allows only acceptEdits gets the history estimate."""
    monkeypatch.setenv(ENV_ALLOWED_PERMISSION_MODES, "acceptEdits")
    fake_api.scenario = scenarios.text("ok")
    result = await cc_execute("hi", cwd=workdir, config=config.model_copy(update={"agent_predict_timeout": True}))
    assert result.ok and result.timeout_basis
    assert "agent prediction not run (PolicyError: permission_mode: 'plan' is not allowed" in result.timeout_basis
    assert len(fake_api.message_requests) == 1  # only the run itself reached the API


def test_setting_sources_and_run_mcp_servers_are_the_operators_call(tmp_path: Path) -> None:
    """A settings source loads hooks, an MCP server is a command the nested CLI starts: an operator can keep the
    user's settings out and allow only its own servers (CC_EXECUTOR_MCP_CONFIG)."""
    own = {"mcpServers": {"docs": {"command": "docs-server"}}}
    own_file = tmp_path / "mcp.json"
    own_file.write_text(json.dumps(own))
    policy = Policy.from_env(
        {
            ENV_ALLOWED_SETTING_SOURCES: "project,local",
            ENV_ALLOW_RUN_MCP_CONFIG: "0",
            "CC_EXECUTOR_MCP_CONFIG": str(own_file),
        }
    )
    assert policy.enforce(build_request("x", cwd=tmp_path)).config.setting_sources == ["project", "local"]
    assert policy.enforce(build_request("x", cwd=tmp_path, config=CCExecutorConfig(mcp_config=own)))
    with pytest.raises(PolicyError, match=f"setting_sources: 'user' is not allowed .*{ENV_ALLOWED_SETTING_SOURCES}"):
        policy.enforce(build_request("x", cwd=tmp_path, config=CCExecutorConfig(setting_sources=["user", "project"])))
    with pytest.raises(PolicyError, match="None loads every source, including 'user'"):
        policy.enforce(build_request("x", cwd=tmp_path, config=CCExecutorConfig(setting_sources=None)))
    theirs = CCExecutorConfig(mcp_config={"mcpServers": {"x": {"command": "/bin/sh", "args": ["-c", "id"]}}})
    with pytest.raises(PolicyError, match=f"mcp_config: .*not allowed .*{ENV_ALLOW_RUN_MCP_CONFIG}=1"):
        policy.enforce(build_request("x", cwd=tmp_path, config=theirs))
    assert Policy.from_env({}).enforce(build_request("x", cwd=tmp_path, config=theirs))  # the default allows it
    with pytest.raises(PolicyError, match=f"{ENV_ALLOW_RUN_MCP_CONFIG}: 'maybe' is not 0 or 1"):
        Policy.from_env({ENV_ALLOW_RUN_MCP_CONFIG: "maybe"})
    with pytest.raises(PolicyError, match="unknown setting source 'global'"):
        Policy.from_env({ENV_ALLOWED_SETTING_SOURCES: "global"})
