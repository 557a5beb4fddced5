"""The executor on the real pinned `claude` CLI against the scripted fake Messages API."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from cc_executor import (
    ApiServerError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    CCExecutorConfig,
    IdleTimeoutError,
    InvalidRequestError,
    MaxTurnsError,
    OverloadedError,
    RateLimitError,
    RunStatus,
    RunTimeoutError,
    StructuredOutputError,
    UsageLimitError,
    cc_execute,
    open_store,
)
from cc_executor.engine.process import marked_processes
from cc_executor.models import ProgressUpdate
from cc_executor.registry.transcripts import read_page
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic

pytestmark = pytest.mark.anyio


async def test_text_run_is_recorded_with_transcript(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.text("hello from fake")
    result = await cc_execute("say hi", config=config, cwd=workdir)

    assert result.status is RunStatus.SUCCESS
    assert result.result == "hello from fake" and str(result) == result.result
    assert result.session_id and result.num_turns == 1 and result.cost_usd and result.cost_usd > 0
    assert result.exit_code == 0 and result.files_created == [] and result.attempts == 1
    async with open_store() as store:
        row = await store.get(result.run_id)
    assert row.status is RunStatus.SUCCESS and row.result == "hello from fake" and row.task == "say hi"
    assert row.argv[:4] == [config.claude_path, "-p", "--output-format=stream-json", "--verbose"]
    assert row.pid and row.pgid and row.started_at and row.finished_at
    types = [json.loads(line)["type"] for line in Path(result.transcript_path or "").read_text().splitlines()]
    assert types[0] == "system" and types[-1] == "result"


async def test_prompt_goes_over_stdin_not_argv(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    """A 1 MiB prompt (beyond Linux's 128 KiB argv limit) reaches the API whole; argv never holds it."""
    task = "Summarise this: " + "lorem ipsum " * 90_000
    result = await cc_execute(task, config=config, cwd=workdir)
    assert result.ok
    assert task[-200:] in fake_api.message_requests[0].text
    async with open_store() as store:
        row = await store.get(result.run_id)
    assert all("lorem" not in arg for arg in row.argv)


async def test_write_and_edit_are_measured_from_the_directory(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    (workdir / "existing.txt").write_text("old\n")
    fake_api.scenario = scenarios.Scenario(
        [
            scenarios.ToolUse("Write", {"file_path": "{cwd}/new.py", "content": "print('hi')\n"}),
            scenarios.ToolUse("Read", {"file_path": "{cwd}/existing.txt"}),
            scenarios.ToolUse("Edit", {"file_path": "{cwd}/existing.txt", "old_string": "old", "new_string": "new"}),
            scenarios.Text("created new.py and edited existing.txt"),
        ]
    )
    result = await cc_execute("create and edit", config=config, cwd=workdir)

    assert result.ok, result.error
    assert result.files_created == ["new.py"]
    assert result.files_modified == ["existing.txt"]
    assert (workdir / "existing.txt").read_text() == "new\n"


async def test_model_claims_are_not_reported_as_files(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.text('{"files_created": ["ghost.py"]} I created ghost.py')
    result = await cc_execute("claim things", config=config, cwd=workdir)
    assert result.files_created == [] and not (workdir / "ghost.py").exists()


async def test_permission_denials_are_reported(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.write_file("out.txt", "hi\n")
    config = config.model_copy(update={"permission_mode": "default"})  # headless: whatever would prompt is denied
    result = await cc_execute("write a file", config=config, cwd=workdir)
    assert result.ok
    assert [d["tool_name"] for d in result.permission_denials] == ["Write"]
    assert not (workdir / "out.txt").exists() and result.files_created == []


async def test_structured_output_with_callers_schema(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    fake_api.scenario = scenarios.structured({"name": "Ada"})
    result = await cc_execute("who?", config=config, cwd=workdir, json_schema=schema)
    assert result.structured_output == {"name": "Ada"}
    tools = {t["name"]: t for t in fake_api.message_requests[0].body["tools"]}
    assert tools["StructuredOutput"]["input_schema"]["required"] == ["name"]


async def test_structured_output_that_breaks_the_schema_fails(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    schema = {"type": "object", "properties": {"age": {"type": "integer", "minimum": 0}}, "required": ["age"]}
    fake_api.scenario = scenarios.structured({"age": -3})  # the CLI itself rejects this tool input
    with pytest.raises(StructuredOutputError, match="no structured output") as caught:
        await cc_execute("how old?", config=config, cwd=workdir, json_schema=schema)
    assert caught.value.result is not None and caught.value.result.status is RunStatus.FAILED


def test_reply_validation_names_the_mismatch() -> None:
    from cc_executor.engine.structured_output import reply_error

    schema = {"type": "object", "properties": {"age": {"type": "integer", "minimum": 0}}, "required": ["age"]}
    assert reply_error(schema, {"age": 3}) is None
    assert "age" in (reply_error(schema, {"age": -3}) or "")


async def test_return_json_gives_the_seed_dict(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.Scenario(
        [
            scenarios.ToolUse("Write", {"file_path": "{cwd}/out.md", "content": "# out\n"}),
            scenarios.ToolUse("StructuredOutput", {"result": "wrote out.md", "summary": "one file"}),
            scenarios.Text("done"),
        ]
    )
    reply = await cc_execute("write out.md", config=config, cwd=workdir, return_json=True)
    assert reply["result"] == "wrote out.md" and reply["summary"] == "one file"
    assert reply["files_created"] == ["out.md"] and reply["files_modified"] == []
    assert list(reply)[-1] == "execution_uuid"
    async with open_store() as store:
        assert (await store.get(reply["execution_uuid"])).status is RunStatus.SUCCESS


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (401, AuthenticationError),
        (400, BadRequestError),
        (500, ApiServerError),
        (529, OverloadedError),
        (429, RateLimitError),
    ],
)
async def test_api_errors_are_classified(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path, status: int, error_class: type[Exception]
) -> None:
    fake_api.scenario = scenarios.api_error(status)
    config.max_attempts = 1
    with pytest.raises(error_class) as caught:
        await cc_execute("hi", config=config, cwd=workdir)
    result = caught.value.result  # type: ignore[attr-defined]
    assert result.status is RunStatus.FAILED and result.error_class == error_class.__name__
    assert result.exit_code == 1 and result.attempts == 1


async def test_usage_limit_carries_the_reset_time_and_fails_fast(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    reset = int(time.time()) + 3 * 3600
    fake_api.scenario = scenarios.usage_limit(reset)
    started = time.monotonic()
    with pytest.raises(UsageLimitError) as caught:
        await cc_execute("hi", config=config, cwd=workdir)
    assert caught.value.reset_at == reset
    assert time.monotonic() - started < 30  # a 3 h reset exceeds retry_max_wait_s: no sleeping
    assert caught.value.result is not None and caught.value.result.attempts == 1


async def test_rate_limit_is_retried_then_succeeds(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.api_error(429, times=1, then="recovered")
    config.retry_base_delay_s = 0.1
    result = await cc_execute("hi", config=config, cwd=workdir)
    assert result.result == "recovered" and result.attempts == 2
    async with open_store() as store:
        attempts = await store.list_attempts(result.run_id)
    assert [(a["n"], a["error_class"]) for a in attempts] == [(1, "RateLimitError"), (2, None)]


async def test_non_retryable_errors_are_not_retried(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.api_error(401)
    with pytest.raises(AuthenticationError):
        await cc_execute("hi", config=config, cwd=workdir)
    assert len(fake_api.message_requests) == 1


async def test_max_turns_and_budget(fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path) -> None:
    fake_api.scenario = scenarios.slow(steps=3, seconds=0.1)
    turns = config.model_copy(update={"allowed_tools": ["Bash"], "max_turns": 1})
    with pytest.raises(MaxTurnsError):
        await cc_execute("go", config=turns, cwd=workdir)
    fake_api.scenario = scenarios.slow(steps=3, seconds=0.1)
    budget = config.model_copy(update={"allowed_tools": ["Bash"], "max_budget_usd": 0.0001})
    with pytest.raises(BudgetExceededError):
        await cc_execute("go", config=budget, cwd=workdir)


@pytest.mark.slow
async def test_wall_clock_timeout_kills_the_tree_and_keeps_partial_output(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=10, seconds=1)
    config = config.model_copy(update={"allowed_tools": ["Bash"], "timeout": 3.0})
    with pytest.raises(RunTimeoutError) as caught:
        await cc_execute("slow work", config=config, cwd=workdir)
    result = caught.value.result
    assert result is not None and result.status is RunStatus.TIMEOUT
    assert result.result and "Step 1 of 10" in result.result
    assert result.duration_s is not None and result.duration_s < 10
    assert marked_processes(result.run_id) == []


@pytest.mark.slow
async def test_idle_timeout_is_separate_from_the_wall_clock(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.silent(60)
    config = config.model_copy(update={"idle_timeout": 2.0, "timeout": 600.0})
    with pytest.raises(IdleTimeoutError) as caught:
        await cc_execute("think hard", config=config, cwd=workdir)
    result = caught.value.result
    assert result is not None and result.status is RunStatus.IDLE_TIMEOUT and result.duration_s is not None
    assert result.duration_s < 15
    assert marked_processes(result.run_id) == []


@pytest.mark.slow
async def test_a_long_run_that_keeps_streaming_is_not_idle(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=4, seconds=1)
    config = config.model_copy(update={"allowed_tools": ["Bash"], "idle_timeout": 2.5})
    result = await cc_execute("steady work", config=config, cwd=workdir)
    assert result.ok and result.result == "all steps done"


@pytest.mark.slow
async def test_progress_has_messages_and_heartbeats(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.Scenario(
        [scenarios.ToolUse("Bash", {"command": "sleep 3 && echo done"}), scenarios.Text("finished")]
    )
    config = config.model_copy(update={"allowed_tools": ["Bash"], "heartbeat_s": 1.0})
    updates: list[ProgressUpdate] = []
    result = await cc_execute("wait a bit", config=config, cwd=workdir, on_progress=updates.append)
    assert result.ok
    assert any("Bash: sleep 3 && echo done" in u.message for u in updates)
    assert sum(1 for u in updates if u.kind == "heartbeat") >= 2  # the CLI is silent during `sleep 3`
    assert updates[-1].kind == "finished" and "success" in updates[-1].message
    gaps = [b.elapsed_s - a.elapsed_s for a, b in itertools.pairwise(updates)]
    assert max(gaps) < 2.0


@pytest.mark.slow
async def test_cancelling_the_caller_kills_the_tree_and_records_it(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=10, seconds=1)
    config = config.model_copy(update={"allowed_tools": ["Bash"]})
    run_ids: list[str] = []

    async def remember(update: ProgressUpdate) -> None:
        run_ids.append(update.run_id)

    with anyio.move_on_after(2.5) as scope:
        await cc_execute("long work", config=config, cwd=workdir, on_progress=remember)
    assert scope.cancelled_caught
    run_id = run_ids[0]
    assert marked_processes(run_id) == []
    async with open_store() as store:
        row = await store.get(run_id)
    assert row.status is RunStatus.CANCELLED and row.error_class == "RunCancelledError"
    assert row.finished_at is not None


async def test_transcript_pages_cover_every_line(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=6, seconds=0)
    result = await cc_execute("many turns", config=config.model_copy(update={"allowed_tools": ["Bash"]}), cwd=workdir)
    path = Path(result.transcript_path or "")
    lines: list[str] = []
    cursor: int | None = 0
    while cursor is not None:
        page = read_page(path, cursor=cursor, limit=3)
        assert len(page.lines) <= 3
        lines += page.lines
        cursor = page.next_cursor
    assert lines == path.read_text().splitlines() and len(lines) > 12


async def test_bad_input_is_rejected_before_anything_starts(config: CCExecutorConfig, workdir: Path) -> None:
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("   ", {"cwd": workdir}, "task: must not be empty"),
        ("hi", {"cwd": workdir / "missing"}, "does not exist"),
        (
            "hi",
            {"cwd": workdir, "json_schema": {"type": "object", "properties": {"a": {"type": "nope"}}}},
            "json_schema",
        ),
    ]
    for task, kwargs, message in cases:
        with pytest.raises(InvalidRequestError, match=message):
            await cc_execute(task, config=config, **kwargs)
    with pytest.raises(ValueError, match="permission_mode"):
        config.model_copy(update={}).permission_mode = "yolo"  # type: ignore[assignment]
    async with open_store() as store:
        assert await store.list_runs() == []


async def test_missing_cli_is_a_clear_error(workdir: Path) -> None:
    from cc_executor import ClaudeNotFoundError

    with pytest.raises(ClaudeNotFoundError, match="CC_EXECUTOR_CLAUDE"):
        await cc_execute("hi", config=CCExecutorConfig(claude_path="/nonexistent/claude"), cwd=workdir)


async def test_nested_session_variables_are_stripped(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started from inside Claude Code (CLAUDECODE=1), the child still runs: the variable is not passed on."""
    from cc_executor.api import build_request
    from cc_executor.engine.command import build_env

    monkeypatch.setenv("CLAUDECODE", "1")
    monkeypatch.setenv("CLAUDE_CODE_SESSION_ID", "host-session")
    env = build_env(build_request("x", config=config, cwd=workdir))
    assert "CLAUDECODE" not in env and "CLAUDE_CODE_SESSION_ID" not in env
    result = await cc_execute("hi", config=config, cwd=workdir)
    assert result.ok


async def test_reconcile_marks_runs_of_dead_owners_lost(config: CCExecutorConfig, workdir: Path) -> None:
    from cc_executor.api import build_request

    request = build_request("orphaned", config=config, cwd=workdir)
    async with open_store() as store:
        await store.create_run(request, argv=["claude"], owner_pid=2**22 + 12345)  # no such pid
        await store.mark_started(request.run_id, pid=2**22 + 12346, pgid=2**22 + 12346)
    async with open_store() as store:  # a new process opening the registry reconciles it
        row = await store.get(request.run_id)
    assert row.status is RunStatus.LOST and row.error_class == "RunLostError"


async def test_a_run_cancelled_while_queued_never_starts(
    fake_api: FakeAnthropic, config: CCExecutorConfig, workdir: Path
) -> None:
    """`cc-executor cancel` from another process may hit a run still waiting for a slot."""
    from cc_executor.engine.slots import RunSlots

    fake_api.scenario = scenarios.slow(steps=2, seconds=1)
    config = config.model_copy(update={"allowed_tools": ["Bash"]})
    slots = RunSlots(1)
    queued: list[str] = []

    async def on_progress(update: ProgressUpdate) -> None:
        if update.kind == "queued":
            queued.append(update.run_id)
            async with open_store() as store:
                await store.mark_status(update.run_id, RunStatus.CANCELLED, error_class="RunCancelledError")

    async with anyio.create_task_group() as group:
        group.start_soon(lambda: cc_execute("first", config=config, cwd=workdir, slots=slots))
        await anyio.sleep(0.3)
        second = await cc_execute(
            "second", config=config, cwd=workdir, slots=slots, on_progress=on_progress, check=False
        )
    assert queued == [second.run_id]
    assert second.status is RunStatus.CANCELLED and second.exit_code is None
    async with open_store() as store:
        row = await store.get(second.run_id)
    assert row.status is RunStatus.CANCELLED and row.pid is None
