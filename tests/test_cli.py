"""The CLI as a user drives it: `python -m cc_executor.cli ...` subprocesses, the real claude CLI behind the fake API.

The fake API runs in this test's event loop, so every CLI process is awaited with anyio (never subprocess.run).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.streams.text import TextReceiveStream

from cc_executor.api import open_store
from cc_executor.engine import process
from cc_executor.models import RunStatus
from cc_executor.testing import scenarios
from cc_executor.testing.fake_api import FakeAnthropic
from cc_executor.testing.terminal import on_a_terminal

pytestmark = pytest.mark.anyio

CLI = [sys.executable, "-m", "cc_executor.cli"]
TEST_MODEL = "claude-sonnet-4-5"
SEED_SCHEMA = {
    "type": "object",
    "properties": {"result": {"type": "string"}, "summary": {"type": "string"}},
    "required": ["result", "summary"],
}


@pytest.fixture
def env(cli_env: dict[str, str], claude_bin: Path) -> dict[str, str]:
    """What a user's shell would have: our environment (CC_EXECUTOR_HOME included) plus the offline CLI settings."""
    return {**os.environ, **cli_env, "CC_EXECUTOR_CLAUDE": str(claude_bin)}


async def cli(env: dict[str, str], *args: str, cwd: Path | None = None, stdin: bytes | None = None) -> Any:
    return await anyio.run_process([*CLI, *args], env=env, cwd=cwd, input=stdin, check=False)


def text(output: bytes) -> str:
    return output.decode("utf-8", "replace")


async def read_until(stream: anyio.abc.ByteReceiveStream, needle: str, seen: list[str], within: float = 20) -> str:
    """Collect text from ``stream`` into ``seen`` until ``needle`` shows up."""
    with anyio.fail_after(within):
        async for chunk in TextReceiveStream(stream):
            seen.append(chunk)
            if needle in "".join(seen):
                break
    return "".join(seen)


def run_id_from(stderr: str) -> str:
    """The full id from the first progress line: `[cc-executor 1234abcd] run <id> in <cwd>`."""
    for line in stderr.splitlines():
        if "] run " in line:
            return line.split("] run ", 1)[1].split()[0]
    raise AssertionError(f"no run line in {stderr!r}")


# --- run --------------------------------------------------------------------------------------------------------


async def test_run_writes_progress_lines_and_the_result_to_files(
    fake_api: FakeAnthropic, env: dict[str, str], workdir: Path, tmp_path: Path
) -> None:
    fake_api.scenario = scenarios.write_file("hello.py", "print('hello')\n", final="wrote hello.py for you")
    out_file, err_file = tmp_path / "out.txt", tmp_path / "err.txt"

    with out_file.open("wb") as stdout, err_file.open("wb") as stderr_sink:
        code = (
            await anyio.run_process(
                [*CLI, "run", "create hello.py", "--cwd", str(workdir), "--allowed-tools", "Write"],
                env=env,
                stdout=stdout,
                stderr=stderr_sink,
                check=False,
            )
        ).returncode

    stderr = err_file.read_text()
    assert code == 0, stderr
    assert out_file.read_text() == "wrote hello.py for you\n"
    run_id = run_id_from(stderr)
    assert f"[cc-executor {run_id[:8]}] claude started" in stderr
    assert "Write: " in stderr and "hello.py" in stderr
    assert f"✓ success · run {run_id}" in stderr
    assert "files created: hello.py" in stderr
    assert "\x1b[" not in stderr  # plain lines, no terminal codes
    assert (workdir / "hello.py").read_text() == "print('hello')\n"
    async with open_store() as store:
        record = await store.get(run_id)
    assert record.status is RunStatus.SUCCESS and record.files_created == ["hello.py"]


async def test_run_json_is_the_only_thing_on_stdout(
    fake_api: FakeAnthropic, env: dict[str, str], workdir: Path, tmp_path: Path
) -> None:
    payload = {"result": "42", "summary": "answered"}
    fake_api.scenario = scenarios.structured(payload)
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SEED_SCHEMA))

    done = await cli(env, "run", "answer", "--cwd", str(workdir), "--schema", str(schema), "--json")

    assert done.returncode == 0, text(done.stderr)
    result = json.loads(done.stdout)
    assert result["status"] == "success"
    assert result["structured_output"] == payload
    assert result["run_id"] in text(done.stderr)  # progress went to stderr


