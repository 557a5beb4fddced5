"""Bad input, every MCP tool and every CLI command: one sentence naming the problem, and nothing else happens.

Each case asserts the message (the field's name first, no pydantic dump, no "Error executing tool", no
"internal error"), and that nothing started: no row in the registry, no transcript, no file in the work dir, no
request to the (fake) API, no process. MCP cases run in memory, one fresh server per case; CLI cases run the
real `python -m cc_executor.cli` in subprocesses, a command's cases side by side, each with its own state dir.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from cc_executor_mcp.app import create_server
from cc_executor_mcp.settings import ServerSettings
from mcp import Client
from mcp.types import TextContent

from cc_executor.api import open_store
from cc_executor.engine.process import descendants
from cc_executor.models import MAX_TASK_BYTES, CCExecutorConfig
from cc_executor.testing.fake_api import FakeAnthropic

pytestmark = pytest.mark.anyio

UNKNOWN = "00000000-0000-4000-8000-000000000000"
UPPER = "ABCDEF00-0000-4000-8000-000000000000"
WORK = "<workdir>"  # replaced by the case's work dir


def bad_id(field: str, value: str) -> str:
    return f"{field}: invalid run id {value!r}: it is not a run id (a lowercase UUID"


NO_SUCH_RUN = f"unknown run_id '{UNKNOWN}': no such run"
OPAQUE = ("validation error for", "[type=", "pydantic.dev", "Error executing tool", "internal error", "Traceback")


def with_cwd(args: dict[str, Any]) -> dict[str, Any]:
    return {"cwd": WORK, **args}


# (tool, arguments, the expected sentence or the start of it)
MCP_CASES: list[tuple[str, dict[str, Any], str]] = [
    # execute_task
    ("execute_task", with_cwd({"task": ""}), "task: must not be empty"),
    ("execute_task", with_cwd({"task": " \n\t"}), "task: must not be empty"),
    (
        "execute_task",
        with_cwd({"task": "x" * (MAX_TASK_BYTES + 1)}),
        f"task: is {MAX_TASK_BYTES + 1} bytes; the limit is {MAX_TASK_BYTES} bytes (4 MiB: put large inputs in files",
    ),
    ("execute_task", with_cwd({"task": "a\x00b"}), "task: must not contain a NUL character"),
    ("execute_task", with_cwd({"task": 5}), "task: must be a string"),
    ("execute_task", with_cwd({}), "task: is required"),
    ("execute_task", {"task": "x"}, "cwd: is required (the server has no CC_EXECUTOR_DEFAULT_CWD)"),
    ("execute_task", {"task": "x", "cwd": "relative/dir"}, "cwd: 'relative/dir' is not an absolute path"),
    ("execute_task", {"task": "x", "cwd": "/nonexistent/dir"}, "cwd: '/nonexistent/dir' does not exist"),
    ("execute_task", {"task": "x", "cwd": "/etc/hostname"}, "cwd: '/etc/hostname' is not a directory"),
    (
        "execute_task",
        {"task": "x", "cwd": "~nosuchuser/x"},
        "cwd: '~nosuchuser/x': ~nosuchuser is not the home directory of a known user",
    ),
    ("execute_task", {"task": "x", "cwd": "/tmp/a\x00b"}, "cwd: must not contain a NUL character"),
    ("execute_task", with_cwd({"task": "x", "json_schema": {"type": "nope"}}), "json_schema: must describe an object"),
    (
        "execute_task",
        with_cwd({"task": "x", "json_schema": {"type": "object", "properties": 5}}),
        "json_schema: is invalid at properties: 5 is not of type 'object'",
    ),
    ("execute_task", {"task": ["x"], "cwd": 5}, "task: must be a string; cwd: must be a string"),
    ("execute_task", with_cwd({"task": "x", "json_schema": "an object"}), "json_schema: must be an object"),
    ("execute_task", with_cwd({"task": "x", "timeout_s": -1}), "timeout_s: must be greater than 0 seconds"),
    ("execute_task", with_cwd({"task": "x", "timeout_s": 1e12}), "timeout_s: must be at most 604800 seconds"),
    ("execute_task", with_cwd({"task": "x", "timeout_s": "soon"}), "timeout_s: must be a number"),
    ("execute_task", with_cwd({"task": "x", "idle_timeout_s": 0}), "idle_timeout_s: must be greater than 0 seconds"),
    ("execute_task", with_cwd({"task": "x", "return_after_s": -5}), "return_after_s: must be at least 0 seconds"),
    (
        "execute_task",
        with_cwd({"task": "x", "permission_mode": "yolo"}),
        "permission_mode: must be one of 'acceptEdits', 'auto', 'bypassPermissions'",
    ),
    ("execute_task", with_cwd({"task": "x", "max_turns": 0}), "max_turns: must be at least 1"),
    ("execute_task", with_cwd({"task": "x", "max_turns": 1.5}), "max_turns: must be a whole number"),
    (
        "execute_task",
        with_cwd({"task": "x", "max_budget_usd": 0}),
        "max_budget_usd: must be greater than 0 US dollars",
    ),
    ("execute_task", with_cwd({"task": "x", "max_budget_usd": 1e9}), "max_budget_usd: must be at most 1000 US dollars"),
    ("execute_task", with_cwd({"task": "x", "model": "rm -rf /"}), "model: 'rm -rf /' is not a model name or alias"),
    ("execute_task", with_cwd({"task": "x", "allowed_tools": [""]}), "allowed_tools[0]: '' is not a tool name"),
    ("execute_task", with_cwd({"task": "x", "allowed_tools": "Bash"}), "allowed_tools: must be a list"),
    (
        "execute_task",
        with_cwd({"task": "x", "allowed_tools": ["Read"] * 101}),
        "allowed_tools: must have at most 100 items (got 101)",
    ),
    (
        "execute_task",
        with_cwd({"task": "x", "disallowed_tools": ["Bash\nRead"]}),
        "disallowed_tools[0]: 'Bash\\nRead' is not a tool name",
    ),
    ("execute_task", with_cwd({"task": "x", "resume_run_id": UNKNOWN}), NO_SUCH_RUN),
    ("execute_task", with_cwd({"task": "x", "resume_run_id": "last"}), bad_id("resume_run_id", "last")),
    ("execute_task", with_cwd({"task": "x", "timout_s": 5}), "timout_s: not a parameter of execute_task"),
    # start_task
    ("start_task", with_cwd({"task": " "}), "task: must not be empty"),
    ("start_task", {"task": "x", "cwd": "/nonexistent/dir"}, "cwd: '/nonexistent/dir' does not exist"),
    ("start_task", with_cwd({"task": "x", "return_after_s": 5}), "return_after_s: not a parameter of start_task"),
    ("start_task", with_cwd({"task": "x", "max_turns": -3}), "max_turns: must be at least 1"),
    # execute_task_list
    ("execute_task_list", with_cwd({"tasks": [{"task": "x"}] * 1000}), "tasks: must have at most 100 items"),
    ("execute_task_list", with_cwd({"tasks": []}), "tasks: must not be empty"),
    ("execute_task_list", with_cwd({"tasks": "do it all"}), "tasks: must be a list"),
    ("execute_task_list", with_cwd({"tasks": [{"task": "ok"}, {"task": "  "}]}), "tasks[1].task: must not be empty"),
    ("execute_task_list", with_cwd({"tasks": [{"cwd": "/tmp"}]}), "tasks[0].task: is required"),
    (
        "execute_task_list",
        with_cwd({"tasks": [{"task": "ok"}, {"task": "x", "cwd": "/nonexistent"}]}),
        "tasks[1].cwd: '/nonexistent' does not exist",
    ),
    ("execute_task_list", with_cwd({"tasks": [{"task": "x", "bogus": 1}]}), "tasks[0].bogus: is not a known option"),
    (
        "execute_task_list",
        with_cwd({"tasks": [{"task": "x"}], "mode": "random"}),
        "mode: must be one of 'sequential' or 'parallel'",
    ),
    ("execute_task_list", with_cwd({"tasks": [{"task": "x"}], "max_parallel": 0}), "max_parallel: must be at least 1"),
    ("execute_task_list", {"tasks": [{"task": "x"}]}, "tasks[0].cwd: is required"),
    # get_run / wait_run / cancel_run
    ("get_run", {"run_id": "../../etc/passwd"}, bad_id("run_id", "../../etc/passwd")),
    ("get_run", {"run_id": UNKNOWN}, NO_SUCH_RUN),
    ("get_run", {}, "run_id: is required"),
    ("get_run", {"run_id": 7}, "run_id: must be a string"),
    ("wait_run", {"run_id": UPPER}, bad_id("run_id", UPPER)),
    ("wait_run", {"run_id": UNKNOWN, "timeout_s": 100_000}, "timeout_s: must be at most 300 seconds"),
    ("wait_run", {"run_id": UNKNOWN}, NO_SUCH_RUN),
    ("cancel_run", {"run_id": "x/../y"}, bad_id("run_id", "x/../y")),
    ("cancel_run", {"run_id": UNKNOWN}, NO_SUCH_RUN),
    ("cancel_run", {"run_id": UNKNOWN, "reason": "r" * 501}, "reason: must be at most 500 characters"),
    # approve_run
    ("approve_run", {"run_id": UNKNOWN, "request_id": "r1", "decision": "allow"}, NO_SUCH_RUN),
    ("approve_run", {"run_id": "x/../y", "request_id": "r1", "decision": "allow"}, bad_id("run_id", "x/../y")),
    ("approve_run", {"run_id": UNKNOWN, "request_id": "r1", "decision": "maybe"}, "decision: must be one of"),
    ("approve_run", {"run_id": UNKNOWN, "request_id": "", "decision": "allow"}, "request_id: must not be empty"),
    # the nested profile and ask mode
    ("execute_task", with_cwd({"task": "x", "mcp_config": {"servers": {}}}), 'mcp_config: must be {"mcpServers"'),
    (
        "execute_task",
        with_cwd({"task": "x", "mcp_config": {"mcpServers": {"-x": {"command": "y"}}}}),
        "mcp_config: server name '-x' is not a plain name",
    ),
    (
        "execute_task",
        with_cwd({"task": "x", "mcp_config": {"mcpServers": {"evil": {"command": "touch", "args": ["/tmp/pwned"]}}}}),
        "mcp_config: this server does not accept MCP servers from its callers",
    ),
    (
        "execute_task_list",
        with_cwd({"tasks": [{"task": "x", "mcp_config": {"mcpServers": {"evil": {"command": "touch"}}}}]}),
        "CC_EXECUTOR_ALLOW_RUN_MCP_CONFIG=1",
    ),
    ("start_task", with_cwd({"task": "x", "setting_sources": ["everything"]}), "setting_sources"),
    ("start_task", with_cwd({"task": "x", "permission_prompts": "sometimes"}), "permission_prompts: must be one of"),
    # get_transcript
    ("get_transcript", {"run_id": "../" + UNKNOWN}, bad_id("run_id", f"../{UNKNOWN}")),
    ("get_transcript", {"run_id": UNKNOWN}, NO_SUCH_RUN),
    ("get_transcript", {"run_id": UNKNOWN, "limit": 0}, "limit: must be at least 1"),
    ("get_transcript", {"run_id": UNKNOWN, "format": "html"}, "format: must be one of 'text' or 'raw'"),
    ("get_transcript", {"run_id": UNKNOWN, "tail": 0}, "tail: must be at least 1"),
    # list_runs
    ("list_runs", {"since": "last tuesday"}, "since: 'last tuesday' is not an ISO-8601 time or an age such as 30m"),
    ("list_runs", {"since": "9999-12-31T23:59:59-01:00"}, "since: '9999-12-31T23:59:59-01:00' is out of range"),
    ("list_runs", {"since": "99999999999d"}, "since: '99999999999d' is too far back (at most 100 years)"),
    ("list_runs", {"cwd": "/a\x00b"}, "cwd: must not contain a NUL character"),
    ("list_runs", {"cwd": "relative"}, "cwd: 'relative' is not an absolute path"),
    ("list_runs", {"status": "exploded"}, "status: must be one of 'queued', 'running', 'success'"),
    ("list_runs", {"limit": 0}, "limit: must be at least 1"),
    ("list_runs", {"limit": 201}, "limit: must be at most 200"),
    ("list_runs", {"list_id": "l" * 65}, "list_id: must be at most 64 characters"),
    ("list_runs", {"stauts": "running"}, "stauts: not a parameter of list_runs; its parameters are cwd, limit"),
    # worktree isolation (issue 14)
    ("execute_task", with_cwd({"task": "x", "isolation": "worktree"}), "isolation='worktree' needs cwd inside a git"),
    ("execute_task", with_cwd({"task": "x", "branch": "b"}), "branch applies only with isolation='worktree'"),
    ("start_task", with_cwd({"task": "x", "isolation": "worktree", "setup": []}), "setup must be a non-empty argv"),
    ("execute_task", with_cwd({"task": "x", "isolation": "sandbox"}), "isolation: must be one of 'none' or 'worktree'"),
    ("merge_run", {"run_id": UNKNOWN}, NO_SUCH_RUN),
    ("merge_run", {"run_id": UNKNOWN, "strategy": "rebase"}, "strategy: must be one of 'merge', 'squash' or 'ff-only'"),
    ("discard_run", {"run_id": "x/../y"}, bad_id("run_id", "x/../y")),
    ("discard_run", {"run_id": UNKNOWN}, NO_SUCH_RUN),
    # no such tool
    ("run_task", {"task": "x"}, "Unknown tool: run_task"),
]


def case_id(case: tuple[str, dict[str, Any], str]) -> str:
    tool, args, _ = case
    shown = ",".join(f"{k}={str(v)[:12]!s}" for k, v in args.items() if k != "cwd" or v != WORK)
    return f"{tool}({shown})"


def filled(value: Any, workdir: Path) -> Any:
    if value == WORK:
        return str(workdir)
    if isinstance(value, dict):
        return {k: filled(v, workdir) for k, v in value.items()}
    if isinstance(value, list):
        return [filled(v, workdir) for v in value]
    return value


def assert_one_sentence(text: str, expected: str) -> None:
    assert expected in text, f"expected {expected!r} in {text[:400]!r}"
    assert "\n" not in text and len(text) < 1000, text[:400]
    assert not any(opaque in text for opaque in OPAQUE), text[:400]


async def assert_nothing_happened(state_home: Path, workdir: Path, fake_api: FakeAnthropic) -> None:
    assert list(workdir.iterdir()) == [], "a file was written in the work dir"
    assert fake_api.requests == [], "a request reached the API"
    assert descendants(os.getpid()) == [], "a process was started"
    transcripts = state_home / "transcripts"
    assert not transcripts.exists() or list(transcripts.iterdir()) == [], "a transcript was written"
    if (state_home / "runs.db").exists():
        async with open_store(state_home / "runs.db") as store:
            assert await store.list_runs() == [], "a run was recorded"


@pytest.fixture
def settings(config: CCExecutorConfig, state_home: Path) -> ServerSettings:
    return ServerSettings(cli_env=config.env, claude_path=config.claude_path, model=config.model, kill_grace_s=1.0)


@pytest.mark.parametrize("case", MCP_CASES, ids=[case_id(c) for c in MCP_CASES])
async def test_mcp_bad_input(
    case: tuple[str, dict[str, Any], str],
    settings: ServerSettings,
    fake_api: FakeAnthropic,
    workdir: Path,
    state_home: Path,
) -> None:
    tool, args, expected = case
    async with Client(create_server(settings)) as client:
        result = await client.call_tool(tool, filled(args, workdir))
    text = " ".join(c.text for c in result.content if isinstance(c, TextContent))
    assert result.is_error
    assert_one_sentence(text, expected)
    await assert_nothing_happened(state_home, workdir, fake_api)


async def test_bad_resource_reads_say_what_is_wrong(settings: ServerSettings) -> None:
    async with Client(create_server(settings)) as client:
        with pytest.raises(Exception, match=f"unknown run_id '{UNKNOWN}'"):
            await client.read_resource(f"cc-executor://runs/{UNKNOWN}/result")
        with pytest.raises(Exception, match=r"invalid run id 'not-a-run': it is not a run id"):
            await client.read_resource("cc-executor://runs/not-a-run/transcript")


# --- the command line ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CliCase:
    args: tuple[str, ...]
    expected: str
    stdin: bytes = b""
    code: int = 2


CLI_CASES: dict[str, list[CliCase]] = {
    "run": [
        CliCase((), "no task: give TASK, `-` to read it from stdin, or --file FILE"),
        CliCase(("",), "task: must not be empty"),
        CliCase(("-",), "task: must not be empty", stdin=b"   \n"),
        CliCase(("-",), f"task: is {MAX_TASK_BYTES + 1} bytes; the limit is", stdin=b"x" * (MAX_TASK_BYTES + 1)),
        CliCase(("hi", "--cwd", "/nonexistent/dir"), "cwd: '/nonexistent/dir' does not exist"),
        CliCase(("hi", "--cwd", "/etc/hostname"), "cwd: '/etc/hostname' is not a directory"),
        CliCase(("hi", "--cwd", "~nosuchuser/x"), "~nosuchuser is not the home directory of a known user"),
        CliCase(("hi", "--file", "x.md"), "give the task either as TASK or with --file, not both"),
        CliCase(("--file", "/nonexistent/task.md"), "cannot read --file '/nonexistent/task.md'"),
        CliCase(("hi", "--timeout", "-1"), "timeout: must be greater than 0 seconds"),
        CliCase(("hi", "--timeout", "1e12"), "timeout: must be at most 604800 seconds"),
        CliCase(("hi", "--timeout", "soon"), "argument --timeout: invalid float value: 'soon'"),
        CliCase(("hi", "--max-turns", "0"), "max_turns: must be at least 1"),
        CliCase(("hi", "--max-budget", "-2"), "max_budget_usd: must be greater than 0"),
        CliCase(("hi", "--permission-mode", "yolo"), "argument --permission-mode: invalid choice: 'yolo'"),
        CliCase(("hi", "--schema", "/nonexistent.json"), "cannot read --schema '/nonexistent.json'"),
        CliCase(("hi", "--add-dir", "/nonexistent/extra"), "add_dirs entry '/nonexistent/extra' is not a directory"),
        CliCase(("hi", "--frobnicate"), "unrecognized arguments: --frobnicate"),
        CliCase(("hi", "--branch", "x"), "--branch applies only with --worktree"),
        CliCase(("hi", "--worktree"), "isolation='worktree' needs cwd inside a git work tree"),
        CliCase(("hi", "-w", "--setup", "'npm ci"), '--setup "\'npm ci": No closing quotation'),
        CliCase(("hi", "--setting-sources", "user,everything"), "setting_sources"),
        CliCase(("hi", "--mcp-config", "/nonexistent.json"), "cannot read --mcp-config '/nonexistent.json'"),
        CliCase(("hi", "--permission-prompts", "maybe"), "argument --permission-prompts: invalid choice: 'maybe'"),
    ],
    "runs": [
        CliCase(("--since", "99999999999d"), "--since: '99999999999d' is too far back (at most 100 years)"),
        CliCase(("--since", "yesterday"), "--since: 'yesterday' is not an ISO-8601 time or an age such as 30m"),
        CliCase(("--since", "9999-12-31T23:59:59-01:00"), "is out of range"),
        CliCase(("--status", "exploded"), "argument --status: invalid choice: 'exploded'"),
        CliCase(("--limit", "0"), "argument -n/--limit: must be at least 1, got 0"),
        CliCase(("--limit", "many"), "argument -n/--limit: must be a whole number, got 'many'"),
    ],
    "show": [
        CliCase(("../etc",), "invalid run id '../etc': expected a run id or a prefix of one"),
        CliCase((UNKNOWN,), f"no run with id '{UNKNOWN}'"),
        CliCase(("abc",), "no run with id 'abc'"),
        CliCase((), "the following arguments are required: RUN_ID"),
    ],
    "cancel": [
        CliCase(("zz-top",), "invalid run id 'zz-top': expected a run id or a prefix of one"),
        CliCase((UNKNOWN,), f"no run with id '{UNKNOWN}'"),
        CliCase((UNKNOWN, "--grace", "soon"), "argument --grace: must be a number of seconds, got 'soon'"),
        CliCase((UNKNOWN, "--grace", "nan"), "argument --grace: must be a positive number of seconds, got 'nan'"),
    ],
    "doctor": [
        CliCase(("--smoke-timeout", "x"), "argument --smoke-timeout: must be a number of seconds, got 'x'"),
        CliCase(("--smoke", "--smoke-timeout", "-5"), "argument --smoke-timeout: must be a positive number of seconds"),
        CliCase(("--permission-mode", "yolo"), "argument --permission-mode: invalid choice: 'yolo'"),
    ],
    "prune": [
        CliCase((), "the following arguments are required: --older-than"),
        CliCase(("--older-than", "1y"), "--older-than: '1y' is not an age such as 30m, 1.5h, 2d, 1w"),
        CliCase(("--older-than=-5d",), "--older-than: '-5d' is not an age such as 30m"),
        CliCase(("--older-than", "99999999999d"), "--older-than: '99999999999d' is too far back (at most 100 years)"),
        CliCase(("--older-than", "1d", "--status", "running"), "argument --status: invalid choice: 'running'"),
    ],
    "merge": [
        CliCase((), "the following arguments are required: RUN"),
        CliCase((UNKNOWN,), f"no run with id '{UNKNOWN}'"),
        CliCase(("../x",), "invalid run id '../x': expected a run id or a prefix of one"),
        CliCase((UNKNOWN, "--strategy", "rebase"), "argument --strategy: invalid choice: 'rebase'"),
    ],
    "discard": [
        CliCase((), "the following arguments are required: RUN"),
        CliCase((UNKNOWN,), f"no run with id '{UNKNOWN}'"),
    ],
    "diff": [
        CliCase(("zz",), "invalid run id 'zz': expected a run id or a prefix of one"),
        CliCase((UNKNOWN, "--stat"), f"no run with id '{UNKNOWN}'"),
    ],
    "serve": [
        CliCase(("--port", "80"), "unrecognized arguments: --port 80"),
    ],
    "approve": [
        CliCase(("zz-top",), "invalid run id 'zz-top': expected a run id or a prefix of one"),
        CliCase((UNKNOWN,), f"no run with id '{UNKNOWN}'"),
        CliCase((UNKNOWN, "--deny", "--for-run"), "argument --for-run: not allowed with argument --deny"),
    ],
    "demo": [
        CliCase(("--claude", "/nonexistent/claude"), "the Claude Code CLI `claude` was not found", code=1),
    ],
    "worker": [  # refused before any connection is tried or any state is written
        CliCase(("--max-concurrent", "0"), "--max-concurrent must be at least 1, got 0"),
        CliCase(("--max-concurrent", "many"), "argument --max-concurrent: invalid int value: 'many'"),
        CliCase(("--graceful-timeout", "-1"), "--graceful-timeout must be 0 or more seconds, got -1.0"),
        CliCase(("--address", "nohost"), "the Temporal address 'nohost' must be host:port"),
        CliCase(("--tls-cert", "/nonexistent/c.pem"), "mTLS needs both a client certificate and its key"),
        CliCase(
            ("--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"),
            "CC_EXECUTOR_TEMPORAL_TLS_CERT / --tls-cert: '/nonexistent/c.pem' is not a readable file",
        ),
    ],
}
CLI = [sys.executable, "-m", "cc_executor.cli"]


@pytest.mark.parametrize("command", sorted(CLI_CASES))
async def test_cli_bad_input(command: str, fake_api: FakeAnthropic, cli_env: dict[str, str], tmp_path: Path) -> None:
    """Each case in its own state dir and work dir; a command's cases run side by side to keep this fast."""
    wrapper = spawn_recorder(tmp_path)
    failures: list[str] = []

    async def one(index: int, case: CliCase, limiter: anyio.CapacityLimiter) -> None:
        home, work = tmp_path / f"state-{index}", tmp_path / f"work-{index}"
        work.mkdir()
        env = {**os.environ, **cli_env, "CC_EXECUTOR_HOME": str(home), "CC_EXECUTOR_CLAUDE": str(wrapper)}
        async with limiter:
            done = await anyio.run_process(
                [*CLI, command, *case.args], env=env, cwd=work, input=case.stdin, check=False
            )
        stderr = done.stderr.decode("utf-8", "replace")
        problems = []
        if done.returncode != case.code:
            problems.append(f"exit {done.returncode}, expected {case.code}")
        if case.expected not in stderr:
            problems.append(f"expected {case.expected!r} on stderr")
        if "Traceback" in stderr or "internal error" in stderr or "validation error for" in stderr:
            problems.append("an opaque error")
        if done.stdout:
            problems.append(f"stdout not empty: {done.stdout[:200]!r}")
        if list(work.iterdir()):
            problems.append("a file was written in the work dir")
        try:
            await assert_nothing_happened_cli(home, wrapper)
        except AssertionError as exc:
            problems.append(str(exc))
        if problems:
            failures.append(f"{command} {' '.join(case.args)[:60]}: {'; '.join(problems)}\n    stderr: {stderr[-400:]}")

    limiter = anyio.CapacityLimiter(4)
    async with anyio.create_task_group() as group:
        for index, case in enumerate(CLI_CASES[command]):
            group.start_soon(one, index, case, limiter)
    assert not failures, "\n".join(failures)
    assert fake_api.requests == [], "a request reached the API"


