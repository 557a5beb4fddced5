"""``cc-executor show``: one run's record and result, its transcript (readable or raw, paged), or a live tail."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from cc_executor.cli.common import (
    EXIT_OK,
    err,
    exit_code_for,
    format_cost,
    format_duration,
    format_time,
    is_tty,
    lone_errors,
    out,
    record_json,
    registry_backend,
    remote_backend,
    resolve_run,
    run_duration,
    seam_query,
    short_id,
    write_json,
)
from cc_executor.errors import InvalidRequestError, RunNotFoundError, TranscriptNotFoundError
from cc_executor.models import Approval, RunRecord, RunStatus

if TYPE_CHECKING:
    from cc_executor.backends import Backend, TranscriptChunk

_FOLLOW_POLL_S = 0.5
_WHOLE_PAGE_LINES = 1000
_PAGE_BYTES = 256 * 1024

_EPILOG = """\
examples:
  cc-executor show 3f2a                          record and result (any unique id prefix works)
  cc-executor show 3f2a --transcript             the whole readable transcript
  cc-executor show 3f2a --transcript --limit 50  one page; the next page's --cursor is printed on stderr
  cc-executor show 3f2a --raw --json             raw stream-json events as a JSON page
  cc-executor show 3f2a --follow                 attach: live progress, then the result (Ctrl-C stops watching)
  cc-executor show 3f2a --follow --transcript    tail the readable transcript instead

--follow exits by how the run ended: 0 success, 1 failed or timed out, 3 cancelled, 4 lost."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "show",
        help="show a run's record and result, or its transcript",
        description="Show one run: its record and result; with --transcript the readable transcript, with --raw\n"
        "the raw stream-json events (both paged with --cursor/--limit); with --follow tail a running run.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_id", metavar="RUN_ID", help="the run's id or a unique prefix of it")
    view = parser.add_mutually_exclusive_group()
    view.add_argument("-t", "--transcript", action="store_true", help="print the readable transcript")
    view.add_argument("--raw", action="store_true", help="print the raw stream-json lines")
    parser.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="attach to the run: its live progress (with --transcript/--raw: its transcript as it grows) until it "
        "ends, then its result; exits 0 success, 1 failed or timed out, 3 cancelled, 4 lost",
    )
    parser.add_argument(
        "--cursor", type=int, default=0, metavar="BYTES", help="transcript page start (a next_cursor from before)"
    )
    parser.add_argument(
        "-n",
        "--limit",
        type=int,
        metavar="LINES",
        help="transcript lines per page, at most 5000 (default: the whole transcript)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON (the record, or a transcript page)")
    parser.set_defaults(handler=_show)


def _show(args: argparse.Namespace) -> int:
    try:
        return anyio.run(_show_async, args)
    except KeyboardInterrupt:
        err("stopped watching; the run itself goes on (`cc-executor cancel` stops it)")
        return 130


async def _show_async(args: argparse.Namespace) -> int:
    if args.follow and args.json:
        raise InvalidRequestError("--follow prints lines as they come and cannot be combined with --json")

    async with registry_backend() as backend:
        try:
            record = await resolve_run(backend, args.run_id)
        except RunNotFoundError:
            async with remote_backend() as remote:  # Temporal: a task its list has not started has no row here
                if remote is None:
                    raise
                return await _show_run(remote, await resolve_run(remote, args.run_id), args)
        return await _show_run(backend, record, args)


async def _show_run(backend: Backend, record: RunRecord, args: argparse.Namespace) -> int:
    if args.follow:
        return await follow(backend, record, raw=args.raw, transcript=args.transcript or args.raw)
    if args.transcript or args.raw:
        return await print_transcript(
            backend, record.run_id, raw=args.raw, cursor=args.cursor, limit=args.limit, json_output=args.json
        )
    if args.json:
        write_json(record_json(record))
    else:
        print_record(record)
    return EXIT_OK


# --- the record -------------------------------------------------------------------------------------------------


