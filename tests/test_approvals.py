"""Ask mode with the real CLI: the caller's can_use_tool, answers from elsewhere through the store, the deadline,
allow-for-run, the operator's always-deny rules, and cancel while waiting. Processes are counted after each."""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from cc_executor import CCExecutorConfig, PermissionDecision, PermissionRequest, RunStatus, cc_execute, open_store
from cc_executor.engine.process import marked_processes
from cc_executor.models import ProgressUpdate, RunRecord
from cc_executor.registry.store import RunStore
from cc_executor.retention import prune_runs
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic, Scenario, Text, ToolUse

pytestmark = pytest.mark.anyio


def touch(target: Path) -> ToolUse:
    # An absolute /usr/bin/touch needs permission under acceptEdits (a plain `touch` in cwd is auto-approved).
    return ToolUse("Bash", {"command": f"/usr/bin/touch {target}", "description": "touch it"})


def ask(config: CCExecutorConfig, timeout_s: float = 60.0) -> CCExecutorConfig:
    return config.model_copy(update={"permission_prompts": "ask", "approval_timeout_s": timeout_s})


async def record_of(run_id: str) -> RunRecord:
    async with open_store() as store:
        return await store.get(run_id)


async def test_the_callers_yes_lets_the_step_run_and_is_recorded(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    target = workdir / "made.txt"
    fake_api.scenario = Scenario([touch(target), Text("touched")])
    asked: list[PermissionRequest] = []

    async def can_use_tool(request: PermissionRequest) -> bool:
        asked.append(request)
        return True

    result = await cc_execute("touch it", config=config, cwd=workdir, can_use_tool=can_use_tool)
    assert result.ok and target.exists() and result.permission_denials == []
    assert [r.tool_name for r in asked] == ["Bash"] and str(target) in asked[0].input["command"]
    record = await record_of(result.run_id)
    (approval,) = record.approvals
    assert (approval.decision, approval.decided_by, approval.tool) == ("allow", "caller", "Bash")
    assert str(target) in approval.summary and approval.decided_at
    assert marked_processes(result.run_id) == []


async def test_the_callers_no_runs_nothing_and_lists_the_denial(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    target = workdir / "made.txt"
    fake_api.scenario = Scenario([touch(target), Text("could not")])

    async def can_use_tool(request: PermissionRequest) -> PermissionDecision:
        return PermissionDecision("deny", "caller", "not today")

    result = await cc_execute("touch it", config=config, cwd=workdir, can_use_tool=can_use_tool)
    assert result.ok and not target.exists()
    assert [d["tool_name"] for d in result.permission_denials] == ["Bash"]
    assert "not today" in fake_api.message_requests[-1].text
    record = await record_of(result.run_id)
    assert [(a.decision, a.decided_by) for a in record.approvals] == [("deny", "caller")]
    assert marked_processes(result.run_id) == []


async def test_an_answer_from_elsewhere_while_the_run_waits_for_approval(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    """Nobody in-process answers: the run shows waiting_for_approval with the request; an answer written to the
    store (what approve_run / `cc-executor approve` do, from any process) lets it go on."""
    target = workdir / "made.txt"
    fake_api.scenario = Scenario([touch(target), Text("touched")])
    seen: list[RunRecord] = []
    progress: list[str] = []

    async def approver(store: RunStore) -> None:
        with anyio.fail_after(30):
            while True:
                for record in await store.list_runs():
                    if record.status is RunStatus.WAITING_FOR_APPROVAL:
                        full = await store.get(record.run_id)
                        seen.append(full)
                        (pending,) = full.pending_approvals
                        await store.decide_approval(
                            full.run_id, pending.request_id, decision="allow", decided_by="person"
                        )
                        return
                await anyio.sleep(0.1)

    async with open_store() as store, anyio.create_task_group() as group:
        group.start_soon(approver, store)
        result = await cc_execute(
            "touch it",
            config=ask(config),
            cwd=workdir,
            store=store,
            on_progress=lambda u: progress.append(u.message),
        )
    assert result.ok and target.exists()
    assert seen and seen[0].pending_approvals[0].tool == "Bash"
    assert any(m.startswith("waiting for approval: Bash") for m in progress), progress
    record = await record_of(result.run_id)
    assert record.status is RunStatus.SUCCESS
    assert [(a.decision, a.decided_by) for a in record.approvals] == [("allow", "person")]
    assert marked_processes(result.run_id) == []


async def test_an_unanswered_prompt_is_denied_at_its_deadline(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    target = workdir / "made.txt"
    fake_api.scenario = Scenario([touch(target), Text("gave up")])

    async def nobody(request: PermissionRequest) -> None:
        return None

    started = time.monotonic()
    result = await cc_execute("touch it", config=ask(config, 2.0), cwd=workdir, can_use_tool=nobody)
    assert time.monotonic() - started < 30  # never hangs past the deadline
    assert result.ok and not target.exists()
    assert [d["tool_name"] for d in result.permission_denials] == ["Bash"]
    record = await record_of(result.run_id)
    assert [(a.decision, a.decided_by) for a in record.approvals] == [("deny", "deadline")]
    assert marked_processes(result.run_id) == []


async def test_allow_for_run_is_not_asked_again_and_writes_no_settings(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    target = workdir / "made.txt"
    fake_api.scenario = Scenario([touch(target), touch(target), Text("twice")])
    asked: list[str] = []

    async def can_use_tool(request: PermissionRequest) -> PermissionDecision:
        asked.append(request.request_id)
        return PermissionDecision("allow", "caller", for_run=True)

    result = await cc_execute("touch it twice", config=config, cwd=workdir, can_use_tool=can_use_tool)
    assert result.ok and target.exists() and len(asked) == 1
    assert not (workdir / ".claude").exists()  # the rule stayed in the session, not the project's settings
    assert [a.decision for a in (await record_of(result.run_id)).approvals] == ["allow_for_run"]
    pruned = await prune_runs(timedelta(0))  # a run's approvals go with it
    assert pruned.run_ids == [result.run_id]


async def test_the_operators_always_deny_rules_cannot_be_approved(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC_EXECUTOR_ALWAYS_DISALLOWED_TOOLS", "Bash(/usr/bin/touch:*)")
    target = workdir / "made.txt"
    fake_api.scenario = Scenario([touch(target), Text("refused")])
    asked: list[str] = []

    async def yes(request: PermissionRequest) -> bool:
        asked.append(request.tool_name)
        return True

    result = await cc_execute("touch it", config=config, cwd=workdir, can_use_tool=yes)
    assert result.ok and not target.exists() and asked == []
    assert [d["tool_name"] for d in result.permission_denials] == ["Bash"]
    # With cc_executor/policy.py (issue 9) the rule also reaches the CLI as --disallowedTools and it never asks;
    # without it, the broker's policy hook answers first. Either way nobody could approve it.
    recorded = [(a.decision, a.decided_by) for a in (await record_of(result.run_id)).approvals]
    assert recorded in ([("deny", "policy")], [])


async def test_cancel_while_waiting_for_approval(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    target = workdir / "made.txt"
    fake_api.scenario = Scenario([touch(target), Text("never")])
    waiting = anyio.Event()
    run_ids: list[str] = []

    def on_progress(update: ProgressUpdate) -> None:
        run_ids.append(update.run_id)
        if update.message.startswith("waiting for approval"):
            waiting.set()

    with anyio.move_on_after(60):
        async with anyio.create_task_group() as group:

            async def run() -> None:
                await cc_execute("touch it", config=ask(config), cwd=workdir, on_progress=on_progress, check=False)

            group.start_soon(run)
            await waiting.wait()
            group.cancel_scope.cancel()
    assert waiting.is_set() and not target.exists()
    record = await record_of(run_ids[0])
    assert record.status is RunStatus.CANCELLED
    assert [(a.decision, a.decided_by) for a in record.approvals] == [("withdrawn", "withdrawn")]
    assert marked_processes(record.run_id) == []


async def test_deny_mode_asks_nobody_and_records_no_approvals(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.bash(f"/usr/bin/touch {workdir / 'made.txt'}")
    result = await cc_execute("touch it", config=config, cwd=workdir)
    assert [d["tool_name"] for d in result.permission_denials] == ["Bash"]
    assert (await record_of(result.run_id)).approvals == []


ECHO_SERVER = {"command": sys.executable, "args": [str(Path(__file__).with_name("echo_mcp.py"))]}


def elicits(config: CCExecutorConfig, prompts: str) -> CCExecutorConfig:
    """A run whose own MCP server (tests/echo_mcp.py) elicits a name when its ask_name tool is called."""
    return config.model_copy(
        update={
            "env": {**config.env, "ENABLE_TOOL_SEARCH": "false"},  # MCP tools sent directly, not deferred
            "mcp_config": {"mcpServers": {"echo": ECHO_SERVER}},
            "allowed_tools": ["mcp__echo__ask_name"],
            "permission_prompts": prompts,
            "approval_timeout_s": 60.0,
        }
    )


async def test_a_nested_servers_elicitation_is_relayed_and_answered(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = Scenario([ToolUse("mcp__echo__ask_name", {}), Text("greeted")])

    async def answer(store: RunStore) -> None:
        with anyio.fail_after(60):
            while True:
                for record in await store.list_runs(status=RunStatus.WAITING_FOR_APPROVAL):
                    (pending,) = (await store.get(record.run_id)).pending_approvals
                    assert pending.kind == "elicitation" and pending.tool == "echo"
                    assert pending.summary == "What is your name?" and pending.requested_schema
                    await store.decide_approval(
                        record.run_id,
                        pending.request_id,
                        decision="allow",
                        decided_by="person",
                        message='{"name":"Ada"}',
                    )
                    return
                await anyio.sleep(0.1)

    async with open_store() as store, anyio.create_task_group() as group:
        group.start_soon(answer, store)
        result = await cc_execute("greet me", config=elicits(config, "ask"), cwd=workdir, store=store)
    assert result.ok and "HELLO Ada" in fake_api.message_requests[-1].text
    assert [(a.kind, a.decision) for a in (await record_of(result.run_id)).approvals] == [("elicitation", "allow")]
    assert marked_processes(result.run_id) == []


async def test_in_deny_mode_a_nested_elicitation_is_cancelled(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = Scenario([ToolUse("mcp__echo__ask_name", {}), Text("no name")])
    result = await cc_execute("greet me", config=elicits(config, "deny"), cwd=workdir)
    assert result.ok and "NO NAME (cancel)" in fake_api.message_requests[-1].text
    assert marked_processes(result.run_id) == []
