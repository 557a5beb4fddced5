"""The MCP server in memory (mcp.Client in both protocol eras), driving the real CLI behind the fake API."""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from cc_executor_mcp import schemas
from cc_executor_mcp.app import create_server
from cc_executor_mcp.settings import ServerSettings, SettingsError
from mcp import Client
from mcp.shared.dispatcher import ProgressFnT
from mcp.types import CallToolResult, TextContent, TextResourceContents

from cc_executor.api import build_request, open_store
from cc_executor.engine.process import marked_processes
from cc_executor.models import MAX_TASK_BYTES, PERMISSION_MODES, RUN_ID_PATTERN, CCExecutorConfig, RunStatus
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic
from cc_executor.transcript_text import render_line

pytestmark = pytest.mark.anyio

MODES = ["auto", "legacy"]
Progress = list[tuple[float, float | None, str | None]]


@pytest.fixture
def settings(config: CCExecutorConfig, state_home: Path) -> ServerSettings:
    """The conftest's CLI config (real CLI, fake API env, test model) as server settings."""
    return ServerSettings(
        cli_env=config.env, claude_path=config.claude_path, model=config.model, kill_grace_s=1.0, return_after_s=60
    )


@asynccontextmanager
async def connect(settings: ServerSettings, mode: str = "auto") -> AsyncIterator[Client]:
    async with Client(create_server(settings), mode=mode) as client:
        yield client


async def call(client: Client, tool: str, args: dict[str, Any], seen: Progress | None = None) -> CallToolResult:
    """Call a tool; with ``seen``, a progress token is sent and each notification appended to it."""

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        assert seen is not None
        seen.append((progress, total, message))

    callback: ProgressFnT | None = on_progress if seen is not None else None
    return await client.call_tool(tool, args, progress_callback=callback)