def record_fields(record: RunRecord) -> list[tuple[str, str]]:
    duration = run_duration(record)
    fields = [
        ("run", record.run_id),
        ("status", record.status.value + (f" ({record.error_class})" if record.error_class else "")),
        ("task", record.task if len(record.task) <= 400 else record.task[:399] + "…"),
        ("cwd", record.cwd),
        *list_fields(record),
        ("model", record.model or "(claude's default)"),
        ("permission mode", record.permission_mode or "-"),
        ("created", format_time(record.created_at)),
        ("started", format_time(record.started_at)),
        ("finished", format_time(record.finished_at)),
        ("duration", format_duration(duration)),
        ("turns", str(record.num_turns) if record.num_turns is not None else "-"),
        ("cost", format_cost(record.cost_usd)),
        ("attempts", str(record.attempts)),
        ("session", record.session_id or "-"),
    ]
    for label, files in (
        ("files created", record.files_created),
        ("files modified", record.files_modified),
        ("files deleted", record.files_deleted),
    ):
        if files:
            fields.append((label, ", ".join(files)))
    fields += worktree_fields(record)
    if not record.status.finished and record.last_progress:
        fields.append(("progress", record.last_progress))
    if record.error:
        fields.append(("error", record.error))
    if record.profile:
        fields.append(("profile", profile_line(record.profile)))
    for approval in record.approvals:
        fields.append(("approval", approval_line(approval)))
    unstarted = "(none yet)" if record.status is RunStatus.PENDING else "(not kept)"
    fields.append(("transcript", record.transcript_path or unstarted))
    return fields


def list_fields(record: RunRecord) -> list[tuple[str, str]]:
    """The task list a run belongs to, and its place there (a pending task has no more than that yet)."""
    if record.list_id is None:
        return []
    place = f" (task {record.list_index})" if record.list_index is not None else ""
    return [("list", record.list_id + place)]


def worktree_fields(record: RunRecord) -> list[tuple[str, str]]:
    if record.isolation != "worktree":
        return []
    fields = [("branch", record.branch or "-"), ("base", (record.base_sha or "-")[:12])]
    if record.head_sha:
        fields.append(("head", record.head_sha[:12]))
    fields += [(f"commit {i}", f"{c.sha[:12]} {c.subject}") for i, c in enumerate(record.commits, start=1)]
    if record.diffstat:
        fields.append(("diffstat", record.diffstat.splitlines()[-1].strip()))
    if record.uncommitted_changes_not_carried:
        fields.append(("note", "the checkout had uncommitted changes; they were not carried into the worktree"))
    if record.worktree_path and Path(record.worktree_path).exists():
        state = "in use" if not record.status.finished else "left behind (see `cc-executor doctor`)"
        fields.append(("worktree", f"{record.worktree_path} ({state})"))
    return fields


def profile_line(profile: dict[str, object]) -> str:
    sources = profile.get("setting_sources")
    servers = profile.get("mcp_servers") or []
    parts = [
        "settings " + (",".join(str(s) for s in sources) if isinstance(sources, list) else "all"),
        "mcp " + (",".join(str(s) for s in servers) if isinstance(servers, list) and servers else "none"),
    ]
    if profile.get("strict_mcp_config"):
        parts.append("strict")
    parts.append(f"prompts {profile.get('permission_prompts', 'deny')}")
    return " · ".join(parts)


def approval_line(approval: Approval) -> str:
    """Who answered what, when: `allow by person at 12:03:04 · Bash: /usr/bin/touch x (request 1a2b…)`."""
    what = f"{approval.tool}: {approval.summary}" if approval.summary else str(approval.tool)
    if approval.pending:
        answer = f"PENDING (denied at {format_time(approval.deadline_at)})"
    else:
        answer = f"{approval.decision} by {approval.decided_by} at {format_time(approval.decided_at)}"
        if approval.message:
            answer += f" ({approval.message})"
    return f"{answer} · {what} (request {approval.request_id})"


def print_record(record: RunRecord) -> None:
    from cc_executor.cli.run import result_body

    fields = record_fields(record)
    body = result_body(record)
    if is_tty(sys.stdout):
        _rich_record(fields, body)
        return
    width = max(len(label) for label, _ in fields)
    for label, value in fields:
        out(f"{label.ljust(width)}  {value}")
    if body:
        out("")
        out(body)


def _rich_record(fields: list[tuple[str, str]], body: str) -> None:
    from rich.table import Table
    from rich.text import Text

    from cc_executor.cli.common import console

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in fields:
        grid.add_row(label, Text(value))
    terminal = console(sys.stdout)
    terminal.print(grid)
    if body:
        terminal.print()
        terminal.print(Text(body))


# --- the transcript ---------------------------------------------------------------------------------------------


def render(lines: list[str], *, raw: bool) -> list[str]:
    from cc_executor.transcript_text import render_line

    if raw:
        return lines
    return [text for line in lines for text in render_line(line)]


