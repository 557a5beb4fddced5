"""Ask mode on Temporal workers: a run on a worker asks the person at the front end (the MCP server's elicitation,
approve_run, `cc-executor approve`), the answer reaches the CLI on the worker, the deadline denies, and an answer
meant for a lost attempt never answers the next attempt's question. Real dev server, real workers, the real
`claude` against the fake API; processes are counted after each."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from cc_executor_mcp.app import create_server
from cc_executor_mcp.settings import ServerSettings
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.types import CallToolResult, ElicitRequestParams, ElicitResult, TextContent

from cc_executor.api import open_store
from cc_executor.backends.temporal.backend import TemporalBackend
from cc_executor.backends.temporal.workflow import APPROVE_SIGNAL
from cc_executor.errors import InvalidRequestError
from cc_executor.models import Approval, CCExecutorConfig, RunRecord, RunRequest, RunStatus
from cc_executor.testing.fake_api import FakeAnthropic, Scenario, Text, ToolUse
from cc_executor.testing.temporal_cluster import Workers, run_processes
from cc_executor.testing.terminal import on_a_terminal

pytestmark = pytest.mark.anyio


@pytest.fixture
def backend(temporal_backend: TemporalBackend) -> TemporalBackend:
    return temporal_backend


def touch(target: Path) -> Scenario:
    # An absolute /usr/bin/touch needs permission (a plain `touch` in cwd is auto-approved under acceptEdits).
    return Scenario([ToolUse("Bash", {"command": f"/usr/bin/touch {target}", "description": "t"}), Text("done")])


def asking(config: CCExecutorConfig, timeout_s: float = 120.0) -> CCExecutorConfig:
    return config.model_copy(update={"permission_prompts": "ask", "approval_timeout_s": timeout_s})


async def until_asked(
    backend: TemporalBackend, run_id: str, *, other_than: str = "", timeout_s: float = 60
) -> RunRecord:
    """The row once the run waits on a question (other than ``other_than``)."""
    with anyio.fail_after(timeout_s):
        while True:
            record = await backend.status(run_id)
            if any(a.request_id != other_than for a in record.pending_approvals):
                return record
            assert not record.status.finished, record
            await anyio.sleep(0.2)


def answers(record: RunRecord) -> list[tuple[str | None, str | None]]:
    return [(a.decision, a.decided_by) for a in record.approvals]


async def no_processes_left(run_id: str) -> bool:
    with anyio.move_on_after(10):
        while run_processes(run_id):  # noqa: ASYNC110 (other processes: no event to wait on)
            await anyio.sleep(0.1)
    return run_processes(run_id) == []


async def test_an_answer_from_the_front_end_reaches_the_cli_on_the_worker(
    backend: TemporalBackend, fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    target = workdir / "made.txt"
    fake_api.scenario = touch(target)
    run_id = await backend.submit(RunRequest(task="touch it", cwd=workdir, config=asking(config)))
    record = await until_asked(backend, run_id)
    (pending,) = record.pending_approvals
    assert record.status is RunStatus.WAITING_FOR_APPROVAL and record.worker in ("w1", "w2")
    assert pending.tool == "Bash" and str(target) in pending.summary and not target.exists()
    assert "waiting for approval" in (record.last_progress or "")

    with pytest.raises(InvalidRequestError, match=f"no question 'nope' \\(pending: {pending.request_id}\\)"):
        await backend.approve(run_id, "nope", "allow")
    answered = await backend.approve(run_id, pending.request_id, "allow", decided_by="person")
    assert (answered.decision, answered.decided_by) == ("allow", "person")
    with pytest.raises(InvalidRequestError, match="already answered: allow by person"):
        await backend.approve(run_id, pending.request_id, "deny")

    result = await backend.wait(run_id, 60)
    assert result is not None and result.ok and result.permission_denials == [], result
    assert target.exists()  # the tool ran on the worker
    assert answers(await backend.status(run_id)) == [("allow", "person")]
    assert await no_processes_left(run_id)


async def test_a_denial_is_what_the_cli_gets_and_the_deadline_denies_unanswered(
    backend: TemporalBackend, fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    target = workdir / "made.txt"
    fake_api.scenario = touch(target)
    denied = await backend.submit(RunRequest(task="touch it", cwd=workdir, config=asking(config)))
    (pending,) = (await until_asked(backend, denied)).pending_approvals
    await backend.approve(denied, pending.request_id, "deny", decided_by="caller", message="not on a worker")
    result = await backend.wait(denied, 60)
    assert result is not None and result.ok and not target.exists()
    assert [d["tool_name"] for d in result.permission_denials] == ["Bash"]
    assert "not on a worker" in fake_api.message_requests[-1].text  # the reason reached claude
    assert answers(await backend.status(denied)) == [("deny", "caller")]

    unanswered = await backend.submit(RunRequest(task="touch it", cwd=workdir, config=asking(config, 3.0)))
    result = await backend.wait(unanswered, 60)
    assert result is not None and result.ok and not target.exists()
    assert [d["tool_name"] for d in result.permission_denials] == ["Bash"]
    (approval,) = (await backend.status(unanswered)).approvals
    assert (approval.decision, approval.decided_by) == ("deny", "deadline") and "3s" in (approval.message or "")
    with pytest.raises(InvalidRequestError, match="already answered: deny by deadline"):
        await backend.approve(unanswered, approval.request_id, "allow")
    assert await no_processes_left(denied) and await no_processes_left(unanswered)


async def test_an_answer_for_a_lost_attempt_never_answers_the_next_attempts_question(
    backend: TemporalBackend,
    temporal_workers: Workers,
    fake_api: FakeAnthropic,
    config: CCExecutorConfig,
    workdir: Path,
) -> None:
    target = workdir / "made.txt"
    fake_api.scenario = touch(target)
    run_id = await backend.submit(RunRequest(task="touch it", cwd=workdir, config=asking(config)))
    first = await until_asked(backend, run_id)
    (question,) = first.pending_approvals
    assert first.worker is not None
    assert temporal_workers.kill(first.worker)  # SIGKILL: attempt 2 asks again on the other worker

    second = await until_asked(backend, run_id, other_than=question.request_id, timeout_s=90)
    (again,) = second.pending_approvals
    assert second.worker != first.worker and again.request_id != question.request_id
    withdrawn = next(a for a in second.approvals if a.request_id == question.request_id)
    assert (withdrawn.decision, withdrawn.decided_by) == ("withdrawn", "withdrawn")
    with pytest.raises(InvalidRequestError, match="already answered: withdrawn"):
        await backend.approve(run_id, question.request_id, "allow")

    # A late answer tagged with attempt 1 (from a front end that saw attempt 1 ask) reaches the workflow before the
    # real one: fenced off, it does not answer attempt 2's question (unfenced, it would win: it came first).
    handle = (await backend.client()).get_workflow_handle(run_id)
    late = {"attempt": 1, "request_id": again.request_id, "decision": "deny", "decided_by": "caller"}
    await handle.signal(APPROVE_SIGNAL, late)
    await backend.approve(run_id, again.request_id, "allow", decided_by="person")
    result = await backend.wait(run_id, 60)
    assert result is not None and result.ok and result.attempts == 2 and target.exists(), result
    assert answers(await backend.status(run_id)) == [("withdrawn", "withdrawn"), ("allow", "person")]
    assert await no_processes_left(run_id)
    temporal_workers.ensure("w1", "w2")


async def test_cc_executor_approve_answers_a_run_on_a_worker(
    backend: TemporalBackend,
    temporal_workers: Workers,
    fake_api: FakeAnthropic,
    config: CCExecutorConfig,
    workdir: Path,
) -> None:
    target = workdir / "made.txt"
    fake_api.scenario = touch(target)
    run_id = await backend.submit(RunRequest(task="touch it", cwd=workdir, config=asking(config)))
    await until_asked(backend, run_id)
    env = {
        **os.environ,  # CC_EXECUTOR_HOME: the same registry as this front end
        "CC_EXECUTOR_TEMPORAL_ADDRESS": temporal_workers.settings.address,
        "CC_EXECUTOR_TEMPORAL_TASK_QUEUE": temporal_workers.settings.task_queue,
    }
    done = await anyio.run_process(
        [sys.executable, "-m", "cc_executor.cli", "approve", run_id[:8], "--deny", "-m", "no"], env=env, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().startswith("deny: Bash:")
    result = await backend.wait(run_id, 60)
    assert result is not None and [d["tool_name"] for d in result.permission_denials] == ["Bash"]
    assert answers(await backend.status(run_id)) == [("deny", "person")] and not target.exists()
    assert await no_processes_left(run_id)


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, " ".join(c.text for c in result.content if isinstance(c, TextContent))
    content: dict[str, Any] | None = result.structured_content
    assert content is not None
    return content


@pytest.mark.parametrize("answer", ["allow", None])
async def test_the_mcp_server_asks_the_hosts_person_or_hands_over_to_approve_run(
    temporal_workers: Workers,
    fake_api: FakeAnthropic,
    config: CCExecutorConfig,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    answer: str | None,
) -> None:
    """A 2025 host whose person allows (elicitation mid-call), and a host without elicitation (approve_run)."""
    temporal_workers.ensure("w1", "w2")
    monkeypatch.setenv("CC_EXECUTOR_TEMPORAL_ADDRESS", temporal_workers.settings.address)
    monkeypatch.setenv("CC_EXECUTOR_TEMPORAL_TASK_QUEUE", temporal_workers.settings.task_queue)
    target = workdir / "made.txt"
    fake_api.scenario = touch(target)
    settings = ServerSettings(
        cli_env=config.env,
        claude_path=config.claude_path,
        model=config.model,
        return_after_s=60,
        backend="temporal",
        permission_prompts="ask",
    )
    asked: list[str] = []

    async def elicit(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"decision": "allow"})

    callback = elicit if answer is not None else None
    async with Client(create_server(settings), mode="legacy", elicitation_callback=callback) as client:
        first = structured(await client.call_tool("execute_task", {"task": "touch", "cwd": str(workdir)}))
        if answer is None:
            assert first["status"] == "waiting_for_approval", first
            (pending,) = first["pending_approvals"]
            assert pending["tool"] == "Bash" and "approve_run" in first["message"]
            bad = await client.call_tool(
                "approve_run", {"run_id": first["run_id"], "request_id": "nope", "decision": "allow"}
            )
            assert bad.is_error and "has no question 'nope'" in str(bad.content)
            await client.call_tool(
                "approve_run", {"run_id": first["run_id"], "request_id": pending["request_id"], "decision": "allow"}
            )
            first = structured(await client.call_tool("wait_run", {"run_id": first["run_id"], "timeout_s": 60}))
    assert first["status"] == "success" and target.exists(), first
    if answer is not None:
        assert len(asked) == 1 and str(target) in asked[0]
    record = await _front_end_row(first["run_id"])
    assert [(a.decision, a.decided_by) for a in record] == [("allow", "person" if answer else "caller")]
    assert await no_processes_left(first["run_id"])


async def _front_end_row(run_id: str) -> list[Approval]:
    async with open_store() as store:
        return (await store.get(run_id)).approvals


async def test_cc_executor_run_on_a_terminal_asks_for_a_run_on_a_worker(
    temporal_workers: Workers, fake_api: FakeAnthropic, cli_env: dict[str, str], claude_bin: Path, workdir: Path
) -> None:
    settings = temporal_workers.dedicated("cli", env={**cli_env, "CC_EXECUTOR_CLAUDE": str(claude_bin)})
    target = workdir / "made.txt"
    fake_api.scenario = touch(target)
    env = {
        **os.environ,
        "CC_EXECUTOR_BACKEND": "temporal",
        "CC_EXECUTOR_TEMPORAL_ADDRESS": settings.address,
        "CC_EXECUTOR_TEMPORAL_TASK_QUEUE": settings.task_queue,
    }
    argv = [sys.executable, "-m", "cc_executor.cli", "run", "touch it", "-C", str(workdir)]
    argv += ["--model", "claude-sonnet-4-5", "--permission-prompts", "ask"]
    code, output = await on_a_terminal(argv, env, answers=[(b"Allow?", b"y\n")], within=90)
    assert code == 0, output
    assert "claude asks to use Bash" in output and str(target) in output and "worker cli" in output
    assert target.exists()
    async with open_store() as store:
        (record,) = await store.list_runs()
        record = await store.get(record.run_id)
    assert [(a.decision, a.decided_by) for a in record.approvals] == [("allow", "person")]
    assert await no_processes_left(record.run_id)
