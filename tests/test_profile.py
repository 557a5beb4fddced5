"""The isolated nested profile, checked against what the real CLI loads: by default the user's own hooks and MCP
servers stay out of a nested run while the project's settings and CLAUDE.md still apply; setting_sources brings
the user's back; mcp_config gives the run its own servers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from cc_executor import CCExecutorConfig, cc_execute, open_store
from cc_executor.engine.events import Event, InitEvent
from cc_executor.engine.process import marked_processes
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic

pytestmark = pytest.mark.anyio

ECHO_SERVER: dict[str, Any] = {"command": sys.executable, "args": [str(Path(__file__).with_name("echo_mcp.py"))]}


@pytest.fixture
def user_setup(cli_env: dict[str, str], tmp_path: Path) -> Path:
    """A user-level Stop hook (it touches the returned marker) and a user-configured MCP server, in the fake HOME."""
    home = Path(cli_env["HOME"])
    marker = tmp_path / "user-stop-hook-ran"
    hook = {"hooks": [{"type": "command", "command": f"touch {marker}"}]}
    (home / ".claude").mkdir(exist_ok=True)
    (home / ".claude" / "settings.json").write_text(json.dumps({"hooks": {"Stop": [hook]}}))
    (home / ".claude.json").write_text(json.dumps({"mcpServers": {"userserver": ECHO_SERVER}}))
    return marker


async def run_and_init(config: CCExecutorConfig, workdir: Path) -> tuple[Any, dict[str, Any]]:
    inits: list[dict[str, Any]] = []

    def on_event(event: Event) -> None:
        if isinstance(event, InitEvent):
            inits.append(event.raw)

    result = await cc_execute("hi", config=config, cwd=workdir, on_event=on_event)
    assert result.ok, result.error
    assert marked_processes(result.run_id) == []
    return result, inits[0]


def server_names(init: dict[str, Any]) -> list[str]:
    return sorted(server["name"] for server in init.get("mcp_servers", []))


async def test_default_profile_keeps_the_users_hooks_and_servers_out_but_the_project_in(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path, user_setup: Path
) -> None:
    fake_api.scenario = scenarios.text()
    (workdir / "CLAUDE.md").write_text("PROJECT-MEMORY-MARKER\n")
    result, init = await run_and_init(config, workdir)

    assert not user_setup.exists()  # the user's Stop hook did not run
    assert server_names(init) == []  # nor did the user's MCP server start
    assert "PROJECT-MEMORY-MARKER" in fake_api.message_requests[0].text  # the project's CLAUDE.md applies
    async with open_store() as store:
        record = await store.get(result.run_id)
    assert record.profile == {
        "setting_sources": ["project", "local"],
        "mcp_servers": [],
        "strict_mcp_config": False,
        "permission_prompts": "deny",
    }


async def test_setting_sources_with_user_loads_the_users_setup(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path, user_setup: Path
) -> None:
    fake_api.scenario = scenarios.text()
    config = config.model_copy(update={"setting_sources": ["user", "project", "local"]})
    _, init = await run_and_init(config, workdir)
    assert user_setup.exists()
    assert server_names(init) == ["userserver"]


async def test_mcp_config_servers_are_available_and_the_users_are_not(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path, user_setup: Path
) -> None:
    fake_api.scenario = scenarios.text()
    config = config.model_copy(update={"mcp_config": {"mcpServers": {"echo": ECHO_SERVER}}})
    result, init = await run_and_init(config, workdir)
    assert server_names(init) == ["echo"]
    assert {"name": "echo", "status": "connected"}.items() <= init["mcp_servers"][0].items()
    async with open_store() as store:
        record = await store.get(result.run_id)
    assert record.profile and record.profile["mcp_servers"] == ["echo"]
    (flag,) = [arg for arg in record.argv if arg.startswith("--mcp-config=")]  # one argument: --flag=value
    config_file = Path(flag.removeprefix("--mcp-config="))
    assert not config_file.exists()  # the private temp file is gone with the run
    assert sys.executable not in json.dumps(record.argv)  # the config itself is not in argv


async def test_strict_mcp_config_drops_the_users_servers_even_with_user_settings(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path, user_setup: Path
) -> None:
    fake_api.scenario = scenarios.text()
    update = {
        "setting_sources": ["user", "project", "local"],
        "mcp_config": {"mcpServers": {"echo": ECHO_SERVER}},
        "strict_mcp_config": True,
    }
    _, init = await run_and_init(config.model_copy(update=update), workdir)
    assert server_names(init) == ["echo"]


@pytest.mark.parametrize(
    ("mcp_config", "message"),
    [
        ({"servers": {}}, "must be"),
        ({"mcpServers": {"--evil": ECHO_SERVER}}, "not a plain name"),
        ({"mcpServers": {"x": {"args": []}}}, 'needs a "command"'),
    ],
)
async def test_a_bad_mcp_config_is_refused_with_a_sentence(mcp_config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CCExecutorConfig(mcp_config=mcp_config)
