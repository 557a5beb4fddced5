"""get_transcript and the transcript resource: page a run's raw stream-json transcript within a host's result cap.

A cursor is ``"<byte offset>"`` (the start of a raw line, as the core pages) or ``"<byte offset>:<char offset>"``
when one line (e.g. a very long final answer) is longer than a page and continues on the next one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from mcp.server.mcpserver.exceptions import ToolError

from .schemas import TranscriptPageOutput

if TYPE_CHECKING:
    from cc_executor.backends import Backend

    from .state import AppState

Format = Literal["text", "raw"]

_CURSOR = re.compile(r"^(\d{1,15})(?::(\d{1,15}))?$")
_SCAN_BYTES = 8 * 1024 * 1024  # a longer raw line comes back truncated by the core
_MAX_SCANNED_LINES = 5000  # lines read per call, rendered or not
_BATCH_LINES = 200  # raw lines asked of the backend at a time


@dataclass
class _Page:
    lines: list[str] = field(default_factory=list)
    next_cursor: str | None = None
    line_truncated: bool = False
    total_bytes: int = 0
    at_end: bool = False
    end_position: int = 0


async def get_transcript(
    state: AppState, run_id: str, *, cursor: str | None, limit: int, fmt: Format, tail: int | None
) -> TranscriptPageOutput:
    from cc_executor.backends import TranscriptQuery
    from cc_executor.errors import TranscriptNotFoundError

    backend = await state.backend()
    record = await backend.status(run_id)
    if tail is not None and cursor is not None:
        raise ToolError("pass either cursor or tail, not both")
    try:
        if tail is not None:
            chunk = await backend.transcript(run_id, TranscriptQuery(tail=tail, limit=1, max_bytes=1))
            byte, char = chunk.cursor, 0
        else:
            byte, char = parse_cursor(cursor)
        page = await _read(backend, run_id, byte, char, limit, fmt, state.settings.max_result_chars)
    except TranscriptNotFoundError as exc:  # the backend's sentence: not kept, not started yet, never started
        raise ToolError(str(exc)) from None
    running = not record.status.finished
    if page.at_end and running:
        page.next_cursor = str(page.end_position)  # the run is still writing: poll from here
    note = None if running else await _incomplete(backend, run_id)
    return TranscriptPageOutput(
        run_id=run_id,
        format=fmt,
        cursor=f"{byte}:{char}" if char else str(byte),
        next_cursor=page.next_cursor,
        lines=page.lines,
        line_truncated=page.line_truncated,
        total_bytes=page.total_bytes,
        run_status=record.status.value,
        message=(f"{note}. " if note else "") + _page_message(page, running),
    )


async def _incomplete(backend: Backend, run_id: str) -> str | None:
    """The note a copy kept without its start (a run on a worker that went away) carries on its first line."""
    from cc_executor.backends import TranscriptQuery
    from cc_executor.transcript_text import incomplete_note

    first = await backend.transcript(run_id, TranscriptQuery(cursor=0, limit=1, max_bytes=4096))
    return incomplete_note(first.lines[0]) if first.lines else None


def parse_cursor(cursor: str | None) -> tuple[int, int]:
    if cursor is None or cursor == "":
        return 0, 0
    match = _CURSOR.fullmatch(cursor.strip())
    if match is None:
        raise ToolError(
            f"cursor {cursor[:40]!r} is not a cursor returned by get_transcript (expected e.g. '0' or '1234:5000')"
        )
    return int(match.group(1)), int(match.group(2) or 0)


def _page_message(page: _Page, running: bool) -> str:
    if page.next_cursor is None:
        return f"End of transcript ({len(page.lines)} line(s) on this page)."
    if page.at_end and running:
        return "End of the transcript so far; the run is still going. Call again later with next_cursor for more."
    return f"{len(page.lines)} line(s); call get_transcript again with cursor=next_cursor for more."


async def _read(backend: Backend, run_id: str, byte: int, char: int, limit: int, fmt: Format, budget: int) -> _Page:
    """Up to ``limit`` rendered lines from ``byte`` (skipping ``char`` chars of the first), within ``budget`` chars.

    Raw lines come from the backend in batches (each a file read, or for a live Temporal run a round trip to its
    worker); each line's start offset from the batch says where the next page begins when this one stops inside
    the batch."""
    from cc_executor.backends import TranscriptQuery

    page = _Page()
    position, skip, scanned, batch = byte, char, 0, _BATCH_LINES
    while len(page.lines) < limit and scanned < _MAX_SCANNED_LINES:
        want = min(batch, _MAX_SCANNED_LINES - scanned)
        raw = await backend.transcript(run_id, TranscriptQuery(cursor=position, limit=want, max_bytes=_SCAN_BYTES))
        page.total_bytes = raw.total_bytes
        if not raw.lines:  # end of file, or a line still being written
            page.at_end = True
            break
        if len(raw.offsets) != len(raw.lines):
            if len(raw.lines) > 1:  # a backend (an older worker) that does not say where lines start: one at a time
                batch = 1
                continue
            raw.offsets = [position]
        ends = [*raw.offsets[1:], raw.next_cursor if raw.next_cursor is not None else raw.total_bytes]
        for start, end, line in zip(raw.offsets, ends, raw.lines, strict=True):
            scanned += 1
            rendered = _render(line, fmt)
            if rendered is not None:
                text = rendered[skip:]
                if len(text) > budget:
                    if page.lines:  # starts the next page whole
                        return _stopped(page, start)
                    page.lines.append(text[:budget])
                    page.line_truncated = True
                    page.next_cursor = f"{start}:{skip + budget}"
                    return page
                page.lines.append(text)
                budget -= len(text)
            skip = 0
            position = end
            if len(page.lines) >= limit or scanned >= _MAX_SCANNED_LINES:
                break
        if raw.next_cursor is None and position >= raw.total_bytes:
            page.at_end = True
            break
    return _stopped(page, position)


def _stopped(page: _Page, position: int) -> _Page:
    page.end_position = position
    page.next_cursor = None if page.at_end else str(position)
    return page


def _render(line: str, fmt: Format) -> str | None:
    """The line as returned: raw, or readable text (None for events that render to nothing)."""
    if fmt == "raw":
        return line
    from cc_executor.transcript_text import render_line

    rendered = render_line(line)
    return "\n".join(rendered) if rendered else None


async def transcript_text(state: AppState, run_id: str) -> str:
    """The resource: the transcript's first page as readable text, with a pointer to the rest."""
    page = await get_transcript(state, run_id, cursor=None, limit=1000, fmt="text", tail=None)
    text = "\n".join(page.lines)
    if page.next_cursor is not None:
        text += f"\n\n[… more: get_transcript(run_id='{run_id}', cursor='{page.next_cursor}')]"
    return text
