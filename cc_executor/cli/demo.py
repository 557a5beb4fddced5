"""``cc-executor demo``: the whole pipeline offline, with no API key.

It starts the bundled fake Messages API in this process, starts the MCP server (``python -m cc_executor_mcp``) as a
real stdio subprocess, and calls ``execute_task`` through an MCP client. The server runs the real ``claude`` CLI,
which talks to the fake API and really runs Bash and writes a file in a temporary work dir. The demo shows the
progress as it arrives, the structured result, the files the diff found, the SQLite row and a transcript excerpt,
then removes its temporary work dir. The run itself is recorded in the user's own state dir (not a temporary one),
so right after the demo `cc-executor runs` lists it and `cc-executor show <id> --transcript` replays it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from cc_executor.cli.common import EXIT_FAILED, EXIT_OK, format_cost, format_duration, is_tty, out
from cc_executor.text import one_line

if TYPE_CHECKING:
    from mcp.client import Client
    from rich.console import Console

    from cc_executor.models import RunRecord

DEMO_TIMEOUT_S = 180.0
DEMO_TASK = (
    "Look at the working directory, write fizzbuzz.py that prints FizzBuzz for 1 to 15, run it, "
    "and answer with the result and a one-line summary."
)
DEMO_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "result": {"type": "string", "description": "What the program does / printed"},
        "summary": {"type": "string", "description": "One line: what was done"},
    },
    "required": ["result", "summary"],
}
_TRANSCRIPT_LINES = 14


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "demo",
        help="offline end-to-end demo: fake API + real claude + MCP server (no API key)",
        description="Run the whole pipeline offline, with no API key: a bundled fake Messages API, the real claude "
        "CLI, and the MCP server (python -m cc_executor_mcp, what `cc-executor serve` runs) as a real stdio "
        "subprocess driven by an MCP client calling execute_task. Shows the live progress, the structured result, "
        "the files created, the SQLite row and a transcript excerpt, then deletes its temporary work dir. The run is "
        "recorded in your run history (the state dir), so `cc-executor runs` and `cc-executor show` find it. "
        "Needs the claude CLI (npm ci in the checkout, or npm install -g @anthropic-ai/claude-code).",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and print where it is")
    parser.add_argument("--claude", metavar="PATH", help="the claude executable (default: the usual lookup)")
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from cc_executor.doctor import find_claude

    claude = find_claude(os.path.abspath(os.path.expanduser(args.claude)) if args.claude else None)
    root = Path(tempfile.mkdtemp(prefix="cc-executor-demo-"))
    show = Show()
    try:
        code: int = anyio.run(run_demo, claude, root, show)
    finally:
        if args.keep:
            show.note(f"kept {root} (the work dir and server.log)")
        else:
            shutil.rmtree(root, ignore_errors=True)
            show.note(f"cleaned up {root} (the work dir; the run stays in your history)")
        if show.run_id is not None:
            _show_history(show, show.run_id)
    return code


class Show:
    """Demo output on stdout: rich on a terminal, plain text otherwise."""

    def __init__(self) -> None:
        self.run_id: str | None = None  # the demo's run, once execute_task answered
        self.console: Console | None = None
        if is_tty(sys.stdout):
            from cc_executor.cli.common import console

            self.console = console(sys.stdout)

    def heading(self, text: str) -> None:
        if self.console is not None:
            from rich.markup import escape

            self.console.print(f"\n[bold cyan]{escape(text)}[/]", markup=True)
        else:
            out(f"\n== {text}")

    def line(self, text: str, *, dim: bool = False) -> None:
        if self.console is not None:
            from rich.text import Text

            self.console.print(Text("  " + text, style="dim" if dim else ""))
        else:
            out("  " + text)

    def fields(self, pairs: list[tuple[str, str]]) -> None:
        width = max(len(label) for label, _ in pairs)
        for label, value in pairs:
            self.line(f"{label.ljust(width)}  {value}")

    def note(self, text: str) -> None:
        self.line(text, dim=True)


async def run_demo(claude: str, root: Path, show: Show) -> int:
    from cc_executor.testing import scenarios
    from cc_executor.testing.fake_api import FakeAnthropic

    work = root / "work"
    work.mkdir()
    with anyio.fail_after(DEMO_TIMEOUT_S):
        async with FakeAnthropic(scenarios.demo()) as fake:
            env = server_env(fake.base_url, root, claude)
            await _introduce(show, fake.base_url, claude, env, root)
            return await _drive_server(show, env, root, work)


def server_env(base_url: str, root: Path, claude: str) -> dict[str, str]:
    """What the MCP server subprocess gets (merged over the SDK's minimal default environment)."""
    from cc_executor.paths import state_dir
    from cc_executor.testing.env import offline_env

    return {
        **offline_env(base_url, root / "home"),
        # The user's own state dir (resolved here: the server gets a temporary HOME for claude), so the demo run
        # shows up in `cc-executor runs` afterwards.
        "CC_EXECUTOR_HOME": str(state_dir()),
        "CC_EXECUTOR_CLAUDE": claude,
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }


async def _introduce(show: Show, base_url: str, claude: str, env: dict[str, str], root: Path) -> None:
    from cc_executor.doctor import child_env, run_bounded

    version = await run_bounded([claude, "--version"], env=child_env({**os.environ, **env}))
    show.heading("cc-executor demo: offline, no API key (fake Messages API + real claude CLI + MCP stdio server)")
    show.fields(
        [
            ("fake API", f"{base_url} (scripted: look around, write fizzbuzz.py, run it, answer)"),
            ("claude", f"{version.stdout or 'version unknown'} at {claude}"),
            ("MCP server", f"{sys.executable} -m cc_executor_mcp (stdio subprocess)"),
            ("temp dir", f"{root} (work dir)"),
            ("run history", f"{env['CC_EXECUTOR_HOME']} (yours: the demo run stays there)"),
        ]
    )


async def _drive_server(show: Show, env: dict[str, str], root: Path, work: Path) -> int:
    from mcp.client import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=sys.executable, args=["-m", "cc_executor_mcp"], env=env, cwd=str(work))
    log_path = root / "server.log"
    with log_path.open("w", encoding="utf-8") as log:
        try:
            async with Client(stdio_client(params, errlog=log), read_timeout_seconds=DEMO_TIMEOUT_S) as client:
                return await _conversation(show, client, root, work)
        except Exception as exc:
            show.heading("the demo failed")
            show.line(f"{type(exc).__name__}: {exc}")
            _show_log_tail(show, log_path)
            return EXIT_FAILED