async def test_run_reads_the_task_from_stdin_and_passes_flags(
    fake_api: FakeAnthropic, env: dict[str, str], workdir: Path
) -> None:
    fake_api.scenario = scenarios.text("ok")
    task = "a long prompt\nover several lines: MARKER-7"

    done = await cli(
        env, "run", "-", "--cwd", str(workdir), "--model", TEST_MODEL, "--max-turns", "3", "-q", stdin=task.encode()
    )

    assert done.returncode == 0, text(done.stderr)
    assert text(done.stdout).strip() == "ok"
    assert text(done.stderr).startswith("✓ success")  # -q: no progress lines
    body = fake_api.message_requests[0].body
    assert "MARKER-7" in json.dumps(body["messages"]) and body["model"] == TEST_MODEL
    async with open_store() as store:
        (record,) = await store.list_runs()
    assert "--max-turns=3" in record.argv and record.task == task


async def test_failed_run_exits_1_and_says_why(fake_api: FakeAnthropic, env: dict[str, str], workdir: Path) -> None:
    fake_api.scenario = scenarios.api_error(401)

    done = await cli(env, "run", "hi", "--cwd", str(workdir))

    assert done.returncode == 1
    stderr = text(done.stderr)
    assert "✗ failed (AuthenticationError)" in stderr
    assert "--transcript" in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "no task"),
        (("hi", "--cwd", "/nonexistent/dir"), "does not exist"),
        (("hi", "--file", "x.md"), "not both"),
        (("hi", "--timeout", "-1"), "timeout"),
        (("hi", "--schema", "/nonexistent.json"), "cannot read --schema"),
    ],
)
async def test_bad_run_input_exits_2_before_anything_starts(
    env: dict[str, str], workdir: Path, args: tuple[str, ...], message: str
) -> None:
    done = await cli(env, "run", *args, cwd=workdir)

    assert done.returncode == 2
    assert message in text(done.stderr)
    async with open_store() as store:
        assert await store.list_runs() == []


async def test_run_without_claude_says_where_it_looked(env: dict[str, str], workdir: Path) -> None:
    done = await cli(env, "run", "hi", "--cwd", str(workdir), "--claude", "/nonexistent/claude")

    assert done.returncode == 1
    stderr = text(done.stderr)
    assert stderr.startswith("cc-executor run: error: the Claude Code CLI `claude` was not found")
    assert "/nonexistent/claude" in stderr and "npm install -g @anthropic-ai/claude-code" in stderr
    assert "Traceback" not in stderr


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root is refused bypass mode")
async def test_bypass_as_root_is_refused_before_spawning(env: dict[str, str], workdir: Path) -> None:
    bare = {k: v for k, v in env.items() if k != "IS_SANDBOX"}
    bare["CC_EXECUTOR_ALLOWED_PERMISSION_MODES"] = "acceptEdits,bypassPermissions"  # the operator's policy allows it

    done = await cli(bare, "run", "hi", "--cwd", str(workdir), "--permission-mode", "bypassPermissions")

    assert done.returncode == 2 and "IS_SANDBOX=1" in text(done.stderr)


async def test_run_on_a_terminal_draws_a_live_status_line(
    fake_api: FakeAnthropic, env: dict[str, str], workdir: Path
) -> None:
    fake_api.scenario = scenarios.write_file("hello.py", "print('hello')\n")

    code, screen = await on_a_terminal(
        [*CLI, "run", "create hello.py", "--cwd", str(workdir), "--allowed-tools", "Write"],
        {**env, "TERM": "xterm-256color"},
    )

    assert code == 0, screen
    assert "\x1b[" in screen  # rich drew on the terminal
    visible = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    assert "→ Write: " in visible and "starting" in visible and " · turn " in visible
    assert "✓ success" in visible and "wrote hello.py" in visible
    assert "[cc-executor" not in visible  # the spinner line, not the plain progress lines