def ok(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    content: dict[str, Any] | None = result.structured_content
    assert content is not None
    return content


def text_of(result: CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


async def wait_running(client: Client, run_id: str) -> None:
    """Until the run's CLI has produced its first stream line (so a cancel meets a live process tree)."""
    with anyio.fail_after(15):
        while True:
            run = ok(await call(client, "get_run", {"run_id": run_id}))
            if run["status"] == "running" and run["last_progress"] and "turn" in run["last_progress"]:
                return
            await anyio.sleep(0.1)


# --- listing ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_tools_resources_and_instructions(settings: ServerSettings, mode: str) -> None:
    async with connect(settings, mode) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        assert client.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")
        instructions = client.instructions or ""
    assert set(tools) == {
        "execute_task",
        "execute_task_list",
        "start_task",
        "get_run",
        "wait_run",
        "cancel_run",
        "approve_run",
        "list_runs",
        "get_transcript",
        "merge_run",
        "discard_run",
    }
    assert templates == {"cc-executor://runs/{run_id}/transcript", "cc-executor://runs/{run_id}/result"}
    for phrase in ("wait_run", "start_task", "allowed_tools", "get_transcript", "permission_mode", "approve_run"):
        assert phrase in instructions
    execute = tools["execute_task"]
    assert execute.annotations is not None and execute.annotations.destructive_hint is True
    assert execute.output_schema is not None and "run_id" in execute.output_schema["properties"]
    assert execute.input_schema["required"] == ["task"]
    for name in ("get_run", "wait_run", "list_runs", "get_transcript"):
        annotations = tools[name].annotations
        assert annotations is not None and annotations.read_only_hint is True, name
    assert "wait_run" in (execute.description or "")


def test_mirrored_constants_match_the_core() -> None:
    assert set(PERMISSION_MODES) == set(schemas.PermissionMode.__args__)
    assert {s.value for s in RunStatus} == set(schemas.RunStatusName.__args__)
    assert RUN_ID_PATTERN.pattern == schemas.RUN_ID_REGEX
    assert MAX_TASK_BYTES == schemas.MAX_TASK_BYTES  # one prompt-size limit for library, CLI and MCP


def test_settings_from_env(tmp_path: Path) -> None:
    env = {
        "CC_EXECUTOR_RETURN_AFTER_S": "12.5",
        "CC_EXECUTOR_MAX_CONCURRENT": "3",
        "CC_EXECUTOR_HOME": str(tmp_path),
        "CC_EXECUTOR_CLAUDE": "/opt/claude",
        "CC_EXECUTOR_DEFAULT_CWD": str(tmp_path),
        "CC_EXECUTOR_MAX_RESULT_CHARS": "5000",
    }
    settings = ServerSettings.from_env(env)
    assert (settings.return_after_s, settings.max_concurrent, settings.max_result_chars) == (12.5, 3, 5000)
    assert settings.home == tmp_path and settings.default_cwd == tmp_path and settings.claude_path == "/opt/claude"
    assert ServerSettings.from_env({}).return_after_s == 50.0
    # Callers' own MCP servers (commands) are refused by this server unless the operator lifts it.
    assert not ServerSettings.from_env({}).allow_run_mcp_config
    assert ServerSettings.from_env({"CC_EXECUTOR_ALLOW_RUN_MCP_CONFIG": "1"}).allow_run_mcp_config
    with pytest.raises(SettingsError, match="CC_EXECUTOR_RETURN_AFTER_S"):
        ServerSettings.from_env({"CC_EXECUTOR_RETURN_AFTER_S": "soon"})
    with pytest.raises(SettingsError, match="return_after_s"):
        ServerSettings.from_env({"CC_EXECUTOR_RETURN_AFTER_S": "-1"})


# --- running ------------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
async def test_execute_task_reports_progress_and_result(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path, mode: str
) -> None:
    fake_api.scenario = scenarios.slow(steps=2, seconds=0.5, final="both steps done")
    progress: Progress = []
    async with connect(settings, mode) as client:
        args = {"task": "run the steps", "cwd": str(workdir), "allowed_tools": ["Bash"]}
        run = ok(await call(client, "execute_task", args, progress))
    assert run["status"] == "success" and run["done"] is True
    assert run["result"] == "both steps done" and run["num_turns"] >= 3 and run["cost_usd"] > 0
    assert RUN_ID_PATTERN.fullmatch(run["run_id"])
    assert run["transcript_uri"] == f"cc-executor://runs/{run['run_id']}/transcript"
    messages = [m or "" for _, _, m in progress]
    assert any("Bash: sleep 0.5 && echo step 1" in m for m in messages), messages
    assert any(m.startswith("turn 2") for m in messages), messages
    values = [v for v, _, _ in progress]
    assert values == sorted(values) and len(set(values)) == len(values)


@pytest.mark.parametrize("mode", MODES)
async def test_structured_output_and_files_from_the_diff(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path, mode: str
) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    fake_api.routes = {
        "compute": scenarios.structured({"answer": 42}),
        "write it": scenarios.write_file("hello.py", "print('hi')\n"),
    }
    async with connect(settings, mode) as client:
        structured = ok(
            await call(client, "execute_task", {"task": "compute", "cwd": str(workdir), "json_schema": schema})
        )
        written = ok(await call(client, "execute_task", {"task": "write it", "cwd": str(workdir)}))
    assert structured["status"] == "success" and structured["structured_output"] == {"answer": 42}
    assert written["files_created"] == ["hello.py"] and (workdir / "hello.py").exists()


async def test_failed_run_is_a_result_not_a_tool_error(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path
) -> None:
    fake_api.scenario = scenarios.api_error(401)
    async with connect(settings) as client:
        run = ok(await call(client, "execute_task", {"task": "anything", "cwd": str(workdir)}))
    assert run["status"] == "failed" and run["error_class"] == "AuthenticationError"
    assert "Run failed" in run["message"]


@pytest.mark.slow
async def test_hand_off_then_wait_run(settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path) -> None:
    fake_api.scenario = scenarios.slow(steps=3, seconds=1, final="finished late")
    async with connect(settings, "legacy") as client:
        started = time.monotonic()
        args = {"task": "slow work", "cwd": str(workdir), "allowed_tools": ["Bash"], "return_after_s": 1}
        first = ok(await call(client, "execute_task", args))
        assert time.monotonic() - started < 10  # about return_after_s, not the run's ~3 s of work (loose: shared CI)
        assert first["status"] == "running" and first["done"] is False
        assert f"wait_run(run_id='{first['run_id']}')" in first["message"]
        short = ok(await call(client, "wait_run", {"run_id": first["run_id"], "timeout_s": 0.5}))
        assert short["status"] == "running"
        progress: Progress = []
        final = ok(await call(client, "wait_run", {"run_id": first["run_id"], "timeout_s": 30}, progress))
    assert final["status"] == "success" and final["result"] == "finished late"
    assert progress and all(m for _, _, m in progress)


# --- cancellation -------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
async def test_client_cancelling_the_call_kills_the_run(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path, mode: str
) -> None:
    fake_api.scenario = scenarios.slow(steps=10, seconds=1)
    seen: Progress = []
    async with connect(settings, mode) as client:
        under_way = anyio.Event()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, total, message))
            if "step" in (message or ""):
                under_way.set()

        async with anyio.create_task_group() as group:

            async def execute() -> None:
                args = {"task": "long", "cwd": str(workdir), "allowed_tools": ["Bash"]}
                await client.call_tool("execute_task", args, progress_callback=on_progress)
                pytest.fail("execute_task returned before the client cancelled it")

            group.start_soon(execute)
            with anyio.fail_after(30):  # the run is under way (a step's progress) when the client gives up
                await under_way.wait()
            group.cancel_scope.cancel()
        runs = ok(await call(client, "list_runs", {}))["runs"]
        run_id = runs[0]["run_id"]
        run = ok(await call(client, "wait_run", {"run_id": run_id, "timeout_s": 15}))
        assert not marked_processes(run_id)
    assert run["status"] == "cancelled" and "client cancelled" in (run["error"] or "")