async def _conversation(show: Show, client: Client, root: Path, work: Path) -> int:
    tools = sorted(tool.name for tool in (await client.list_tools()).tools)
    show.note(f"connected over stdio ({client.protocol_version}); tools: {', '.join(tools)}")
    result = await _execute(show, client, work)
    if result is None:
        _show_log_tail(show, root / "server.log")
        return EXIT_FAILED
    show.run_id = str(result["run_id"])
    _show_result(show, result)
    _show_files(show, result, work)
    await _show_row(show, str(result["run_id"]))
    await _show_transcript(show, client, str(result["run_id"]))
    ok = result.get("status") == "success" and "fizzbuzz.py" in result.get("files_created", [])
    show.heading("done: the run succeeded" if ok else f"done: the run ended {result.get('status')}")
    if ok:
        show.note('next: `cc-executor doctor`, then `cc-executor run "..."` with your own login,')
        show.note("or add `cc-executor serve` to your MCP host (Claude Desktop / Claude Code / Codex)")
    return EXIT_OK if ok else EXIT_FAILED


async def _execute(show: Show, client: Client, work: Path) -> dict[str, Any] | None:
    show.heading("1. execute_task over MCP: progress notifications as they arrive")
    show.line(f"task: {DEMO_TASK}")
    show.line(f"cwd: {work}   allowed_tools: Bash, Write   json_schema: {{result, summary}}")
    started = time.monotonic()
    last: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if message and message not in last[-1:]:
            last.append(message)
            show.line(f"[{time.monotonic() - started:5.1f}s] {message}")

    arguments = {"task": DEMO_TASK, "cwd": str(work), "allowed_tools": ["Bash", "Write"], "json_schema": DEMO_SCHEMA}
    answer = await client.call_tool("execute_task", arguments, progress_callback=on_progress)
    if answer.is_error or not isinstance(answer.structured_content, dict):
        texts = [getattr(block, "text", "") for block in answer.content]
        show.line(f"execute_task failed: {' '.join(texts) or answer}")
        return None
    return answer.structured_content


