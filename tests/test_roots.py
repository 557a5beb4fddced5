"""cwd from the host's roots, with the real SDK client declaring roots in both protocol eras: no cwd → the one root;
a subdirectory → accepted; outside → refused (symlinks resolved), unless the operator lifts it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from cc_executor_mcp.app import create_server
from cc_executor_mcp.settings import ServerSettings
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.types import CallToolResult, ListRootsResult, Root, TextContent

from cc_executor.engine.process import marked_processes
from cc_executor.models import CCExecutorConfig
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic

pytestmark = pytest.mark.anyio

MODES = ["auto", "legacy"]


@pytest.fixture
def settings(config: CCExecutorConfig, state_home: Path) -> ServerSettings:
    return ServerSettings(
        cli_env=config.env, claude_path=config.claude_path, model=config.model, kill_grace_s=1.0, return_after_s=60
    )


@asynccontextmanager
async def host(settings: ServerSettings, mode: str, roots: list[Path]) -> AsyncIterator[Client]:
    async def list_roots(context: ClientRequestContext) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=root.as_uri(), name=root.name) for root in roots])  # type: ignore[arg-type]

    async with Client(create_server(settings), mode=mode, list_roots_callback=list_roots) as client:
        yield client


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    content: dict[str, Any] | None = result.structured_content
    assert content is not None
    return content


def text_of(result: CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


@pytest.mark.parametrize("mode", MODES)
async def test_no_cwd_runs_in_the_hosts_root(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path, mode: str
) -> None:
    fake_api.scenario = scenarios.write_file("from_root.txt", "hi\n")
    async with host(settings, mode, [workdir]) as client:
        run = structured(await client.call_tool("execute_task", {"task": "write it"}))
    assert run["status"] == "success" and run["cwd"] == str(workdir.resolve())
    assert (workdir / "from_root.txt").exists() and run["files_created"] == ["from_root.txt"]
    assert marked_processes(run["run_id"]) == []


@pytest.mark.parametrize("mode", MODES)
async def test_a_subdirectory_is_accepted_and_outside_is_refused(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path, tmp_path: Path, mode: str
) -> None:
    fake_api.scenario = scenarios.text()
    sub = workdir / "pkg"
    sub.mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    sneaky = workdir / "link-out"
    sneaky.symlink_to(outside)  # inside by name, outside once resolved
    async with host(settings, mode, [workdir]) as client:
        run = structured(await client.call_tool("execute_task", {"task": "hi", "cwd": str(sub)}))
        assert run["status"] == "success" and run["cwd"] == str(sub.resolve())
        for cwd in (str(outside), "/etc", str(sneaky)):
            refused = await client.call_tool("start_task", {"task": "hi", "cwd": cwd})
            assert refused.is_error and "outside the host's roots" in text_of(refused), text_of(refused)
            assert "CC_EXECUTOR_ALLOW_OUTSIDE_ROOTS" in text_of(refused)
        listed = await client.call_tool("execute_task_list", {"tasks": [{"task": "a"}, {"task": "b", "cwd": "/etc"}]})
        assert listed.is_error and "tasks[1]" in text_of(listed) and "outside" in text_of(listed)
        runs = structured(await client.call_tool("list_runs", {}))
    assert runs["count"] == 1  # nothing refused was started or recorded
    assert len(fake_api.message_requests) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_several_roots_ask_for_cwd_and_the_operator_can_lift_the_fence(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path, tmp_path: Path, mode: str
) -> None:
    fake_api.scenario = scenarios.text()
    other = tmp_path / "other"
    other.mkdir()
    async with host(settings, mode, [workdir, other]) as client:
        refused = await client.call_tool("execute_task", {"task": "hi"})
    assert refused.is_error and str(workdir) in text_of(refused) and str(other) in text_of(refused)
    assert "pass cwd" in text_of(refused)
    lifted = dataclasses.replace(settings, allow_outside_roots=True)
    async with host(lifted, mode, [workdir]) as client:
        run = structured(await client.call_tool("execute_task", {"task": "hi", "cwd": str(other)}))
    assert run["status"] == "success" and run["cwd"] == str(other.resolve())


async def test_a_resumed_run_outside_the_roots_is_refused(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path, tmp_path: Path
) -> None:
    fake_api.scenario = scenarios.text()
    other = tmp_path / "other"
    other.mkdir()
    async with host(settings, "auto", [other]) as client:
        first = structured(await client.call_tool("execute_task", {"task": "hi"}))
    async with host(settings, "auto", [workdir]) as client:
        refused = await client.call_tool("execute_task", {"task": "more", "resume_run_id": first["run_id"]})
    assert refused.is_error and "outside the host's roots" in text_of(refused)


async def test_a_host_without_roots_falls_back_to_the_default_cwd(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path
) -> None:
    fake_api.scenario = scenarios.text()
    async with Client(create_server(settings)) as client:
        refused = await client.call_tool("execute_task", {"task": "hi"})
    assert refused.is_error and "cwd: is required" in text_of(refused)
    with_default = dataclasses.replace(settings, default_cwd=workdir)
    async with Client(create_server(with_default)) as client:
        run = structured(await client.call_tool("execute_task", {"task": "hi"}))
    assert run["status"] == "success" and json.dumps(run["cwd"]) == json.dumps(str(workdir.resolve()))