async def read_chunk(backend: Backend, run_id: str, *, cursor: int, limit: int) -> TranscriptChunk:
    from cc_executor.backends import TranscriptQuery

    query = seam_query(TranscriptQuery, cursor=cursor, limit=limit, max_bytes=_PAGE_BYTES)
    return await backend.transcript(run_id, query)


async def print_transcript(
    backend: Backend, run_id: str, *, raw: bool, cursor: int, limit: int | None, json_output: bool
) -> int:
    if limit is None and not json_output:
        await _print_whole(backend, run_id, raw=raw, cursor=cursor)
        return EXIT_OK
    page = await read_chunk(backend, run_id, cursor=cursor, limit=limit or _WHOLE_PAGE_LINES)
    lines = render(page.lines, raw=raw)
    if json_output:
        write_json(_page_json(page, lines))
        return EXIT_OK
    for line in lines:
        out(line)
    if page.next_cursor is not None and page.next_cursor != page.cursor:
        flag = "--raw" if raw else "--transcript"
        err(f"-- more: cc-executor show {short_id(run_id)} {flag} --cursor {page.next_cursor} --limit {limit}")
    return EXIT_OK


def _page_json(page: TranscriptChunk, lines: list[str]) -> dict[str, object]:
    return {
        "run_id": page.run_id,
        "cursor": page.cursor,
        "next_cursor": page.next_cursor,
        "total_bytes": page.total_bytes,
        "lines": lines,
    }


async def _print_whole(backend: Backend, run_id: str, *, raw: bool, cursor: int) -> int:
    """Print every complete line from ``cursor``; returns the cursor after the last one printed."""
    while True:
        page = await read_chunk(backend, run_id, cursor=cursor, limit=_WHOLE_PAGE_LINES)
        for line in render(page.lines, raw=raw):
            out(line)
        if page.next_cursor is None:
            return page.total_bytes
        if page.next_cursor == page.cursor:
            return cursor  # only a line still being written is left
        cursor = page.next_cursor


# --- follow -----------------------------------------------------------------------------------------------------


async def follow(backend: Backend, record: RunRecord, *, raw: bool, transcript: bool) -> int:
    """Attach to a run until its ``finished`` event: its live progress (or, with ``transcript``, its transcript as
    it grows), then its result and status line. The exit code says how it ended (``exit_code_for``)."""
    from cc_executor.cli.run import footer_lines, result_body

    if transcript:
        await _follow_transcript(backend, record, raw=raw)
    else:
        await _follow_progress(backend, record)
    record = await backend.status(record.run_id)
    result = record.to_result()
    if not transcript and result_body(result):
        out(result_body(result))
    for line in footer_lines(result):
        err(line)
    return exit_code_for(record.status.value)


async def _follow_progress(backend: Backend, record: RunRecord) -> None:
    from cc_executor.cli.live_display import make_display

    display = make_display(quiet=False)
    display.start(record.run_id, record.cwd)
    try:
        async for event in backend.events(record.run_id):
            if event.progress is not None:
                await display.update(event.progress)
    finally:
        display.stop()


async def _follow_transcript(backend: Backend, record: RunRecord, *, raw: bool) -> None:
    """The transcript as it grows until the run's ``finished`` event. The run's events say when it ends (and, for a
    run that keeps no transcript, what it is doing); the transcript is read on every event and at least every
    0.5 s, and once more after the end, so no line written before it is missed."""
    ended = anyio.Event()
    keeps_transcript = record.transcript_path is not None
    with lone_errors():
        async with anyio.create_task_group() as group:
            group.start_soon(_watch_events, backend, record.run_id, keeps_transcript, ended)
            cursor = 0
            while True:
                finished = ended.is_set()  # read before the transcript, so no line written before the end is missed
                if keeps_transcript:
                    cursor = await _print_new(backend, record.run_id, cursor, raw=raw)
                if finished:
                    break
                with anyio.move_on_after(_FOLLOW_POLL_S):
                    await ended.wait()


async def _watch_events(backend: Backend, run_id: str, keeps_transcript: bool, ended: anyio.Event) -> None:
    try:
        async for event in backend.events(run_id):
            if event.progress is not None and not keeps_transcript:
                err(f"[cc-executor {short_id(run_id)}] {event.progress.message}")
    finally:
        ended.set()


async def _print_new(backend: Backend, run_id: str, cursor: int, *, raw: bool) -> int:
    try:
        return await _print_whole(backend, run_id, raw=raw, cursor=cursor)
    except TranscriptNotFoundError:
        return cursor  # queued: claude has not started writing yet