@pytest.mark.slow
async def test_ctrl_c_cancels_the_run_kills_its_tree_and_exits_130(
    fake_api: FakeAnthropic, env: dict[str, str], workdir: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=5, seconds=1)
    proc = await anyio.open_process(
        [*CLI, "run", "five slow steps", "--cwd", str(workdir), "--allowed-tools", "Bash"], env=env
    )
    seen: list[str] = []
    assert proc.stderr is not None
    stderr = await read_until(proc.stderr, "echo step 2", seen)
    run_id = run_id_from(stderr)
    assert process.marked_processes(run_id)  # claude and its Bash tool are running

    proc.send_signal(signal.SIGINT)
    with anyio.fail_after(20):
        code = await proc.wait()
        rest = await proc.stderr.receive(65536) if code else b""
    stderr += text(rest)

    assert code == 130, stderr
    assert "cancelled" in stderr
    assert process.marked_processes(run_id) == []
    async with open_store() as store:
        record = await store.get(run_id)
    assert record.status is RunStatus.CANCELLED
    assert record.error_class == "RunCancelledError" and "SIGINT" in (record.error or "")


# --- runs / show ------------------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_runs_lists_and_filters_recorded_runs(
    fake_api: FakeAnthropic, env: dict[str, str], tmp_path: Path
) -> None:
    fake_api.scenario = scenarios.text("fine")
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    assert (await cli(env, "run", "first task", "--cwd", str(first), "-q")).returncode == 0
    assert (await cli(env, "run", "second task", "--cwd", str(second), "-q")).returncode == 0

    table = text((await cli(env, "runs")).stdout).splitlines()
    assert table[0].split() == ["ID", "STATUS", "STARTED", "DURATION", "COST", "TASK", "CWD"]
    assert "second task" in table[1] and "first task" in table[2]  # newest first
    assert all("success" in row for row in table[1:]) and len(table) == 3

    listed = json.loads((await cli(env, "runs", "--json")).stdout)
    assert [r["task"] for r in listed] == ["second task", "first task"]
    assert all(r["status"] == "success" and r["cost_usd"] is not None for r in listed)
    only_a = json.loads((await cli(env, "runs", "--json", "--cwd", str(first))).stdout)
    assert [r["task"] for r in only_a] == ["first task"]
    assert len(json.loads((await cli(env, "runs", "--json", "--limit", "1")).stdout)) == 1
    assert json.loads((await cli(env, "runs", "--json", "--status", "failed")).stdout) == []
    assert len(json.loads((await cli(env, "runs", "--json", "--since", "1h")).stdout)) == 2


@pytest.mark.slow
async def test_show_prints_the_record_and_pages_the_transcript(
    fake_api: FakeAnthropic, env: dict[str, str], workdir: Path
) -> None:
    fake_api.scenario = scenarios.write_file("hello.py", "print('hello')\n", final="all written")
    done = await cli(env, "run", "create hello.py", "--cwd", str(workdir), "--allowed-tools", "Write", "-q")
    run_id = json.loads((await cli(env, "runs", "--json")).stdout)[0]["run_id"]
    assert done.returncode == 0

    shown = text((await cli(env, "show", run_id[:6])).stdout)
    assert f"run              {run_id}" in shown
    assert "status           success" in shown and "files created    hello.py" in shown
    assert shown.rstrip().endswith("all written")
    record = json.loads((await cli(env, "show", run_id, "--json")).stdout)
    assert record["run_id"] == run_id and record["files_created"] == ["hello.py"]

    readable = text((await cli(env, "show", run_id[:6], "--transcript")).stdout)
    assert readable.startswith("[init] session")
    assert "[tool] Write: " in readable and "[result: success]" in readable

    raw_lines = [json.loads(line) for line in text((await cli(env, "show", run_id[:6], "--raw")).stdout).splitlines()]
    paged: list[dict[str, Any]] = []
    cursor: int | None = 0
    while cursor is not None:
        page = json.loads(
            (await cli(env, "show", run_id, "--raw", "--json", "--limit", "2", "--cursor", str(cursor))).stdout
        )
        paged += [json.loads(line) for line in page["lines"]]
        assert len(page["lines"]) <= 2
        cursor = page["next_cursor"]
    assert paged == raw_lines and raw_lines[0]["type"] == "system" and raw_lines[-1]["type"] == "result"

    one_page = await cli(env, "show", run_id[:6], "--transcript", "--limit", "1")
    assert "-- more: cc-executor show" in text(one_page.stderr) and "--cursor" in text(one_page.stderr)