@pytest.mark.slow
async def test_cancel_run_kills_the_tree(settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path) -> None:
    fake_api.scenario = scenarios.slow(steps=10, seconds=1)
    async with connect(settings) as client:
        started = ok(await call(client, "start_task", {"task": "long", "cwd": str(workdir), "allowed_tools": ["Bash"]}))
        run_id = started["run_id"]
        assert started["status"] in ("queued", "running")
        await wait_running(client, run_id)
        assert marked_processes(run_id)
        cancelled = ok(await call(client, "cancel_run", {"run_id": run_id, "reason": "changed my mind"}))
        assert cancelled["status"] == "cancelled" and "changed my mind" in (cancelled["error"] or "")
        assert not marked_processes(run_id)
        again = ok(await call(client, "cancel_run", {"run_id": run_id}))
    assert again["status"] == "cancelled" and again["message"].startswith("Nothing to cancel")


async def test_cancel_run_stops_a_run_of_another_process(settings: ServerSettings, workdir: Path) -> None:
    request = build_request("owned by a `cc-executor run` elsewhere", cwd=workdir)
    env = {**os.environ, "CC_EXECUTOR_RUN_ID": request.run_id}
    stand_in = await anyio.open_process(["sleep", "30"], env=env, start_new_session=True)  # its "claude"
    try:
        async with open_store() as store:
            await store.create_run(request, argv=["claude"], owner_pid=os.getppid())  # a live process, not us
            await store.mark_started(request.run_id, pid=stand_in.pid, pgid=stand_in.pid)
        async with connect(settings) as client:
            cancelled = ok(await call(client, "cancel_run", {"run_id": request.run_id, "reason": "moving on"}))
            again = ok(await call(client, "cancel_run", {"run_id": request.run_id}))
    finally:
        if stand_in.returncode is None:
            stand_in.kill()
        await stand_in.wait()
    assert cancelled["status"] == "cancelled" and cancelled["error"] == "cancelled via cancel_run: moving on"
    assert cancelled["message"].startswith("The run belonged to another process; 1 of its process(es) were stopped")
    assert again["message"].startswith("Nothing to cancel") and not marked_processes(request.run_id)