def _show_result(show: Show, result: dict[str, Any]) -> None:
    show.heading("2. the structured result (structured_output matches the json_schema)")
    for line in json.dumps(result.get("structured_output"), indent=2, ensure_ascii=False).splitlines():
        show.line(line)
    facts = [
        f"status {result.get('status')}",
        f"{result.get('num_turns')} turns",
        format_cost(result.get("cost_usd")),
        format_duration(result.get("duration_s")),
        f"run_id {result.get('run_id')}",
    ]
    show.note(" · ".join(facts))


def _show_files(show: Show, result: dict[str, Any], work: Path) -> None:
    show.heading("3. files created (from a diff of the work dir, not from the model's claims)")
    created = result.get("files_created") or []
    show.line(", ".join(created) or "(none)")
    for name in created[:3]:
        path = work / name
        if path.is_file():
            show.note(f"--- {name}")
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines()[:8]:
                show.line(line)


async def _show_row(show: Show, run_id: str) -> None:
    from cc_executor.backends import LocalBackend
    from cc_executor.paths import db_path

    show.heading(f"4. the SQLite row ({db_path()})")
    async with LocalBackend() as backend:
        record = await backend.status(run_id)
    show.fields(_row_fields(record))


def _show_history(show: Show, run_id: str) -> None:
    """The demo's last lines: where the run is now, and the two commands that show it."""
    show.note(f"the run is in your history: `cc-executor runs` lists it ({run_id[:8]}),")
    show.note(f"`cc-executor show {run_id[:8]} --transcript` replays it; `cc-executor prune` forgets old runs")


def _row_fields(record: RunRecord) -> list[tuple[str, str]]:
    return [
        ("id", record.run_id),
        ("status", record.status.value),
        ("created_at", record.created_at or "-"),
        ("finished_at", record.finished_at or "-"),
        ("duration_s", str(record.duration_s)),
        ("num_turns", str(record.num_turns)),
        ("cost_usd", str(record.cost_usd)),
        ("files_created", json.dumps(record.files_created)),
        ("session_id", record.session_id or "-"),
        ("permission_mode", record.permission_mode or "-"),
        ("argv", one_line(" ".join(record.argv), 200)),
        ("transcript_path", record.transcript_path or "-"),
    ]


async def _show_transcript(show: Show, client: Client, run_id: str) -> None:
    show.heading("5. transcript excerpt (get_transcript, readable format)")
    page = await client.call_tool("get_transcript", {"run_id": run_id, "limit": _TRANSCRIPT_LINES, "format": "text"})
    content = page.structured_content if isinstance(page.structured_content, dict) else {}
    for line in content.get("lines", []):
        show.line(one_line(str(line), 150))
    if content.get("next_cursor"):
        show.note(f"... more with get_transcript(cursor={content['next_cursor']!r})")


def _show_log_tail(show: Show, log_path: Path) -> None:
    try:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-20:]
    except OSError:
        return
    if tail:
        show.note(f"last lines of the server's stderr ({log_path}):")
        for line in tail:
            show.line(line, dim=True)