async def test_show_unknown_or_bad_ids_exit_2(env: dict[str, str]) -> None:
    unknown = await cli(env, "show", "abcdef")
    assert unknown.returncode == 2 and "no run with id 'abcdef'" in text(unknown.stderr)
    bad = await cli(env, "show", "../etc")
    assert bad.returncode == 2 and "invalid run id" in text(bad.stderr)


@pytest.mark.slow
async def test_show_follow_transcript_tails_a_running_run_to_its_end(
    fake_api: FakeAnthropic, env: dict[str, str], workdir: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=2, seconds=1)
    runner = await anyio.open_process(
        [*CLI, "run", "two steps", "--cwd", str(workdir), "--allowed-tools", "Bash"], env=env
    )
    assert runner.stderr is not None
    run_id = run_id_from(await read_until(runner.stderr, "claude started", []))

    followed = await cli(env, "show", run_id[:8], "--follow", "--transcript")

    assert followed.returncode == 0, text(followed.stderr)
    out = text(followed.stdout)
    assert "[tool] Bash: sleep 1 && echo step 1" in out and "[tool] Bash: sleep 1 && echo step 2" in out
    assert "[result: success]" in out
    assert f"✓ success · run {run_id}" in text(followed.stderr)
    assert await runner.wait() == 0


@pytest.mark.slow
async def test_show_follow_ends_when_the_owner_dies(
    fake_api: FakeAnthropic, env: dict[str, str], workdir: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=5, seconds=1)
    owner = await anyio.open_process(
        [*CLI, "run", "five steps", "--cwd", str(workdir), "--allowed-tools", "Bash"], env=env
    )
    assert owner.stderr is not None
    run_id = run_id_from(await read_until(owner.stderr, "echo step 1", []))
    follower = await anyio.open_process([*CLI, "show", run_id, "--follow"], env=env)

    owner.kill()  # SIGKILL: no chance to record anything
    await owner.wait()
    with anyio.fail_after(20):
        code = await follower.wait()

    assert follower.stderr is not None
    assert code == 4  # show --follow: 4 = lost
    assert "✗ lost (RunLostError)" in await read_until(follower.stderr, "✗ lost", [])
    assert process.marked_processes(run_id) == []


# --- cancel -----------------------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_cancel_from_a_second_process_stops_the_run(
    fake_api: FakeAnthropic, env: dict[str, str], workdir: Path
) -> None:
    fake_api.scenario = scenarios.slow(steps=5, seconds=1)
    owner = await anyio.open_process(
        [*CLI, "run", "five slow steps", "--cwd", str(workdir), "--allowed-tools", "Bash"], env=env
    )
    assert owner.stderr is not None
    seen: list[str] = []
    run_id = run_id_from(await read_until(owner.stderr, "echo step 1", seen))

    cancelled = await cli(env, "cancel", run_id[:8], "--json")

    assert cancelled.returncode == 0, text(cancelled.stderr)
    outcome = json.loads(cancelled.stdout)
    assert outcome["cancelled"] is True and outcome["signalled"] >= 1 and outcome["remaining_processes"] == 0
    with anyio.fail_after(20):
        assert await owner.wait() == 1  # the owner saw its run end as cancelled
    owner_stderr = await read_until(owner.stderr, "✗ cancelled", seen)
    assert "✗ cancelled (RunCancelledError)" in owner_stderr
    assert process.marked_processes(run_id) == []
    async with open_store() as store:
        record = await store.get(run_id)
    assert record.status is RunStatus.CANCELLED and record.error_class == "RunCancelledError"

    again = await cli(env, "cancel", run_id)
    assert again.returncode == 1 and "already finished (cancelled)" in text(again.stderr)


# --- serve ------------------------------------------------------------------------------------------------------


async def test_serve_speaks_mcp_on_stdio_and_nothing_else(env: dict[str, str]) -> None:
    from mcp.client import Client
    from mcp.client.stdio import StdioServerParameters

    params = StdioServerParameters(command=sys.executable, args=["-m", "cc_executor.cli", "serve"], env=env)
    with anyio.fail_after(30):
        async with Client(params, mode="legacy") as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
    assert {"execute_task", "get_transcript", "cancel_run"} <= tools
