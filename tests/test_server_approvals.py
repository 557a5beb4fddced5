"""Ask mode through the MCP server with the real SDK client in both eras: the host's person answers by
elicitation (where the era allows a request mid-call), else the call hands the question over (waiting_for_approval)
and approve_run answers it; deadline and cancel while waiting. Processes are counted after each test."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from cc_executor_mcp.app import create_server
from cc_executor_mcp.settings import ServerSettings
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.types import CallToolResult, ElicitRequestParams, ElicitResult, TextContent

from cc_executor.api import open_store
from cc_executor.engine.process import marked_processes
from cc_executor.models import CCExecutorConfig
from cc_executor.testing.fake_api import FakeAnthropic, Scenario, Text, ToolUse

pytestmark = pytest.mark.anyio

MODES = ["auto", "legacy"]


@pytest.fixture
def settings(config: CCExecutorConfig, state_home: Path) -> ServerSettings:
    return ServerSettings(
        cli_env=config.env,
        claude_path=config.claude_path,
        model=config.model,
        kill_grace_s=1.0,
        return_after_s=60,
        permission_prompts="ask",
    )


def touch(target: Path) -> Scenario:
    return Scenario([ToolUse("Bash", {"command": f"/usr/bin/touch {target}", "description": "t"}), Text("done")])


@asynccontextmanager
async def host(settings: ServerSettings, mode: str, answer: str | None, asked: list[str]) -> AsyncIterator[Client]:
    """A host whose person answers every elicitation with ``answer`` (accept: that decision; "decline"; "cancel").
    ``answer`` None: a host without elicitation (Claude Desktop)."""

    async def elicit(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        if answer == "decline":
            return ElicitResult(action="decline")
        if answer == "cancel":
            return ElicitResult(action="cancel")
        return ElicitResult(action="accept", content={"decision": answer or "deny"})

    callback = elicit if answer is not None else None
    async with Client(create_server(settings), mode=mode, elicitation_callback=callback) as client:
        yield client


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, " ".join(c.text for c in result.content if isinstance(c, TextContent))
    content: dict[str, Any] | None = result.structured_content
    assert content is not None
    return content


async def decisions(run_id: str) -> list[tuple[str | None, str | None]]:
    async with open_store() as store:
        return [(a.decision, a.decided_by) for a in (await store.get(run_id)).approvals]


async def test_the_person_at_a_2025_host_allows_and_the_step_runs(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path
) -> None:
    target = workdir / "made.txt"
    fake_api.scenario = touch(target)
    asked: list[str] = []
    async with host(settings, "legacy", "allow", asked) as client:
        run = structured(await client.call_tool("execute_task", {"task": "touch", "cwd": str(workdir)}))
    assert run["status"] == "success" and target.exists(), run
    assert len(asked) == 1 and "Bash" in asked[0] and str(target) in asked[0]
    assert await decisions(run["run_id"]) == [("allow", "person")]
    assert marked_processes(run["run_id"]) == []


async def test_the_person_declines_and_nothing_runs(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path
) -> None:
    target = workdir / "made.txt"
    fake_api.scenario = touch(target)
    async with host(settings, "legacy", "decline", []) as client:
        run = structured(await client.call_tool("execute_task", {"task": "touch", "cwd": str(workdir)}))
    assert run["status"] == "success" and not target.exists()
    assert run["permission_denials"] == ["Bash"]
    assert await decisions(run["run_id"]) == [("deny", "person")]
    assert marked_processes(run["run_id"]) == []


@pytest.mark.parametrize(("mode", "answer"), [("legacy", "cancel"), ("auto", "allow"), ("auto", None)])
async def test_nobody_to_ask_hands_over_then_approve_run_lets_it_finish(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path, mode: str, answer: str | None
) -> None:
    """A 2025 host whose person is not there (cancel, like Claude Code -p), a 2026-07-28 host (no request mid-call)
    and a host without elicitation (Claude Desktop): the call returns waiting_for_approval; approve_run answers."""
    target = workdir / "made.txt"
    fake_api.scenario = touch(target)
    async with host(settings, mode, answer, []) as client:
        waiting = structured(await client.call_tool("execute_task", {"task": "touch", "cwd": str(workdir)}))
        assert waiting["status"] == "waiting_for_approval" and not waiting["done"], waiting
        (pending,) = waiting["pending_approvals"]
        assert pending["tool"] == "Bash" and str(target) in pending["summary"]
        assert "approve_run" in waiting["message"] and pending["request_id"] in waiting["message"]
        snapshot = structured(await client.call_tool("get_run", {"run_id": waiting["run_id"]}))
        assert snapshot["status"] == "waiting_for_approval" and snapshot["pending_approvals"] == [pending]
        assert "waiting for approval" in (snapshot["last_progress"] or "")
        approved = structured(
            await client.call_tool(
                "approve_run",
                {"run_id": waiting["run_id"], "request_id": pending["request_id"], "decision": "allow"},
            )
        )
        assert "wait_run" in approved["message"] or approved["done"]
        again = await client.call_tool(
            "approve_run", {"run_id": waiting["run_id"], "request_id": pending["request_id"], "decision": "deny"}
        )
        assert again.is_error and "already answered" in str(again.content)
        final = structured(await client.call_tool("wait_run", {"run_id": waiting["run_id"], "timeout_s": 60}))
    assert final["status"] == "success" and target.exists(), final
    assert await decisions(final["run_id"]) == [("allow", "caller")]
    assert marked_processes(final["run_id"]) == []


@pytest.mark.parametrize("mode", MODES)
async def test_the_deadline_denies_and_cancel_while_waiting_stops_the_run(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path, mode: str
) -> None:
    target = workdir / "made.txt"
    fake_api.scenario = touch(target)
    quick = dataclasses.replace(settings, approval_timeout_s=2.0)
    async with host(quick, mode, None, []) as client:
        waiting = structured(await client.call_tool("execute_task", {"task": "touch", "cwd": str(workdir)}))
        assert waiting["status"] == "waiting_for_approval"
        final = structured(await client.call_tool("wait_run", {"run_id": waiting["run_id"], "timeout_s": 60}))
        assert final["status"] == "success" and final["permission_denials"] == ["Bash"] and not target.exists()
        assert await decisions(final["run_id"]) == [("deny", "deadline")]

        second = structured(await client.call_tool("execute_task", {"task": "touch", "cwd": str(workdir)}))
        assert second["status"] == "waiting_for_approval"
        cancelled = structured(await client.call_tool("cancel_run", {"run_id": second["run_id"]}))
    assert cancelled["status"] == "cancelled" and not target.exists()
    assert await decisions(second["run_id"]) == [("withdrawn", "withdrawn")]
    assert marked_processes(final["run_id"]) == [] and marked_processes(second["run_id"]) == []


async def test_deny_mode_server_default_never_waits(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path
) -> None:
    target = workdir / "made.txt"
    fake_api.scenario = touch(target)
    deny = dataclasses.replace(settings, permission_prompts=None)
    asked: list[str] = []
    async with host(deny, "auto", "allow", asked) as client:
        run = structured(await client.call_tool("execute_task", {"task": "touch", "cwd": str(workdir)}))
    assert run["status"] == "success" and run["permission_denials"] == ["Bash"] and asked == []
    assert await decisions(run["run_id"]) == []


@pytest.mark.parametrize("answer", ["allow", "cancel"])
async def test_a_2026_host_is_asked_through_wait_runs_input_required_round(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path, answer: str
) -> None:
    """2026-07-28 has no request mid-call: execute_task hands the question over, then wait_run asks the host's
    person with an input_required round (Claude Code shows a dialog). cancel (nobody there, -p): approve_run."""
    target = workdir / "made.txt"
    fake_api.scenario = touch(target)
    asked: list[str] = []
    async with host(settings, "auto", answer, asked) as client:
        waiting = structured(await client.call_tool("execute_task", {"task": "touch", "cwd": str(workdir)}))
        assert waiting["status"] == "waiting_for_approval" and asked == []
        run_id = waiting["run_id"]
        after = structured(await client.call_tool("wait_run", {"run_id": run_id, "timeout_s": 60}))
        assert len(asked) == 1 and "Bash" in asked[0]
        if answer == "cancel":
            assert after["status"] == "waiting_for_approval", after
            request_id = after["pending_approvals"][0]["request_id"]
            args = {"run_id": run_id, "request_id": request_id, "decision": "allow"}
            structured(await client.call_tool("approve_run", args))
            after = structured(await client.call_tool("wait_run", {"run_id": run_id, "timeout_s": 60}))
            assert len(asked) == 1  # not asked again
    assert after["status"] == "success" and target.exists(), after
    assert await decisions(run_id) == [("allow", "person" if answer == "allow" else "caller")]
    assert marked_processes(run_id) == []


@pytest.mark.parametrize("mode", MODES)
async def test_a_nested_servers_form_is_shown_to_the_hosts_person(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path, mode: str
) -> None:
    """The nested run's own MCP server elicits (relayed by the nested CLI): the host's person fills that form —
    during execute_task (2025-11-25) or through wait_run's input_required round (2026-07-28)."""
    fake_api.scenario = Scenario([ToolUse("mcp__echo__ask_name", {}), Text("greeted")])
    forms: list[dict[str, Any]] = []

    async def person(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        forms.append(params.model_dump(by_alias=True))
        return ElicitResult(action="accept", content={"name": "Ada"})

    env = {**settings.cli_env, "ENABLE_TOOL_SEARCH": "false"}
    server = create_server(dataclasses.replace(settings, cli_env=env, allow_run_mcp_config=True))
    echo = {"command": sys.executable, "args": [str(Path(__file__).with_name("echo_mcp.py"))]}
    args = {
        "task": "greet me",
        "cwd": str(workdir),
        "mcp_config": {"mcpServers": {"echo": echo}},
        "allowed_tools": ["mcp__echo__ask_name"],
    }
    async with Client(server, mode=mode, elicitation_callback=person) as client:
        run = structured(await client.call_tool("execute_task", args))
        if run["status"] == "waiting_for_approval":  # 2026-07-28: wait_run asks
            run = structured(await client.call_tool("wait_run", {"run_id": run["run_id"], "timeout_s": 60}))
    assert run["status"] == "success", run
    assert len(forms) == 1 and "What is your name?" in forms[0]["message"]
    assert "name" in forms[0]["requestedSchema"]["properties"]
    assert "HELLO Ada" in fake_api.message_requests[-1].text
    assert await decisions(run["run_id"]) == [("allow", "person")]
    assert marked_processes(run["run_id"]) == []