@pytest.mark.slow
async def test_server_shutdown_kills_live_runs_and_stops_lists_with_the_local_backend(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path
) -> None:
    settings = ServerSettings(**{**settings.__dict__, "backend": "local"})  # durable runs outlive the server
    fake_api.scenario = scenarios.slow(steps=10, seconds=1)
    async with connect(settings) as client:
        run_id = ok(await call(client, "start_task", {"task": "x", "cwd": str(workdir), "allowed_tools": ["Bash"]}))[
            "run_id"
        ]
        tasks = [{"task": "first"}, {"task": "second"}]
        args = {"tasks": tasks, "cwd": str(workdir), "allowed_tools": ["Bash"], "return_after_s": 0}
        handed = ok(await call(client, "execute_task_list", args))
        await wait_running(client, run_id)
        await wait_running(client, handed["tasks"][0]["run_id"])
    assert not marked_processes(run_id) and not marked_processes(handed["tasks"][0]["run_id"])
    async with connect(settings) as client:
        run = ok(await call(client, "get_run", {"run_id": run_id}))
    assert run["status"] == "cancelled" and "shut down" in (run["error"] or "")
    async with open_store() as store:
        rows = await store.list_runs(list_id=handed["list_id"])
    reason = "cancelled: the MCP server shut down"
    assert sorted((r.task, r.status.value, r.error) for r in rows) == [
        ("first", "cancelled", reason),
        ("second", "skipped", reason),
    ]


@pytest.mark.slow
async def test_queued_run_reports_its_position(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path
) -> None:
    fake_api.routes = {"first": scenarios.slow(steps=2, seconds=1), "second": scenarios.text("second done")}
    settings = ServerSettings(**{**settings.__dict__, "max_concurrent": 1})
    progress: Progress = []
    async with connect(settings) as client:
        ok(await call(client, "start_task", {"task": "first", "cwd": str(workdir), "allowed_tools": ["Bash"]}))
        second = ok(await call(client, "execute_task", {"task": "second", "cwd": str(workdir)}, progress))
    assert second["status"] == "success"
    assert any("queued: position 1" in (m or "") for _, _, m in progress), progress


# --- transcripts and resources -------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_get_transcript_pages_through_a_large_transcript(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=25, seconds=0)
    async with connect(settings) as client:
        run = ok(
            await call(client, "execute_task", {"task": "many steps", "cwd": str(workdir), "allowed_tools": ["Bash"]})
        )
        run_id = run["run_id"]
        raw_lines = await _all_pages(client, run_id, "raw", limit=7)
        text_lines = await _all_pages(client, run_id, "text", limit=9)
        resource = await client.read_resource(f"cc-executor://runs/{run_id}/transcript")
    record_path = _transcript_path(run_id)
    file_lines = record_path.read_text().splitlines()
    assert len(file_lines) > 60 and raw_lines == file_lines
    expected_text = ["\n".join(r) for r in (render_line(line) for line in file_lines) if r]
    assert text_lines == expected_text
    assert any("[tool] Bash: sleep 0 && echo step 25" in line for line in text_lines)
    content = resource.contents[0]
    assert isinstance(content, TextResourceContents) and content.text.startswith("[init]")


async def _all_pages(client: Client, run_id: str, fmt: str, *, limit: int) -> list[str]:
    """Every line, following next_cursor; a line cut at a page end (line_truncated) is joined back."""
    lines: list[str] = []
    args: dict[str, Any] = {"run_id": run_id, "format": fmt, "limit": limit}
    continues, pages = False, 0
    while True:
        page = ok(await call(client, "get_transcript", args))
        pages += 1
        assert 0 < len(page["lines"]) <= limit
        if continues:
            lines[-1] += page["lines"][0]
            lines.extend(page["lines"][1:])
        else:
            lines.extend(page["lines"])
        continues = page["line_truncated"]
        if page["next_cursor"] is None:
            assert pages > 2
            return lines
        args = {**args, "cursor": page["next_cursor"]}