def test_the_bad_input_matrix_is_large_enough() -> None:
    """The issue asks for at least 60 cases across every MCP tool and every CLI command."""
    tools = {tool for tool, _, _ in MCP_CASES}
    assert tools >= {
        "execute_task",
        "start_task",
        "execute_task_list",
        "get_run",
        "wait_run",
        "cancel_run",
        "approve_run",
        "list_runs",
        "get_transcript",
    }
    from cc_executor.cli.main import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert isinstance(commands, Mapping) and set(CLI_CASES) == set(commands)
    assert len(MCP_CASES) + sum(len(cases) for cases in CLI_CASES.values()) >= 60


def spawn_recorder(tmp_path: Path) -> Path:
    """A `claude` that records that it was started (then refuses to do anything)."""
    script = tmp_path / "claude-recorder"
    script.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "claude-started"}\nexit 3\n')
    script.chmod(0o755)
    return script


async def assert_nothing_happened_cli(home: Path, wrapper: Path) -> None:
    started = wrapper.parent / "claude-started"
    spawned = started.read_text().splitlines() if started.exists() else []
    assert not [line for line in spawned if line != "--version"], f"claude was started: {spawned}"
    transcripts = home / "transcripts"
    assert not transcripts.exists() or list(transcripts.iterdir()) == [], "a transcript was written"
    if (home / "runs.db").exists():
        async with open_store(home / "runs.db") as store:
            assert await store.list_runs() == [], "a run was recorded"
