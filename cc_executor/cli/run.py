"""``cc-executor run``: one task through the Claude Code CLI with live progress; Ctrl-C cancels it cleanly."""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from cc_executor.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    err,
    format_cost,
    format_duration,
    is_tty,
    local_backend,
    lone_errors,
    out,
    write_json,
)
from cc_executor.cli.terminal_approvals import answer_on_terminal
from cc_executor.errors import InvalidRequestError
from cc_executor.models import (
    PERMISSION_MODES,
    CCExecutorConfig,
    ExecutionResult,
    RunRequest,
)

if TYPE_CHECKING:
    from cc_executor.backends import LocalBackend
    from cc_executor.cli.live_display import ProgressDisplay

_EPILOG = """\
examples:
  cc-executor run "write tests for utils.py and make them pass" --cwd ~/src/app --allowed-tools Bash,Edit,Write
  git diff | cc-executor run - --permission-mode plan
  cc-executor run --file task.md --schema answer.schema.json --json > answer.json
  cc-executor run --detach "refactor the parser" --cwd ~/src/app    prints the run id and returns
  cc-executor show 3f2a --follow                                     attach to it (from any terminal, any time)
  cc-executor run -w "try a state machine parser" --branch try/fsm --setup "npm ci"   then: diff / merge / discard

Progress goes to stderr (a live line on a terminal, plain lines otherwise); the result goes to stdout.
Ctrl-C kills the run's whole process tree, records it as cancelled and exits 130.
With --detach the run belongs to its own supervisor process: closing this terminal does not stop it;
`cc-executor cancel ID` does.
Exit codes: 0 success (with --detach: recorded and started), 1 the run failed (see its status), 2 bad input,
130 interrupted."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "run",
        help="run one task through Claude Code with live progress",
        description="Run TASK through the Claude Code CLI in --cwd, show live progress, then print the result.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("task", nargs="?", metavar="TASK", help="the prompt; `-` reads it from stdin")
    parser.add_argument("-f", "--file", metavar="FILE", help="read the prompt from FILE (`-` for stdin)")
    parser.add_argument("-C", "--cwd", metavar="DIR", help="working directory of the run (default: current directory)")
    parser.add_argument(
        "--schema", metavar="FILE", help="JSON Schema file: claude must answer with matching structured output"
    )
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument(
        "-d",
        "--detach",
        action="store_true",
        help="start the run in its own supervisor process, print its id and return at once; it goes on after "
        "this command exits (follow it with `show ID --follow`)",
    )
    limits = parser.add_argument_group("limits")
    limits.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="wall-clock limit (default: learned from similar past runs, else 1800)",
    )
    limits.add_argument(
        "--idle-timeout",
        type=float,
        metavar="SECONDS",
        help="kill the run after this long without output from claude (default 300; 0 = never)",
    )
    limits.add_argument("--max-turns", type=int, metavar="N", help="stop after N agent turns")
    limits.add_argument("--max-budget", type=float, metavar="USD", help="stop when the run has cost this much")
    claude = parser.add_argument_group("claude")
    claude.add_argument("--model", help="model name or alias passed to claude --model")
    claude.add_argument(
        "--permission-mode",
        choices=PERMISSION_MODES,
        metavar="MODE",
        help=f"claude's permission mode (default acceptEdits; one of {', '.join(PERMISSION_MODES)})",
    )
    claude.add_argument(
        "--allowed-tools",
        action="append",
        default=[],
        metavar="TOOLS",
        help='tools allowed without asking, comma/space separated or repeated: "Bash,Write", "Bash(git diff:*)"',
    )
    claude.add_argument(
        "--disallowed-tools", action="append", default=[], metavar="TOOLS", help="tools claude may not use"
    )
    claude.add_argument(
        "--add-dir", action="append", default=[], metavar="DIR", help="another directory claude may access"
    )
    claude.add_argument("--append-system-prompt", metavar="TEXT", help="text appended to claude's system prompt")
    profile = parser.add_argument_group("nested profile")
    profile.add_argument(
        "--setting-sources",
        metavar="LIST",
        help="settings claude loads, comma separated from user,project,local, or 'all' "
        "(default project,local: the user's own hooks and MCP servers stay out)",
    )
    profile.add_argument(
        "--mcp-config", metavar="FILE", help='JSON file {"mcpServers": {...}}: MCP servers for this run'
    )
    profile.add_argument("--strict-mcp-config", action="store_true", help="use only the servers from --mcp-config")
    profile.add_argument(
        "--permission-prompts",
        choices=("deny", "ask"),
        help="what claude would ask a person: deny it (default), or ask: on a terminal you answer y/n/always; "
        "elsewhere `cc-executor approve RUN` answers",
    )
    profile.add_argument(
        "--approval-timeout", type=float, metavar="SECONDS", help="deny an unanswered prompt after this (default 300)"
    )
    claude.add_argument(
        "--claude", metavar="PATH", help="the claude executable (default: $CC_EXECUTOR_CLAUDE, PATH, ...)"
    )
    isolation = parser.add_argument_group(
        "isolation", "run in a new git worktree on its own branch; the work is committed there when the run ends"
    )
    isolation.add_argument(
        "-w", "--worktree", action="store_true", help="isolate the run in a git worktree (cwd must be in a repository)"
    )
    isolation.add_argument("--base", metavar="REF", help="start from this commit-ish (default: the commit checked out)")
    isolation.add_argument(
        "--branch", metavar="NAME", help="the run's branch, exactly (refused if it exists; default cc-executor/<id8>)"
    )
    isolation.add_argument(
        "--setup",
        metavar="COMMAND",
        help='run COMMAND in the worktree before the task, e.g. "npm ci" (split into words like a shell, never run '
        "by one); its output goes into the transcript",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    request = build_run_request(args)
    if args.detach:
        return anyio.run(_detach, request, args)
    return anyio.run(_run, request, args)


async def _detach(request: RunRequest, args: argparse.Namespace) -> int:
    """Record the run, hand it to its supervisor, print its id (stdout) and how to follow it (stderr)."""
    from cc_executor.cli.common import registry_backend, short_id

    async with registry_backend() as backend:
        run_id = await backend.submit(request)
        record = await backend.status(run_id)
    if args.json:
        write_json({"run_id": run_id, "status": record.status.value, "cwd": record.cwd})
    else:
        out(run_id)
    if not args.quiet:
        err(f"started run {run_id} in the background; follow it: cc-executor show {short_id(run_id)} --follow")
    return EXIT_OK


# --- building the request ---------------------------------------------------------------------------------------


def build_run_request(args: argparse.Namespace) -> RunRequest:
    from cc_executor.api import build_request

    task = read_task(args.task, args.file)
    schema = load_schema(args.schema) if args.schema else None
    cwd = Path(args.cwd) if args.cwd else Path.cwd()
    return build_request(task, config=build_config(args), cwd=cwd, json_schema=schema, **isolation_fields(args))


def isolation_fields(args: argparse.Namespace) -> dict[str, Any]:
    """--worktree and friends as request fields; --base/--branch/--setup without --worktree are refused."""
    import shlex

    fields: dict[str, Any] = {"base_ref": args.base, "branch": args.branch}
    if args.setup is not None:
        try:
            fields["setup"] = shlex.split(args.setup)
        except ValueError as exc:
            raise InvalidRequestError(f"--setup {args.setup!r}: {exc}") from None
    given = [
        f"--{name}" for name, value in (("base", args.base), ("branch", args.branch), ("setup", args.setup)) if value
    ]
    if given and not args.worktree:
        raise InvalidRequestError(
            f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} only with --worktree"
        )
    fields = {name: value for name, value in fields.items() if value is not None}
    return {"isolation": "worktree", **fields} if args.worktree else {}


def read_task(task: str | None, file: str | None) -> str:
    if task is not None and file is not None:
        raise InvalidRequestError("give the task either as TASK or with --file, not both")
    if task == "-" or file == "-":
        return sys.stdin.read()
    if file is not None:
        try:
            return Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidRequestError(f"cannot read --file {file!r}: {exc.strerror or exc}") from None
    if task is None:
        raise InvalidRequestError("no task: give TASK, `-` to read it from stdin, or --file FILE")
    return task


def load_schema(path: str) -> dict[str, Any]:
    try:
        schema = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidRequestError(f"cannot read --schema {path!r}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise InvalidRequestError(f"--schema {path!r} is not valid JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise InvalidRequestError(f"--schema {path!r} must hold a JSON object (a JSON Schema)")
    return schema


def split_tools(values: list[str]) -> list[str]:
    """Tool names from comma/space separated values; separators inside parentheses (``Bash(git diff:*)``) stay."""
    tools: list[str] = []
    for value in values:
        depth, current = 0, ""
        for char in value:
            if char == "(":
                depth += 1
            elif char == ")" and depth > 0:
                depth -= 1
            if depth == 0 and (char == "," or char.isspace()):
                tools += [current] if current else []
                current = ""
            else:
                current += char
        tools += [current] if current else []
    return tools


def build_config(args: argparse.Namespace) -> CCExecutorConfig:
    from pydantic import ValidationError

    from cc_executor.api import describe_validation_error

    fields: dict[str, Any] = {
        "timeout": args.timeout,
        "model": args.model,
        "permission_mode": args.permission_mode,
        "max_turns": args.max_turns,
        "max_budget_usd": args.max_budget,
        "append_system_prompt": args.append_system_prompt,
        "claude_path": str(Path(args.claude).expanduser().absolute()) if args.claude else None,
    }
    fields = {name: value for name, value in fields.items() if value is not None}
    if args.idle_timeout is not None:
        fields["idle_timeout"] = args.idle_timeout or None  # 0 disables it
    fields["allowed_tools"] = split_tools(args.allowed_tools)
    fields["disallowed_tools"] = split_tools(args.disallowed_tools)
    fields["add_dirs"] = [Path(d) for d in args.add_dir]
    fields.update(profile_fields(args))
    try:
        return CCExecutorConfig(**fields)
    except ValidationError as exc:
        raise InvalidRequestError(describe_validation_error(exc)) from None


def profile_fields(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if args.setting_sources is not None:
        raw = args.setting_sources.strip()
        fields["setting_sources"] = None if raw == "all" else [s.strip() for s in raw.split(",") if s.strip()]
    if args.mcp_config is not None:
        try:
            fields["mcp_config"] = json.loads(Path(args.mcp_config).read_text(encoding="utf-8"))
        except OSError as exc:
            raise InvalidRequestError(f"cannot read --mcp-config {args.mcp_config!r}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise InvalidRequestError(f"--mcp-config {args.mcp_config!r} is not valid JSON: {exc}") from None
    if args.strict_mcp_config:
        fields["strict_mcp_config"] = True
    if args.permission_prompts is not None:
        fields["permission_prompts"] = args.permission_prompts
    if args.approval_timeout is not None:
        fields["approval_timeout_s"] = args.approval_timeout
    return fields


# --- running ----------------------------------------------------------------------------------------------------


@dataclass
class _Interrupt:
    """Set by the signal watcher: which signal arrived. Before the run has an id a signal stops its submission
    (``submitting``); after, it cancels the run through the backend."""

    signum: int | None = None
    run_id: str | None = None
    submitting: anyio.CancelScope = field(default_factory=anyio.CancelScope)

    @property
    def reason(self) -> str:
        signum = self.signum or signal.SIGINT
        name = "Ctrl-C (SIGINT)" if signum == signal.SIGINT else signal.Signals(signum).name
        return f"interrupted by {name}; process tree killed"


async def _run(request: RunRequest, args: argparse.Namespace) -> int:
    from cc_executor.cli.live_display import make_display
    from cc_executor.cli.remote_run import remote_backend_selected, run_remote

    if remote_backend_selected():  # CC_EXECUTOR_BACKEND=temporal: the run executes on a worker
        remote, signum = await run_remote(request, args)
        if remote is None:
            return 128 + (signum or signal.SIGINT)
        return report(remote, json_output=args.json)

    display = make_display(quiet=args.quiet)
    interrupt = _Interrupt()
    async with local_backend() as backend:
        try:
            result = await _supervised(request, backend, display, interrupt)
        finally:
            display.stop()
        if interrupt.signum is not None or result is None:
            return await _report_interrupted(backend, interrupt, json_output=args.json)
    return report(result, json_output=args.json)


async def _supervised(
    request: RunRequest, backend: LocalBackend, display: ProgressDisplay, interrupt: _Interrupt
) -> ExecutionResult | None:
    """Submit the run and show its events until it ends, while SIGINT/SIGTERM cancel it through the backend;
    None when a signal stopped it before it was submitted."""
    with lone_errors():  # the watcher never fails: an error here is the submit's (e.g. ClaudeNotFoundError)
        async with anyio.create_task_group() as group:
            await group.start(_watch_signals, backend, interrupt, group)
            with interrupt.submitting:
                interrupt.run_id = await backend.submit(request)
            run_id = interrupt.run_id
            if run_id is None:
                group.cancel_scope.cancel()
                return None
            if interrupt.signum is not None:  # the signal came as the submission finished: cancel the run now
                group.start_soon(backend.cancel, run_id, interrupt.reason)
            display.start(run_id, str(request.cwd))
            if request.config.permission_prompts == "ask" and sys.stdin.isatty() and sys.stderr.isatty():
                group.start_soon(answer_on_terminal, backend, run_id, display)
            async for event in backend.events(run_id):
                if event.progress is not None:
                    await display.update(event.progress)
            result = await backend.wait(run_id, math.inf)
            group.cancel_scope.cancel()  # stop the watcher only after the run's end has been recorded
    assert result is not None  # wait without a time limit returns the result
    return result


async def _watch_signals(
    backend: LocalBackend,
    interrupt: _Interrupt,
    group: anyio.abc.TaskGroup,
    *,
    task_status: anyio.abc.TaskStatus[None],
) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            if interrupt.signum is None:
                interrupt.signum = signum
                if interrupt.run_id is None:
                    interrupt.submitting.cancel()
                else:
                    group.start_soon(backend.cancel, interrupt.run_id, interrupt.reason)
            else:
                err("cc-executor: still stopping the run's process tree...")


async def _report_interrupted(backend: LocalBackend, interrupt: _Interrupt, *, json_output: bool) -> int:
    code = 128 + (interrupt.signum or signal.SIGINT)
    if interrupt.run_id is None:
        err("cc-executor: interrupted before the run started")
        return code
    record = await backend.status(interrupt.run_id)
    if json_output:
        write_json(record.to_result().model_dump(mode="json"))
    err(f"cc-executor: {record.status.value}: run {record.run_id} ({record.error or 'interrupted'})")
    return code


# --- the result -------------------------------------------------------------------------------------------------


def report(result: ExecutionResult, *, json_output: bool) -> int:
    if json_output:
        write_json(result.model_dump(mode="json"))
    else:
        body = result_body(result)
        if body:
            out(body)
        for line in footer_lines(result):
            _footer_line(line, result.ok)
    return EXIT_OK if result.ok else EXIT_FAILED


def result_body(result: ExecutionResult) -> str:
    """What stdout gets: the structured output (pretty JSON) when there is one, else the final text."""
    if result.structured_output is not None:
        return json.dumps(result.structured_output, indent=2, ensure_ascii=False)
    return (result.result or "").rstrip("\n")


def footer_lines(result: ExecutionResult) -> list[str]:
    mark = "✓" if result.ok else "✗"
    status = result.status.value + (f" ({result.error_class})" if result.error_class and not result.ok else "")
    facts = [f"run {result.run_id}"]
    if result.num_turns:
        facts.append(f"{result.num_turns} turn{'s' if result.num_turns != 1 else ''}")
    facts += [format_cost(result.cost_usd), format_duration(result.duration_s)]
    if result.worker:
        facts.append(f"worker {result.worker}" + (f", {result.attempts} attempts" if result.attempts > 1 else ""))
    lines = [f"{mark} {status} · {' · '.join(facts)}"]
    for label, files in (
        ("created", result.files_created),
        ("modified", result.files_modified),
        ("deleted", result.files_deleted),
    ):
        if files:
            lines.append(f"  files {label}: {', '.join(files)}")
    lines += worktree_lines(result)
    if not result.ok:
        lines.append(f"  error: {result.error or result.status.value}")
        lines.append(f"  transcript: cc-executor show {result.run_id[:8]} --transcript")
    return lines


def worktree_lines(result: ExecutionResult) -> list[str]:
    """Where an isolated run's work is and what to do with it."""
    if result.isolation != "worktree" or not result.branch:
        return []
    short = result.run_id[:8]
    count = len(result.commits)
    lines = [
        f"  branch {result.branch}: {count} commit{'s' if count != 1 else ''} on {(result.base_sha or '?')[:12]}"
        + (f" (head {result.head_sha[:12]})" if result.head_sha else "")
    ]
    if result.uncommitted_changes_not_carried:
        lines.append("  note: your checkout had uncommitted changes; the run started from the last commit without them")
    if result.worktree_path:
        lines.append(f"  worktree kept at {result.worktree_path} (it holds work that could not be committed)")
    if count:
        lines.append(f"  next: cc-executor diff {short} · cc-executor merge {short} · cc-executor discard {short}")
    return lines


def _footer_line(line: str, ok: bool) -> None:
    if not is_tty(sys.stderr):
        err(line)
        return
    from rich.markup import escape

    from cc_executor.cli.common import console

    style = "green" if ok else "red"
    if line.startswith(("✓", "✗")):
        console(sys.stderr).print(f"[bold {style}]{escape(line)}[/]", markup=True)
    else:
        console(sys.stderr).print(f"[dim]{escape(line)}[/]", markup=True)