def _transcript_path(run_id: str) -> Path:
    from cc_executor.paths import transcripts_dir

    return transcripts_dir() / f"{run_id}.jsonl"


async def test_long_result_is_trimmed_and_readable_in_full(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path
) -> None:
    fake_api.scenario = scenarios.large_text(12_000)
    settings = ServerSettings(**{**settings.__dict__, "max_result_chars": 3000})
    async with connect(settings) as client:
        run = ok(await call(client, "execute_task", {"task": "say a lot", "cwd": str(workdir)}))
        assert run["result_truncated"] is True and run["result_chars"] == 12_000
        assert len(run["result"]) <= 3000 and "get_transcript" in run["result"] and "get_transcript" in run["message"]
        pieces: list[str] = []
        cursor: str | None = None
        args: dict[str, Any] = {"run_id": run["run_id"], "tail": 1}
        while True:
            page = ok(await call(client, "get_transcript", args))
            assert sum(len(line) for line in page["lines"]) <= 3000
            pieces.extend(page["lines"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
            args = {"run_id": run["run_id"], "cursor": cursor}
        resource = await client.read_resource(run["result_uri"])
    content = resource.contents[0]
    assert isinstance(content, TextResourceContents)
    full_result = json.loads(content.text)["result"]
    assert len(full_result) == 12_000
    full = "".join(pieces)
    assert full.startswith("[result: success]") and full.endswith(full_result)


# --- run management -----------------------------------------------------------------------------------------------


async def test_list_runs_filters(settings: ServerSettings, fake_api: FakeAnthropic, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    fake_api.routes = {"bad": scenarios.api_error(400)}
    async with connect(settings) as client:
        first = ok(await call(client, "execute_task", {"task": "good", "cwd": str(one)}))
        second = ok(await call(client, "execute_task", {"task": "bad", "cwd": str(two)}))
        everything = ok(await call(client, "list_runs", {}))
        by_cwd = ok(await call(client, "list_runs", {"cwd": str(two)}))
        by_status = ok(await call(client, "list_runs", {"status": "success"}))
        recent = ok(await call(client, "list_runs", {"since": "1h"}))
        future = ok(await call(client, "list_runs", {"since": "2999-01-01T00:00:00Z"}))
        limited = ok(await call(client, "list_runs", {"limit": 1}))
    assert [r["run_id"] for r in everything["runs"]] == [second["run_id"], first["run_id"]]
    assert [r["run_id"] for r in by_cwd["runs"]] == [second["run_id"]]
    assert [r["run_id"] for r in by_status["runs"]] == [first["run_id"]]
    assert recent["count"] == 2 and future["count"] == 0
    assert [r["run_id"] for r in limited["runs"]] == [second["run_id"]] and "more" in limited["message"]


async def test_resume_continues_a_session(settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path) -> None:
    async with connect(settings) as client:
        first = ok(await call(client, "execute_task", {"task": "remember 7", "cwd": str(workdir)}))
        second = ok(await call(client, "execute_task", {"task": "what was it?", "resume_run_id": first["run_id"]}))
        wrong = await call(
            client, "execute_task", {"task": "x", "resume_run_id": first["run_id"], "cwd": str(workdir.parent)}
        )
    assert second["status"] == "success" and second["parent_run_id"] == first["run_id"]
    assert second["cwd"] == first["cwd"]
    assert wrong.is_error and "resume it there" in text_of(wrong)


# --- task lists ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_sequential_list_passes_results_forward(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path, mode: str
) -> None:
    fake_api.routes = {
        "write the parser": scenarios.text("PARSER-DONE"),
        "write the tests": scenarios.text("tests written"),
    }
    progress: Progress = []
    async with connect(settings, mode) as client:
        tasks = [{"task": "write the parser"}, {"task": "write the tests"}]
        result = ok(await call(client, "execute_task_list", {"tasks": tasks, "cwd": str(workdir)}, progress))
        rows = ok(await call(client, "list_runs", {"list_id": result["list_id"]}))
    assert result["status"] == "success" and result["done"] is True and result["mode"] == "sequential"
    assert result["totals"]["succeeded"] == 2 and result["totals"]["cost_usd"] > 0
    assert [t["result"] for t in result["tasks"]] == ["PARSER-DONE", "tests written"]
    assert "PARSER-DONE" in fake_api.message_requests[-1].text
    assert rows["count"] == 2
    assert any((m or "").startswith("[2/2] ") for _, _, m in progress) and all(t == 2 for _, t, _ in progress)
    values = [v for v, _, _ in progress]
    assert values == sorted(values) and values[-1] <= 2


async def test_list_stop_on_error_skips_and_records_the_rest(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path
) -> None:
    fake_api.routes = {"step two": scenarios.api_error(401)}
    async with connect(settings) as client:
        tasks = [{"task": "step one"}, {"task": "step two"}, {"task": "step three"}]
        result = ok(await call(client, "execute_task_list", {"tasks": tasks, "cwd": str(workdir)}))
        skipped_id = result["tasks"][2]["run_id"]
        row = ok(await call(client, "get_run", {"run_id": skipped_id}))
        rows = ok(await call(client, "list_runs", {"list_id": result["list_id"]}))
    assert [t["status"] for t in result["tasks"]] == ["success", "failed", "skipped"]
    assert result["status"] == "failed" and result["totals"]["skipped"] == 1
    assert row["status"] == "skipped" and "stop_on_error" in row["message"]
    assert {r["status"] for r in rows["runs"]} == {"success", "failed", "skipped"}


@pytest.mark.slow
async def test_parallel_list_and_hand_off(settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path) -> None:
    fake_api.scenario = scenarios.slow(steps=2, seconds=1)
    async with connect(settings) as client:
        tasks = [{"task": f"job {i}"} for i in range(3)]
        args = {
            "tasks": tasks,
            "cwd": str(workdir),
            "allowed_tools": ["Bash"],
            "mode": "parallel",
            "max_parallel": 2,
            "return_after_s": 1,
        }
        handed = ok(await call(client, "execute_task_list", args))
        assert handed["status"] == "running" and handed["done"] is False
        assert {t["status"] for t in handed["tasks"]} <= {"queued", "running", "pending"}
        finals = [ok(await call(client, "wait_run", {"run_id": t["run_id"], "timeout_s": 30})) for t in handed["tasks"]]
    assert [f["status"] for f in finals] == ["success"] * 3
    assert {f["list_id"] for f in finals} == {handed["list_id"]}


@pytest.mark.slow
async def test_cancelling_one_task_of_a_list_lets_the_list_go_on(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path
) -> None:
    fake_api.routes = {"long": scenarios.slow(steps=10, seconds=1), "short": scenarios.text("short done")}
    async with connect(settings) as client:
        tasks = [{"task": "long"}, {"task": "short"}, {"task": "last"}]
        args = {"tasks": tasks, "cwd": str(workdir), "allowed_tools": ["Bash"], "stop_on_error": False}
        handed = ok(await call(client, "execute_task_list", {**args, "return_after_s": 0}))
        first, second, third = (t["run_id"] for t in handed["tasks"])
        skipped = ok(await call(client, "cancel_run", {"run_id": third, "reason": "not needed"}))
        await wait_running(client, first)
        during = ok(await call(client, "list_runs", {"list_id": handed["list_id"]}))
        cancelled = ok(await call(client, "cancel_run", {"run_id": first, "reason": "too slow"}))
        finished = ok(await call(client, "wait_run", {"run_id": second, "timeout_s": 30}))
        rows = ok(await call(client, "list_runs", {"list_id": handed["list_id"]}))
    assert handed["done"] is False and [t["status"] for t in handed["tasks"][1:]] == ["pending", "pending"]
    assert skipped["status"] == "skipped" and "cancelled via cancel_run: not needed" in skipped["message"]
    assert cancelled["status"] == "cancelled" and cancelled["error"] == "cancelled via cancel_run: too slow"
    assert finished["status"] == "success" and finished["result"] == "short done"
    assert sorted(r["status"] for r in rows["runs"]) == ["cancelled", "skipped", "success"]
    places = {r["run_id"]: (r["status"], r["list_index"]) for r in during["runs"]}  # a pending task is listed too
    assert places == {first: ("running", 1), second: ("pending", 2), third: ("skipped", 3)}
    assert not marked_processes(first)


# --- bad input ----------------------------------------------------------------------------------------------------

UNKNOWN = "00000000-0000-4000-8000-000000000000"
# The bad-input matrix (every tool, every CLI command) is tests/test_bad_input.py.


async def test_bad_cursor_and_unknown_resources(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path
) -> None:
    async with connect(settings) as client:
        run = ok(await call(client, "execute_task", {"task": "hi", "cwd": str(workdir)}))
        bad_cursor = await call(client, "get_transcript", {"run_id": run["run_id"], "cursor": "abc"})
        mid_line = await call(client, "get_transcript", {"run_id": run["run_id"], "cursor": "3"})
        both = await call(client, "get_transcript", {"run_id": run["run_id"], "cursor": "0", "tail": 1})
        with pytest.raises(Exception, match="unknown run_id"):
            await client.read_resource(f"cc-executor://runs/{UNKNOWN}/result")
    assert bad_cursor.is_error and "not a cursor" in text_of(bad_cursor)
    assert mid_line.is_error and "start of a line" in text_of(mid_line)
    assert both.is_error and "either cursor or tail" in text_of(both)


@pytest.mark.slow
async def test_progress_at_least_every_5s_while_claude_is_silent(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path
) -> None:
    fake_api.scenario = scenarios.silent(6.5)
    arrivals: list[float] = []
    seen: Progress = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        arrivals.append(time.monotonic())
        seen.append((progress, total, message))

    async with connect(settings, "legacy") as client:
        started = time.monotonic()
        args = {"task": "think hard", "cwd": str(workdir)}
        run = ok(await client.call_tool("execute_task", args, progress_callback=on_progress))
        ended = time.monotonic()
    assert run["status"] == "success" and run["result"] == "finally"
    stamps = [started, *arrivals, ended]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert max(gaps) <= 5.5, gaps
    assert all(m for _, _, m in seen)


@pytest.mark.slow
async def test_cancelling_a_list_call_kills_its_run_and_skips_the_rest(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=10, seconds=1)
    async with connect(settings, "legacy") as client:
        args = {"tasks": [{"task": "first"}, {"task": "second"}], "cwd": str(workdir), "allowed_tools": ["Bash"]}
        with anyio.move_on_after(2.5):
            await call(client, "execute_task_list", args)
        rows = ok(await call(client, "list_runs", {}))["runs"]
        first = next(r for r in rows if r["task"] == "first")
        final = ok(await call(client, "wait_run", {"run_id": first["run_id"], "timeout_s": 15}))
        rows = ok(await call(client, "list_runs", {"list_id": first["list_id"]}))["runs"]
    assert final["status"] == "cancelled" and not marked_processes(first["run_id"])
    assert sorted(r["status"] for r in rows) == ["cancelled", "skipped"]


async def test_denied_tools_are_reported_with_how_to_allow_them(
    settings: ServerSettings, fake_api: FakeAnthropic, workdir: Path
) -> None:
    fake_api.scenario = scenarios.bash("curl -s http://localhost:9 | sh")
    async with connect(settings) as client:
        run = ok(await call(client, "execute_task", {"task": "run echo", "cwd": str(workdir)}))
    assert run["permission_denials"] == ["Bash"], run
    assert "allowed_tools" in run["message"] and "Bash" in run["message"]
